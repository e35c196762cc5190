"""The batching wedge inside the real server: the ASGI app (httpx) and a real Hypercorn.

A runtime-shaped policy double (``FakeRuntimePolicy``) stands in for ONNX Runtime; its
``infer`` takes a fixed time plus a time per row, like a batched ORT call.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import reflex_batching

from reflex_core.plugin.testing import (
    FakeRuntimePolicy,
    asgi_client,
    fake_server_process,
    serve_lifespan,
    wedge_server,
)
from reflex_core.serve import ReflexServer


def _server(policy: FakeRuntimePolicy, **cli: Any) -> ReflexServer:
    return wedge_server({"batching": reflex_batching}, {"default": policy}, cli=cli)


def _body(i: int) -> dict[str, Any]:
    state = np.random.default_rng(i).standard_normal(4).round(4).tolist()
    return {"state": state, "prompt": "pick", "noise_seed": 1000 + i, "seq": i}


async def _post_all(server: ReflexServer, bodies: list[dict[str, Any]]) -> list[httpx.Response]:
    async with serve_lifespan(server.app):
        async with asgi_client(server.app) as client:
            responses = await asyncio.gather(*(client.post("/act", json=b) for b in bodies))
            metrics = await client.get("/metrics")
            health = await client.get("/health")
    return [*responses, metrics, health]


def test_concurrent_http_requests_share_one_batched_call() -> None:
    policy = FakeRuntimePolicy(fixed_s=0.02, per_row_s=0.001)
    server = _server(policy, max_batch=8, batch_timeout_ms=500.0)
    *responses, metrics, health = asyncio.run(_post_all(server, [_body(i) for i in range(8)]))
    assert [r.status_code for r in responses] == [200] * 8
    assert policy.calls == [8]
    for r in responses:
        meta = r.json()["metadata"]
        assert meta["batch"]["size"] == 8 and meta["batch"]["flush_reason"] == "size"
        assert meta["timings"]["batch_size"] == 8  # the server's own note: one infer of 8
    assert 'reflex_batching_batch_size_count{policy="default"} 1.0' in metrics.text
    assert 'reflex_batching_flushes_total{policy="default",reason="size"} 1.0' in metrics.text
    assert health.json()["wedges"] == ["batching"]
    assert health.json()["wedge_health"]["batching"]["max_batch"] == 8


def test_batched_and_unbatched_servers_return_the_same_actions() -> None:
    bodies = [_body(i) for i in range(6)]
    batched_policy = FakeRuntimePolicy(fixed_s=0.01)
    batched = _server(batched_policy, max_batch=6, batch_timeout_ms=500.0)
    *together, _, _ = asyncio.run(_post_all(batched, bodies))
    unbatched = _server(FakeRuntimePolicy())

    async def one_by_one() -> list[httpx.Response]:
        async with serve_lifespan(unbatched.app):
            async with asgi_client(unbatched.app) as c:
                return [await c.post("/act", json=b) for b in bodies]

    alone = asyncio.run(one_by_one())
    assert batched_policy.calls == [6]
    for t, a in zip(together, alone, strict=True):
        assert t.json()["seq"] == a.json()["seq"]
        np.testing.assert_allclose(t.json()["actions"], a.json()["actions"], atol=1e-5, rtol=0)
    assert not np.allclose(together[0].json()["actions"], together[1].json()["actions"])


def test_full_queue_is_a_503_with_retry_after_over_http() -> None:
    policy = FakeRuntimePolicy(fixed_s=0.3)
    server = _server(policy, max_batch=2, batch_timeout_ms=1000.0, max_queue=2)

    async def main() -> list[httpx.Response]:
        async with serve_lifespan(server.app):
            async with asgi_client(server.app) as c:
                first = [asyncio.ensure_future(c.post("/act", json=_body(i))) for i in range(2)]
                await asyncio.sleep(0.1)  # a batch of 2 is running
                rest = [asyncio.ensure_future(c.post("/act", json=_body(i))) for i in range(2, 6)]
                return list(await asyncio.gather(*first, *rest))

    responses = asyncio.run(main())
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200, 200, 200, 200, 503, 503]
    for r in responses:
        if r.status_code == 503:
            assert r.json()["error"] == "queue-full"
            assert int(r.headers["Retry-After"]) >= 1


# ------------------------------------------------------------------- a real Hypercorn


def test_batching_through_a_real_hypercorn(tmp_path: Path) -> None:
    args = ("--fixed-s", "0.05", "--max-batch", "8", "--batch-timeout-ms", "300")
    with fake_server_process(*args, log_path=tmp_path / "log", load_plugins="batching") as base:

        async def clients() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                return list(
                    await asyncio.gather(*(client.post("/act", json=_body(i)) for i in range(8)))
                )

        responses = asyncio.run(clients())
        metrics = httpx.get(base + "/metrics", timeout=5).text
    assert [r.status_code for r in responses] == [200] * 8
    sizes = [r.json()["metadata"]["batch"]["size"] for r in responses]
    assert sizes == [8] * 8
    assert 'reflex_batching_batch_size_count{policy="default"} 1.0' in metrics
