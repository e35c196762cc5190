"""The deadline wedge composed around a slow policy double."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest

from reflex_core.errors import ConfigError, ValidationError
from reflex_core.plugin.kit.chunks import shift_chunk
from reflex_core.plugin.testing import make_request

from .conftest import D, SlowPolicy, T

STATE = np.linspace(-0.5, 0.5, 8).astype(np.float32)


def sample(ctx, name: str, **labels: str) -> float:
    return ctx.metrics.get_sample_value(name, labels or None) or 0.0


def test_an_on_time_answer_is_the_policys(build_deadline, franka) -> None:
    policy = SlowPolicy(0.0)
    handler, ctx = build_deadline({"deadline_ms": 500}, policy, embodiment=franka)
    request = make_request(STATE)
    result = asyncio.run(handler(request))
    np.testing.assert_allclose(result.actions, policy.chunk_for(request))
    assert result.metadata["fallback"] == {
        "used": False,
        "strategy": "hold",
        "reason": None,
        "deadline_ms": 500.0,
    }
    assert result.metadata["model"] == "slow"
    # the inner request carries the deadline (a batcher plans with it)
    (inner,) = policy.started
    assert inner.deadline_ns == request.received_ns + 500_000_000
    assert sample(ctx, "reflex_deadline_late_total") == 0


def test_a_slow_policy_answers_by_the_deadline_with_hold(build_deadline, franka) -> None:
    policy = SlowPolicy(1.0)
    handler, ctx = build_deadline({"deadline_ms": 100}, policy, embodiment=franka)

    async def main() -> tuple[float, object]:
        request = make_request(STATE, episode_id="ep")
        result = await handler(request)
        elapsed = (time.monotonic_ns() - request.received_ns) / 1e9
        # the late inference was not cancelled: it finishes in the background
        assert len(policy.finished) == 0
        assert sample(ctx, "reflex_deadline_background_inferences") == 1
        assert ctx.health["deadline"]()["late_in_background"] == 1
        await asyncio.sleep(1.2)
        assert len(policy.finished) == 1
        assert sample(ctx, "reflex_deadline_background_inferences") == 0
        return elapsed, result

    elapsed, result = asyncio.run(main())
    assert elapsed < 0.6, f"answered after {elapsed:.3f} s; deadline 0.1 s, policy 1 s"
    np.testing.assert_array_equal(result.actions, np.tile(STATE, (T, 1)))
    meta = result.metadata["fallback"]
    assert meta["used"] is True and meta["strategy"] == "hold" and meta["reason"] == "deadline"
    assert sample(ctx, "reflex_deadline_late_total") == 1
    assert sample(ctx, "reflex_deadline_fallbacks_total", strategy="hold") == 1
    assert handler.counts["late_completed"] == 1


def test_tail_serves_the_time_shifted_rest_of_the_last_good_chunk(build_deadline, franka) -> None:
    policy = SlowPolicy(0.0)
    handler, _ = build_deadline(
        {"deadline_ms": 100, "deadline_fallback": "tail"}, policy, embodiment=franka
    )

    async def main():
        first_request = make_request(STATE, episode_id="ep")
        first = await handler(first_request)
        produced = time.monotonic()
        await asyncio.sleep(0.2)  # 3 control steps at 15 Hz
        policy.delay_s = 1.0
        second = await handler(make_request(STATE + 1, episode_id="ep"))
        return first, second, time.monotonic() - produced

    first, second, waited = asyncio.run(main())
    assert first.metadata["fallback"]["used"] is False
    meta = second.metadata["fallback"]
    assert meta["strategy"] == "tail" and meta["reason"] == "deadline"
    # which step the robot reached depends on timing; the tail must be the first chunk
    # shifted by the steps elapsed between its production and the fallback
    low, high = int(0.2 * 15), int(np.ceil(waited * 15))
    shifts = [
        k
        for k in range(low, high + 1)
        if np.array_equal(second.actions, shift_chunk(first.actions, k))
    ]
    assert shifts, f"tail is not the first chunk shifted by {low}..{high} steps"
    assert second.actions.shape == (T, D)
    np.testing.assert_array_equal(second.actions[-1], first.actions[-1])  # padded by holding


def test_tail_without_a_previous_chunk_holds(build_deadline, franka) -> None:
    handler, _ = build_deadline(
        {"deadline_ms": 50, "deadline_fallback": "tail"}, SlowPolicy(0.5), embodiment=franka
    )
    result = asyncio.run(handler(make_request(STATE, episode_id="new")))
    meta = result.metadata["fallback"]
    assert (meta["strategy"], meta["configured"]) == ("hold", "tail")
    assert "no previous chunk" in meta["detail"]
    np.testing.assert_array_equal(result.actions, np.tile(STATE, (T, 1)))


def test_a_late_result_becomes_the_episodes_last_good_chunk(build_deadline, franka) -> None:
    policy = SlowPolicy(0.3)
    handler, _ = build_deadline(
        {"deadline_ms": 80, "deadline_fallback": "tail"}, policy, embodiment=franka
    )

    async def main():
        policy.offset = 7.0  # the late chunk is recognisable
        first = await handler(make_request(STATE, episode_id="ep"))
        await asyncio.sleep(0.6)  # it finished in the background
        policy.offset = 0.0
        second = await handler(make_request(STATE, episode_id="ep"))
        return first, second

    first, second = asyncio.run(main())
    assert first.metadata["fallback"]["strategy"] == "hold"
    assert second.metadata["fallback"]["strategy"] == "tail"
    # the tail comes from the late chunk (offset 7), shifted by the elapsed steps
    assert second.actions[0, 0] > STATE[0] + 7.0
    np.testing.assert_allclose(second.actions[-1], STATE + 0.01 * T + 7.0, rtol=1e-6)


def test_max_gpu_seconds_caps_the_request(build_deadline, franka) -> None:
    handler, _ = build_deadline({"deadline_ms": 5000}, SlowPolicy(1.0), embodiment=franka)

    async def main():
        request = make_request(STATE)
        request = type(request)(
            observation=type(request.observation)(state=STATE, max_gpu_seconds=0.05),
            request_id=request.request_id,
            received_ns=request.received_ns,
        )
        result = await handler(request)
        return (time.monotonic_ns() - request.received_ns) / 1e9, result

    elapsed, result = asyncio.run(main())
    assert elapsed < 0.5
    assert result.metadata["fallback"]["used"] is True
    assert result.metadata["fallback"]["deadline_ms"] == 50.0


def test_a_failing_policy_falls_back_and_a_client_error_propagates(build_deadline, franka) -> None:
    policy = SlowPolicy(0.0)
    policy.error = RuntimeError("CUDA exploded")
    handler, _ = build_deadline({"deadline_ms": 200}, policy, embodiment=franka)
    started = time.monotonic()
    result = asyncio.run(handler(make_request(STATE)))
    assert time.monotonic() - started < 0.2  # no need to wait for the deadline
    meta = result.metadata["fallback"]
    assert meta["reason"] == "policy-error" and "CUDA exploded" in meta["detail"]
    policy.error = ValidationError("bad state", slug="state-length-mismatch")
    with pytest.raises(ValidationError):
        asyncio.run(handler(make_request(STATE)))


def test_backlog_of_late_inferences_is_bounded(build_deadline, franka) -> None:
    policy = SlowPolicy(0.6)
    handler, ctx = build_deadline(
        {"deadline_ms": 50, "deadline_max_late": 1}, policy, embodiment=franka
    )

    async def main():
        await handler(make_request(STATE))
        assert ctx.health["deadline"]()["degraded"] is True
        second = await handler(make_request(STATE))
        return second

    second = asyncio.run(main())
    assert second.metadata["fallback"]["reason"] == "backlog"
    assert len(policy.started) == 1  # the second request never reached the policy


def test_hold_needs_a_usable_state(build_deadline, franka) -> None:
    from reflex_core.errors import DeadlineExceeded

    handler, _ = build_deadline({"deadline_ms": 30}, SlowPolicy(0.3), embodiment=franka)
    with pytest.raises(DeadlineExceeded) as info:
        asyncio.run(handler(make_request(STATE[:3])))
    assert info.value.slug == "deadline-no-fallback"


@pytest.mark.parametrize(
    ("values", "slug"),
    [
        ({"deadline_ms": 100, "deadline_fallback": "remote"}, "deadline-needs-fallback-url"),
        (
            {"deadline_ms": 100, "deadline_fallback": "hold", "fallback_url": "http://x:1"},
            "deadline-unused-fallback-url",
        ),
    ],
)
def test_strategy_needs_are_checked_at_startup(build_deadline, franka, values, slug) -> None:
    with pytest.raises(ConfigError) as info:
        build_deadline(values, SlowPolicy(), embodiment=franka)
    assert info.value.slug == slug


def test_tail_needs_a_control_rate(build_deadline) -> None:
    with pytest.raises(ConfigError) as info:
        build_deadline({"deadline_ms": 100, "deadline_fallback": "tail"}, SlowPolicy())
    assert info.value.slug == "deadline-needs-control-rate"
    handler, _ = build_deadline(
        {"deadline_ms": 100, "deadline_fallback": "tail", "deadline_control_hz": 20},
        SlowPolicy(),
    )
    assert handler.frequency_hz == 20


@pytest.mark.parametrize(
    "bad", [{"deadline_ms": -5}, {"deadline_ms": 10, "deadline_fallback": "pray"}]
)
def test_invalid_options(build_deadline, franka, bad) -> None:
    with pytest.raises(ConfigError):
        build_deadline(bad, SlowPolicy(), embodiment=franka)
