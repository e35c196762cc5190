"""Fallback chunks pass ActionGuard: the guard (Stage.GUARD) is further out than the deadline
wedge (Stage.DEADLINE), so it checks whatever the deadline wedge returns."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import reflex_actionguard

from reflex_core.plugin.kit.jsonl import read_jsonl
from reflex_core.plugin.testing import enable, make_request, plugin_wedge
from reflex_core.plugin.wedges import EnabledWedge, ordered

from .conftest import SlowPolicy, T


def guard_wedge(values: dict) -> EnabledWedge:
    spec = plugin_wedge(reflex_actionguard)
    return enable(spec, values)


def test_stage_order_puts_the_guard_outside_the_deadline(deadline_spec) -> None:
    deadline = enable(deadline_spec, {"deadline_ms": 1})
    names = [w.spec.name for w in ordered([deadline, guard_wedge({"guard": "clamp"})])]
    assert names == ["actionguard", "deadline"]


def test_a_hold_fallback_outside_the_limits_is_clamped_by_the_guard(
    build_deadline, franka, tmp_path: Path
) -> None:
    log = tmp_path / "audit.jsonl"
    handler, ctx = build_deadline(
        {"deadline_ms": 50},
        SlowPolicy(0.5),
        embodiment=franka,
        extra=[guard_wedge({"guard": "clamp", "guard_audit_log": str(log)})],
    )
    state = np.array([0.0, 0.0, 0.0, 0.5, 0.0, 1.5, 0.0, 0.02], dtype=np.float32)
    # joint4 at 0.5 is past its upper limit -0.0698: holding it would command an illegal pose
    result = asyncio.run(handler(make_request(state, request_id="late-1")))
    assert result.metadata["fallback"]["used"] is True
    assert result.metadata["fallback"]["strategy"] == "hold"
    assert result.metadata["guard"]["verdict"] == "clamped"
    assert (result.actions[:, 3] <= -0.0698 + 1e-6).all()
    (record,) = read_jsonl(log).records
    assert record["request_id"] == "late-1" and record["verdict"] == "clamped"
    np.testing.assert_allclose(record["before"]["values"], np.tile(state, (T, 1)), rtol=1e-6)


def test_a_nan_tail_never_reaches_the_robot(build_deadline, franka) -> None:
    """A NaN chunk from the policy is not kept as the episode's last good chunk, and the guard
    would stop it anyway; here both layers are exercised."""
    policy = SlowPolicy(0.0)
    handler, _ = build_deadline(
        {"deadline_ms": 100, "deadline_fallback": "tail"},
        policy,
        embodiment=franka,
        extra=[guard_wedge({"guard": "clamp"})],
    )
    state = np.array([0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.02], dtype=np.float32)

    async def main():
        policy.offset = float("nan")
        first = await handler(make_request(state, episode_id="ep"))
        policy.offset = 0.0
        policy.delay_s = 0.5
        second = await handler(make_request(state, episode_id="ep"))
        return first, second

    first, second = asyncio.run(main())
    assert first.metadata["guard"]["verdict"] == "rejected"  # the NaN chunk became a hold
    assert np.isfinite(first.actions).all()
    # no good chunk to tail from: the deadline wedge held, and the hold passed the guard
    assert second.metadata["fallback"]["strategy"] == "hold"
    assert second.metadata["guard"]["verdict"] == "pass"
    np.testing.assert_allclose(second.actions, np.tile(state, (T, 1)))
