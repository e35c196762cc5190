"""The SLO wedge composed around a policy double (and with the real deadline wedge)."""

from __future__ import annotations

import asyncio
import time

import pytest
from prometheus_client import generate_latest

from reflex_core.errors import Unavailable, ValidationError
from reflex_core.plugin.testing import enable, make_request

from .conftest import TunablePolicy, act, metric


def test_a_raising_policy_trips_the_breaker_which_recovers_by_itself(build_slo) -> None:
    policy = TunablePolicy()
    handler, ctx = build_slo({"breaker_errors": 3, "breaker_cooldown_s": 0.3}, policy)

    async def main() -> None:
        policy.broken = RuntimeError("ORT session died")
        for _ in range(3):
            with pytest.raises(RuntimeError):
                await act(handler)
        assert ctx.health["slo"]()["breaker"]["state"] == "open"
        assert metric(ctx, "reflex_breaker_state") == 2
        calls = policy.calls
        with pytest.raises(Unavailable) as info:
            await act(handler)
        assert info.value.slug == "circuit-open" and info.value.status == 503
        assert 0 < info.value.retry_after_s <= 1.0
        assert policy.calls == calls  # failed fast, the policy was not called
        assert ctx.health["slo"]()["degraded"] is True

        policy.broken = None  # the policy heals
        await asyncio.sleep(0.35)  # the cool-down passes; nobody resets anything
        result = await act(handler)  # the half-open probe
        assert result.actions.shape == (4, 2)
        health = ctx.health["slo"]()
        assert health["breaker"]["state"] == "closed" and health["degraded"] is False
        for _ in range(5):
            await act(handler)

    asyncio.run(main())
    assert metric(ctx, "reflex_breaker_state") == 0
    for a, b in [("closed", "open"), ("open", "half-open"), ("half-open", "closed")]:
        assert metric(ctx, "reflex_breaker_transitions_total", **{"from": a, "to": b}) == 1
    assert metric(ctx, "reflex_slo_failures_total", kind="error") == 3
    assert metric(ctx, "reflex_slo_rejected_total", reason="circuit-open") == 1


def test_a_failed_probe_opens_the_breaker_again(build_slo) -> None:
    policy = TunablePolicy()
    handler, ctx = build_slo({"breaker_errors": 1, "breaker_cooldown_s": 0.2}, policy)

    async def main() -> None:
        policy.broken = RuntimeError("still broken")
        with pytest.raises(RuntimeError):
            await act(handler)
        await asyncio.sleep(0.25)
        with pytest.raises(RuntimeError):
            await act(handler)  # the probe fails
        with pytest.raises(Unavailable):
            await act(handler)

    asyncio.run(main())
    assert (
        metric(ctx, "reflex_breaker_transitions_total", **{"from": "half-open", "to": "open"}) == 1
    )


def test_client_errors_do_not_count(build_slo) -> None:
    policy = TunablePolicy()
    policy.broken = ValidationError("bad state", slug="state-length-mismatch")
    handler, ctx = build_slo({"breaker_errors": 2}, policy)

    async def main() -> None:
        for _ in range(5):
            with pytest.raises(ValidationError):
                await act(handler)

    asyncio.run(main())
    assert ctx.health["slo"]()["breaker"]["state"] == "closed"


def test_deadline_fallbacks_count_as_timeouts(build_slo) -> None:
    policy = TunablePolicy()
    policy.metadata = {"fallback": {"used": True, "reason": "deadline", "strategy": "hold"}}
    handler, ctx = build_slo({"breaker_errors": 2, "breaker_cooldown_s": 10}, policy)

    async def main() -> None:
        await act(handler)
        await act(handler)  # answered, but by a fallback: the breaker opens
        with pytest.raises(Unavailable):
            await act(handler)

    asyncio.run(main())
    assert metric(ctx, "reflex_slo_failures_total", kind="timeout") == 2


