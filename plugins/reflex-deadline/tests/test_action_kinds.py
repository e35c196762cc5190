"""Fallbacks per action kind (``action_space.kind``), the decay strategy, and the remote
fallback's HTTP client built at start-up."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import numpy as np
import pytest

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.embodiments.presets import read_preset
from reflex_core.errors import ConfigError
from reflex_core.plugin.kit.chunks import decay_chunk, shift_chunk
from reflex_core.plugin.testing import make_request

from .conftest import D, SlowPolicy, T

STATE = np.linspace(-0.5, 0.5, 8).astype(np.float32)
STATE[7] = 0.03  # the franka's finger opening


def franka_as(kind: str, **action_space: Any) -> EmbodimentConfig:
    doc = read_preset("franka")
    doc["action_space"]["kind"] = kind
    doc["action_space"].update(action_space)
    return EmbodimentConfig.from_dict(doc)


@pytest.mark.parametrize("kind", ["joint_delta", "joint_velocity"])
def test_hold_for_rates_is_zero_motion_not_the_state(build_deadline, kind: str) -> None:
    handler, _ = build_deadline({"deadline_ms": 30}, SlowPolicy(0.5), embodiment=franka_as(kind))
    result = asyncio.run(handler(make_request(STATE)))
    assert result.metadata["fallback"]["strategy"] == "hold"
    expected = np.zeros((T, D), np.float32)
    expected[:, 7] = STATE[7]  # the gripper, an absolute target, stays where it is
    np.testing.assert_array_equal(result.actions, expected)


def test_a_hold_for_end_effector_poses_is_refused_at_startup(build_deadline) -> None:
    with pytest.raises(ConfigError) as exc:
        build_deadline({"deadline_ms": 30}, SlowPolicy(), embodiment=franka_as("ee_pose"))
    assert exc.value.slug == "deadline-fallback-unsafe"
    # tail holds the last commanded pose instead: allowed
    build_deadline(
        {"deadline_ms": 30, "deadline_fallback": "tail"},
        SlowPolicy(),
        embodiment=franka_as("ee_pose"),
    )


def test_the_tail_of_deltas_is_padded_with_zero_motion() -> None:
    deltas = np.full((4, 3), 0.1, np.float32)
    deltas[:, 2] = 1.0  # the gripper
    shifted = shift_chunk(deltas, 2, 4, kind="joint_delta", gripper_idx=2)
    np.testing.assert_array_equal(shifted[:2], deltas[2:])
    np.testing.assert_array_equal(shifted[2:], [[0, 0, 1], [0, 0, 1]])  # stop, gripper kept
    past = shift_chunk(deltas, 9, 4, kind="joint_velocity", gripper_idx=2)
    np.testing.assert_array_equal(past, np.tile([0, 0, 1], (4, 1)))
    # absolute targets keep holding the last one, as before
    positions = np.cumsum(deltas, axis=0)
    np.testing.assert_array_equal(shift_chunk(positions, 9, 2), np.tile(positions[-1], (2, 1)))


def test_decay_slows_the_plan_to_rest() -> None:
    plan = np.zeros((5, 3), np.float32)
    plan[:, 0] = 0.1 * np.arange(5)  # a joint moving 0.1 per step
    plan[:, 2] = 0.04
    out = decay_chunk(plan, kind="joint_position", gripper_idx=2)
    steps = np.diff(out[:, 0])
    assert out[0, 0] == 0.0 and (np.diff(steps) < 0).all()  # slower every step
    np.testing.assert_allclose(steps, 0.1 * np.array([0.6, 0.4, 0.2, 0.0]), atol=1e-7)
    np.testing.assert_array_equal(out[:, 2], np.float32(0.04))
    rates = decay_chunk(np.full((4, 2), 0.5, np.float32), kind="joint_velocity")
    np.testing.assert_allclose(rates[:, 0], [0.375, 0.25, 0.125, 0.0])


def test_decay_fallback_follows_the_last_chunk_to_rest(build_deadline, franka) -> None:
    policy = SlowPolicy(0.0)
    handler, _ = build_deadline(
        {"deadline_ms": 60, "deadline_fallback": "decay"}, policy, embodiment=franka
    )

    async def main():
        first = await handler(make_request(STATE, episode_id="ep"))
        policy.delay_s = 0.5
        second = await handler(make_request(STATE, episode_id="ep"))
        return first, second

    first, second = asyncio.run(main())
    assert second.metadata["fallback"]["strategy"] == "decay"
    arm = second.actions[:, :7].astype(np.float64)
    speeds = np.abs(np.diff(arm, axis=0)).max(axis=1)
    assert (np.diff(speeds) <= 1e-6).all() and speeds[-1] < 1e-6  # slows down, ends at rest
    start = np.flatnonzero((np.abs(first.actions[:, :7] - second.actions[0, :7]) < 1e-6).all(1))
    assert start.size == 1  # it starts on the first chunk's plan, where the robot is now


def test_the_remote_client_is_built_at_startup(build_deadline, franka, monkeypatch) -> None:
    built: list[bool] = []
    real_init = httpx.AsyncClient.__init__

    def spy(self: httpx.AsyncClient, *args: Any, **kwargs: Any) -> None:
        try:
            asyncio.get_running_loop()
            built.append(True)  # on an event loop: every request in flight waits for it
        except RuntimeError:
            built.append(False)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(httpx.AsyncClient, "__init__", spy)
    handler, _ = build_deadline(
        {
            "deadline_ms": 80,
            "deadline_fallback": "remote",
            "fallback_url": "http://127.0.0.1:9",  # refused at once: the fallback then holds
        },
        SlowPolicy(0.5),
        embodiment=franka,
    )
    assert built == [False]  # built with the wedge, off any event loop

    async def requests() -> list[Any]:
        return [await handler(make_request(STATE)) for _ in range(2)]

    results = asyncio.run(requests())
    assert all(r.metadata["fallback"]["used"] for r in results)
    assert "remote" in results[0].metadata["fallback"]["detail"]  # the remote call was made
    assert built == [False]  # ... and no client was built for it on the loop
