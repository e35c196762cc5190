"""The A2C2 wedge inside the real server (ASGI app via httpx), alone and with the router and
the batching wedge: features come from the server's own terminal handler."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import reflex_a2c2
import reflex_batching
import reflex_router

from reflex_core.errors import ConfigError
from reflex_core.plugin.testing import (
    FakeBatchPolicy,
    FakeRuntimePolicy,
    asgi_client,
    serve_lifespan,
    wedge_server,
)
from reflex_core.serve import ReflexServer

from .conftest import random_head


def _server(**cli: Any) -> tuple[ReflexServer, dict[str, FakeRuntimePolicy]]:
    plugins = {"a2c2": reflex_a2c2, "batching": reflex_batching,
               "router": reflex_router}  # fmt: skip
    loaded = {"default": FakeRuntimePolicy(math=FakeBatchPolicy(seed=0))}

    def loader(source: Any, slot: str) -> FakeRuntimePolicy:
        loaded[slot] = FakeRuntimePolicy(slot=slot, math=FakeBatchPolicy(seed=1))
        return loaded[slot]

    server = wedge_server(plugins, {"default": loaded["default"]}, cli=cli, policy_loader=loader)
    return server, loaded


def _body(i: int, **extra: Any) -> dict[str, Any]:
    state = np.random.default_rng(i).standard_normal(4).round(4).tolist()
    return {"state": state, "noise_seed": i, **extra}


async def _post(server: ReflexServer, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with serve_lifespan(server.app):
        async with asgi_client(server.app) as client:
            responses = list(await asyncio.gather(*(client.post("/act", json=b) for b in bodies)))
            responses.append(await client.get("/metrics"))
    return responses


def test_correction_applies_by_measured_latency(tmp_path: Path) -> None:
    head = random_head().save(tmp_path / "head.npz")
    server, _ = _server(a2c2_head=str(head), a2c2_latency_threshold_ms=50.0)
    stale = _body(0, capture_time_ns=time.time_ns() - 120_000_000)  # captured 120 ms ago
    fresh = _body(0)
    plain, _ = _server()
    *responses, metrics = asyncio.run(_post(server, [stale, fresh]))
    base, _ = asyncio.run(_post(plain, [stale]))
    corrected, passed = (r.json() for r in responses)
    assert corrected["metadata"]["correction"]["applied"] is True
    assert corrected["metadata"]["correction"]["latency_ms"] >= 120.0
    assert passed["metadata"]["correction"]["reason"] == "below-threshold"
    np.testing.assert_allclose(passed["actions"], base.json()["actions"], atol=1e-6)
    assert not np.allclose(corrected["actions"], base.json()["actions"])
    assert 'reflex_a2c2_chunks_total{outcome="applied"} 1.0' in metrics.text


def test_router_batching_and_correction_compose_in_the_server(tmp_path: Path) -> None:
    head = random_head().save(tmp_path / "head.npz")
    server, loaded = _server(
        a2c2_head=str(head), policy_b="/models/b", split=50.0, max_batch=8,
        batch_timeout_ms=200.0,
    )  # fmt: skip
    bodies = [_body(i, episode_id=f"ep-{i}") for i in range(8)]
    *responses, _ = asyncio.run(_post(server, bodies))
    assert server.wedge_names == ["router", "batching", "a2c2"]
    slots = [r.json()["metadata"]["policy_slot"] for r in responses]
    assert set(slots) == {"a", "b"}
    for r in responses:
        meta = r.json()["metadata"]
        assert meta["correction"]["applied"] is True
        assert meta["batch"]["size"] == slots.count(meta["policy_slot"])
    assert sum(loaded["b"].calls) == slots.count("b") and len(loaded["b"].calls) == 1


def test_a_head_that_does_not_fit_the_policy_fails_startup(tmp_path: Path) -> None:
    head = random_head(feature_dim=16).save(tmp_path / "wide.npz")
    server, _ = _server(a2c2_head=str(head))

    async def main() -> None:
        async with serve_lifespan(server.app):
            pass

    with pytest.raises(ConfigError) as info:
        asyncio.run(main())
    assert info.value.slug == "a2c2-head-mismatch"
    assert server.state == "failed"
