"""The SLO wedge inside the real server (ASGI app + the core's policy double)."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import reflex_slo

from reflex_core.plugins import make_plugin_manager
from reflex_core.serve.app import create_app
from reflex_core.serve.config import resolve_serve_options

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.anyio
OBS = {"state": [0.1 * i for i in range(8)], "prompt": "pick"}


def load_serve_double() -> Any:
    name = "reflex_tests_serve_double"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "serve_double.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


sd = load_serve_double()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(sections: dict[str, Any], policy: Any) -> Any:
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"slo": reflex_slo})
    options = resolve_serve_options({}, sections, pm.registry)
    return create_app({"default": policy}, registry=pm.registry, options=options)


def client_for(app: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://reflex")


async def test_breaker_opens_with_retry_after_and_recovers_through_the_app() -> None:
    policy = sd.DoublePolicy()
    app = make_app(
        {"slo": {"slo": ["p99=2s"], "breaker-errors": 2, "breaker-cooldown-s": 0.3}}, policy
    )
    async with sd.lifespan(app), client_for(app) as client:
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
    policy = sd.DoublePolicy(infer_delay_s=0.03)
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
    async with sd.lifespan(app), client_for(app) as client:
        for _ in range(2):
            assert (await client.post("/act", json=OBS)).status_code == 200
        statuses = [(await client.post("/act", json=OBS)) for _ in range(3)]
        shed = [r for r in statuses if r.status_code == 503]
        assert len(shed) >= 2
        assert shed[-1].json()["error"] == "slo-breached"
        assert shed[-1].headers["Retry-After"] == "30"