def test_with_the_real_deadline_wedge(build_slo) -> None:
    import reflex_deadline

    from reflex_core.plugin.testing import FakePolicyInfo, plugin_wedge

    deadline_spec = plugin_wedge(reflex_deadline)
    deadline = enable(deadline_spec, {"deadline_ms": 30})
    policy = TunablePolicy()
    policy.delay_s = 0.3
    handler, ctx = build_slo(
        {"breaker_errors": 2, "breaker_cooldown_s": 10},
        policy,
        extra=[deadline],
        ctx_kwargs={
            "policies": {"default": FakePolicyInfo("default", {}, chunk_size=4, action_dim=2)}
        },
    )

    async def main() -> None:
        for _ in range(2):
            result = await act(handler)
            assert result.metadata["fallback"]["reason"] == "deadline"
        with pytest.raises(Unavailable) as info:
            await act(handler)
        assert info.value.slug == "circuit-open"
        await asyncio.sleep(0.35)  # let the late inferences finish before the loop closes

    asyncio.run(main())


def test_latency_percentiles_per_policy_slot(build_slo) -> None:
    policy = TunablePolicy()
    handler, ctx = build_slo({"slo": ["p99=500ms", "p50=100ms"]}, policy)

    async def main() -> None:
        for i in range(10):
            policy.delay_s = 0.01 if i % 2 else 0.0
            await act(handler, policy="a")
        await act(handler, policy="b")

    asyncio.run(main())
    health = ctx.health["slo"]()
    assert health["policies"]["a"]["samples"] == 10
    assert health["policies"]["b"]["samples"] == 1
    lat = health["policies"]["a"]["latency_s"]
    assert set(lat) == {"p50", "p95", "p99"}
    assert 0 <= lat["p50"] <= lat["p99"] < 0.5
    assert health["breached"] is False
    text = generate_latest(ctx.metrics).decode()
    assert 'reflex_slo_latency_seconds{policy="a",quantile="0.99"}' in text
    assert 'reflex_slo_latency_seconds{policy="b",quantile="0.5"}' in text


def test_log_mode_reports_a_breach_but_serves(build_slo, caplog) -> None:
    policy = TunablePolicy()
    policy.delay_s = 0.03
    handler, ctx = build_slo({"slo": ["p50=10ms"], "slo_min_samples": 3}, policy)

    async def main() -> None:
        for _ in range(5):
            await act(handler)

    with caplog.at_level("WARNING"):
        asyncio.run(main())
    assert policy.calls == 5  # nothing shed
    health = ctx.health["slo"]()
    assert health["breached"] is True and health["policies"]["default"]["breached"] == ["p50"]
    assert health["degraded"] is True
    assert metric(ctx, "reflex_slo_breached", policy="default") == 1
    assert "breaches its latency SLO p50" in caplog.text


def test_shed_mode_503s_while_breached_then_recovers(build_slo) -> None:
    policy = TunablePolicy()
    handler, ctx = build_slo(
        {
            "slo": ["p99=20ms"],
            "slo_mode": "shed",
            "slo_min_samples": 3,
            "slo_window_s": 0.5,
            "slo_probe_interval_s": 0.2,
        },
        policy,
    )

    async def main() -> None:
        policy.delay_s = 0.05
        for _ in range(3):
            await act(handler)
        calls = policy.calls
        shed = 0
        for _ in range(5):
            try:
                await act(handler)
            except Unavailable as exc:
                assert exc.slug == "slo-breached" and exc.status == 503
                assert exc.retry_after_s == pytest.approx(0.2)
                shed += 1
        assert shed >= 4  # at most one probe went through
        assert policy.calls <= calls + 1
        # the policy speeds up; slow samples age out of the 0.5 s window
        policy.delay_s = 0.0
        await asyncio.sleep(0.6)
        for _ in range(5):
            await act(handler)
        assert ctx.health["slo"]()["breached"] is False

    asyncio.run(main())
    assert metric(ctx, "reflex_slo_rejected_total", reason="slo-breached") >= 4


def test_latency_is_measured_from_when_the_server_received_the_request(build_slo) -> None:
    policy = TunablePolicy()
    handler, ctx = build_slo({"slo": ["p50=1s"]}, policy)
    request = make_request([0.0], received_ns=time.monotonic_ns() - 200_000_000)
    asyncio.run(handler(request))
    assert ctx.health["slo"]()["policies"]["default"]["latency_s"]["p50"] >= 0.2


def test_a_count_only_window(build_slo) -> None:
    policy = TunablePolicy()
    handler, _ = build_slo({"slo": ["p50=1s"], "slo_window_s": 0, "slo_window_size": 3}, policy)

    async def main() -> None:
        for _ in range(5):
            await act(handler)

    asyncio.run(main())
    assert handler.windows["default"].max_age_s is None
    assert handler.health()["policies"]["default"]["samples"] == 3
