"""The SLO wedge inside the real server (ASGI app + the core's runtime-shaped policy double)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import reflex_slo

from reflex_core.plugin.testing import (
    FakeBatchPolicy,
    FakeRuntimePolicy,
    asgi_client,
    serve_lifespan,
    wedge_server,
)

pytestmark = pytest.mark.anyio
OBS = {"state": [0.1 * i for i in range(8)], "prompt": "pick"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def policy_double(fixed_s: float = 0.0) -> FakeRuntimePolicy:
    return FakeRuntimePolicy(math=FakeBatchPolicy(state_dim=8), fixed_s=fixed_s)


def make_app(sections: dict[str, Any], policy: Any) -> Any:
    return wedge_server({"slo": reflex_slo}, {"default": policy}, sections=sections).app


async def test_breaker_opens_with_retry_after_and_recovers_through_the_app() -> None:
    policy = policy_double()
    app = make_app(
        {"slo": {"slo": ["p99=2s"], "breaker-errors": 2, "breaker-cooldown-s": 0.3}}, policy
    )
    async with serve_lifespan(app), asgi_client(app) as client:
        policy.infer_error = RuntimeError("runtime crashed")
        for _ in range(2):
            assert (await client.post("/act", json=OBS)).status_code == 500
        r = await client.post("/act", json=OBS)
        assert r.status_code == 503 and r.json()["error"] == "circuit-open"
        assert r.headers["Retry-After"] == "1"
        health = await client.get("/health")
        assert health.json()["wedge_health"]["slo"]["breaker"]["state"] == "open"
        assert health.json()["status"] == "degraded"
        metrics = (await client.get("/metrics")).text
        assert "reflex_breaker_state 2.0" in metrics
        assert 'reflex_breaker_transitions_total{from="closed",to="open"} 1.0' in metrics

        policy.infer_error = None
        await asyncio.sleep(0.35)
        r = await client.post("/act", json=OBS)
        assert r.status_code == 200
        health = (await client.get("/health")).json()
        assert health["status"] == "ready"
        slo = health["wedge_health"]["slo"]
        assert slo["breaker"]["state"] == "closed"
        assert slo["policies"]["default"]["samples"] == 1
        metrics = (await client.get("/metrics")).text
        assert 'reflex_slo_latency_seconds{policy="default",quantile="0.99"}' in metrics
        assert 'reflex_breaker_transitions_total{from="half-open",to="closed"} 1.0' in metrics


async def test_shed_mode_through_the_app() -> None:
    policy = policy_double(fixed_s=0.03)
    app = make_app(
        {
            "slo": {
                "slo": ["p50=5ms"],
                "slo-mode": "shed",
                "slo-min-samples": 2,
                "slo-probe-interval-s": 30,
            }
        },
        policy,
    )
    async with serve_lifespan(app), asgi_client(app) as client:
        for _ in range(2):
            assert (await client.post("/act", json=OBS)).status_code == 200
        statuses = [(await client.post("/act", json=OBS)) for _ in range(3)]
        shed = [r for r in statuses if r.status_code == 503]
        assert len(shed) >= 2
        assert shed[-1].json()["error"] == "slo-breached"
        assert shed[-1].headers["Retry-After"] == "30"
