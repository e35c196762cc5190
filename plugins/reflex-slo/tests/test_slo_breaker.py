"""``--slo-mode breaker``: a latency SLO breach opens the circuit breaker, not only a log line."""

from __future__ import annotations

import asyncio

import pytest

from reflex_core.errors import ConfigError, Unavailable

from .conftest import TunablePolicy, act, metric


def test_an_slo_breach_opens_the_breaker_and_probes_must_meet_the_slo(build_slo) -> None:
    policy = TunablePolicy()
    handler, ctx = build_slo(
        {
            "slo": ["p50=40ms"],
            "slo_mode": "breaker",
            "slo_min_samples": 3,
            "breaker_cooldown_s": 0.2,
        },
        policy,
    )

    async def main() -> None:
        policy.delay_s = 0.06  # every answer over the 40 ms objective; none is an error
        for _ in range(3):
            await act(handler)  # the third makes the window judge: breached
        health = ctx.health["slo"]()
        assert health["breaker"]["state"] == "open", health
        assert "slo" in health["breaker"]["last_failure"] and health["degraded"] is True
        calls = policy.calls
        with pytest.raises(Unavailable) as info:
            await act(handler)
        assert info.value.slug == "circuit-open" and policy.calls == calls  # failed fast

        await asyncio.sleep(0.25)  # cool-down over: half-open
        await act(handler)  # a probe, still slow (60 ms > 40 ms): it re-opens the breaker
        assert ctx.health["slo"]()["breaker"]["state"] == "open"

        policy.delay_s = 0.0  # the policy is fast again
        await asyncio.sleep(0.25)
        await act(handler)  # a fast probe closes it
        health = ctx.health["slo"]()
        assert health["breaker"]["state"] == "closed" and health["degraded"] is False
        for _ in range(5):  # the slow samples of the breach do not re-open it
            await act(handler)
        assert ctx.health["slo"]()["breaker"]["state"] == "closed"

    asyncio.run(main())
    assert metric(ctx, "reflex_breaker_transitions_total", **{"from": "closed", "to": "open"}) == 1
    assert (
        metric(ctx, "reflex_breaker_transitions_total", **{"from": "half-open", "to": "open"}) == 1
    )
    assert metric(ctx, "reflex_slo_failures_total", kind="slo") == 1  # the slow probe
    assert metric(ctx, "reflex_slo_rejected_total", reason="circuit-open") == 1


def test_log_mode_still_only_logs(build_slo) -> None:
    policy = TunablePolicy()
    handler, ctx = build_slo(
        {"slo": ["p50=40ms"], "slo_min_samples": 3, "breaker_errors": 5}, policy
    )

    async def main() -> None:
        policy.delay_s = 0.06
        for _ in range(5):
            await act(handler)

    asyncio.run(main())
    health = ctx.health["slo"]()
    assert health["breached"] is True and health["breaker"]["state"] == "closed"


def test_breaker_mode_needs_an_objective(build_slo) -> None:
    with pytest.raises(ConfigError) as exc:
        build_slo({"slo_mode": "breaker", "breaker_errors": 3}, TunablePolicy())
    assert exc.value.slug == "slo-breaker-needs-slo"
