"""The router inside the real server (ASGI app via httpx): slots loaded through the server's
``ctx.load_policy``, sticky routing, metadata and headers, shadow records, /health, /metrics."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import reflex_router
from reflex_router import episode_percentile

from reflex_core.plugin.kit.jsonl import read_jsonl
from reflex_core.plugin.testing import (
    FakeBatchPolicy,
    FakeRuntimePolicy,
    asgi_client,
    fake_server_process,
    serve_lifespan,
    wedge_server,
)
from reflex_core.serve import ReflexServer


def _server(loaded: dict[str, FakeRuntimePolicy], **cli: Any) -> ReflexServer:
    def loader(source: Any, slot: str) -> FakeRuntimePolicy:
        policy = FakeRuntimePolicy(
            slot=slot, model_version=f"v-{Path(source).name}", math=FakeBatchPolicy(seed=7)
        )
        loaded[slot] = policy
        return policy

    default = FakeRuntimePolicy(model_version="v-served", math=FakeBatchPolicy(seed=0))
    loaded["default"] = default
    return wedge_server(
        {"router": reflex_router}, {"default": default}, cli=cli, policy_loader=loader
    )


def _body(i: int, **extra: Any) -> dict[str, Any]:
    state = np.random.default_rng(i).standard_normal(4).round(4).tolist()
    return {"state": state, "prompt": "pick", "noise_seed": i, **extra}


async def _run(server: ReflexServer, bodies: list[dict[str, Any]]) -> dict[str, Any]:
    async with serve_lifespan(server.app):
        async with asgi_client(server.app) as client:
            responses = [await client.post("/act", json=b) for b in bodies]
            health = (await client.get("/health")).json()
            metrics = (await client.get("/metrics")).text
    return {"responses": responses, "health": health, "metrics": metrics}


def test_sticky_split_through_the_app() -> None:
    loaded: dict[str, FakeRuntimePolicy] = {}
    server = _server(loaded, policy_b="/models/cand-v4", split=50.0)
    episodes = [f"robot-1/ep-{i}" for i in range(12)]
    bodies = [
        _body(i, episode_id=ep, seq=step) for step in range(2) for i, ep in enumerate(episodes)
    ]
    out = asyncio.run(_run(server, bodies))
    assert all(r.status_code == 200 for r in out["responses"])
    for body, response in zip(bodies, out["responses"], strict=True):
        meta = response.json()["metadata"]
        expected = "b" if episode_percentile(body["episode_id"]) < 50.0 else "a"
        assert meta["policy_slot"] == expected
        assert meta["router"] == {"slot": expected, "sticky": True}
        assert meta["model_version"] == ("v-cand-v4" if expected == "b" else "v-served")
        assert meta["headers"]["X-Reflex-Policy-Slot"] == expected
        assert response.headers["x-reflex-policy-slot"] == expected  # real HTTP headers too
        assert response.headers["x-reflex-model-version"] == meta["model_version"]
    n_b = sum(episode_percentile(ep) < 50.0 for ep in episodes)
    assert sum(loaded["b"].calls) == 2 * n_b  # B really ran B's requests
    assert sum(loaded["default"].calls) == 2 * (len(episodes) - n_b)
    router_health = out["health"]["wedge_health"]["router"]
    assert router_health["slots"]["b"]["model_version"] == "v-cand-v4"
    assert out["health"]["status"] == "ready"
    assert 'reflex_router_requests_total{slot="b",sticky="true"}' in out["metrics"]


def test_shadow_through_the_app_records_both_chunks(tmp_path: Path) -> None:
    loaded: dict[str, FakeRuntimePolicy] = {}
    log_path = tmp_path / "shadow.jsonl"
    server = _server(loaded, policy_b="/models/cand", shadow=True, shadow_log=str(log_path))
    bodies = [_body(i, episode_id=f"ep-{i}") for i in range(4)]
    out = asyncio.run(_run(server, bodies))
    records = read_jsonl(log_path).records
    assert len(records) == 4
    by_id = {r["request_id"]: r for r in records}
    for response in out["responses"]:
        chunk = response.json()
        assert chunk["metadata"]["policy_slot"] == "a"
        rec = by_id[chunk["metadata"]["request_id"]]
        np.testing.assert_allclose(rec["actions_a"], chunk["actions"], atol=1e-6)
        diff = np.asarray(rec["actions_b"]) - np.asarray(rec["actions_a"])
        assert abs(rec["l2"] - float(np.linalg.norm(diff))) < 1e-6
        assert rec["model_version_b"] == "v-cand"
    assert sum(loaded["b"].calls) == 4
    # the last comparisons may finish after /metrics was read: shutdown waits for them
    assert server.metrics_registry.get_sample_value("reflex_router_shadow_l2_count") == 4


def test_router_through_a_real_hypercorn(tmp_path: Path) -> None:
    args = ("--policy-b", "/models/cand-v9", "--split", "100", "--router-trip-after", "2")
    with fake_server_process(*args, log_path=tmp_path / "log", load_plugins="router") as base:
        response = httpx.post(base + "/act", json=_body(0, episode_id="ep-1"), timeout=10)
        health = httpx.get(base + "/health", timeout=5).json()
    assert response.status_code == 200
    meta = response.json()["metadata"]
    assert meta["policy_slot"] == "b" and meta["model_version"] == "fake-b"
    assert health["wedge_health"]["router"]["slots"]["b"]["available"] is True


def test_slots_load_on_the_inference_threads_while_health_answers_loading() -> None:
    import threading

    release = threading.Event()
    threads: dict[str, str] = {}

    def loader(source: Any, slot: str) -> FakeRuntimePolicy:
        threads[slot] = threading.current_thread().name
        if slot == "b":
            release.wait(10)  # a big model still loading
        return FakeRuntimePolicy(slot=slot, math=FakeBatchPolicy(seed=7))

    default = FakeRuntimePolicy(math=FakeBatchPolicy(seed=0))
    server = wedge_server(
        {"router": reflex_router},
        {"default": default},
        cli={"policy_a": "/models/a", "policy_b": "/models/b"},
        policy_loader=loader,
    )

    async def scenario() -> tuple[Any, Any, Any]:
        async with serve_lifespan(server.app, wait_ready=False), asgi_client(server.app) as client:
            while "b" not in threads:
                await asyncio.sleep(0.01)
            # the event loop is free while B loads: /health answers at once, not ready yet
            loading = await asyncio.wait_for(client.get("/health"), 2.0)
            release.set()
            await server.wait_ready()
            ready = await client.get("/health")
            act = await client.post("/act", json=_body(1, episode_id="e"))
        return loading, ready, act

    loading, ready, act = asyncio.run(scenario())
    assert loading.status_code == 503 and loading.json()["status"] == "loading"
    assert ready.status_code == 200
    assert act.status_code == 200
    assert set(threads) == {"a", "b"}
    assert all(name.startswith("reflex-infer") for name in threads.values()), threads
