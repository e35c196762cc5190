"""A server that holds: clients that vanish or stall mid-body, caps on requests and sessions,
idle WebSocket sessions, and overload with a deadline (the policy's threads only take work that
can still make its deadline). Driven through the real ASGI app; timings here are only what it
takes to put a request in the state under test (targets live in benchmarks/soak.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.testclient import TestClient, WebSocketDenialResponse

from reflex_core.errors import Unavailable
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.wedges import ActRequest
from reflex_core.serve import ReflexServer, ServeConfig
from reflex_core.serve.config import resolve_serve_options
from reflex_core.serve.hypercorn_runner import hypercorn_config
from reflex_core.wire.types import Observation

sd = sys.modules["reflex_tests_serve_double"]  # loaded by tests/conftest.py
pytestmark = pytest.mark.anyio
JSON_HEADERS = [(b"content-type", b"application/json")]


def http_scope(path: str = "/act", method: str = "POST", headers: Any = None) -> dict[str, Any]:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": list(JSON_HEADERS if headers is None else headers),
        "client": ("127.0.0.1", 5000),
        "server": ("127.0.0.1", 8000),
    }


def scripted_receive(*messages: dict[str, Any]) -> Callable[[], Awaitable[dict[str, Any]]]:
    """Hands out ``messages``, then blocks forever: a client that stopped sending."""
    pending = list(messages)

    async def receive() -> dict[str, Any]:
        if pending:
            return pending.pop(0)
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    return receive


PARTIAL = {"type": "http.request", "body": b'{"state": [0, 0,', "more_body": True}


async def call(app: Any, scope: dict[str, Any], receive: Any) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    return sent


def answer(sent: list[dict[str, Any]]) -> tuple[int, dict[bytes, bytes], dict[str, Any]]:
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], dict(start["headers"]), json.loads(body)


def metric_line(server: ReflexServer, needle: str) -> str:
    text = server.metrics.render()[0].decode()
    return next((line for line in text.splitlines() if needle in line), "")


# ------------------------------------------------------------------ mid-body disconnects


async def test_a_client_gone_mid_body_is_counted_under_its_slug_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = ReflexServer({"default": sd.DoublePolicy()})
    async with sd.lifespan(server.app):
        with caplog.at_level(logging.INFO):
            sent = await call(
                server.app, http_scope(), scripted_receive(PARTIAL, {"type": "http.disconnect"})
            )
    assert sent == []  # nobody is left to answer
    line = metric_line(server, 'slug="client-disconnected"')
    assert 'status="499"' in line and line.endswith(" 1.0")
    assert 'status="500"' not in server.metrics.render()[0].decode()
    about = [r for r in caplog.records if "disconnected" in r.getMessage()]
    assert len(about) == 1 and about[0].levelno == logging.INFO and about[0].exc_info is None
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# --------------------------------------------------------------------- stalled bodies, caps


async def test_a_body_that_stalls_gets_408_and_the_connection_closes() -> None:
    server = ReflexServer({"default": sd.DoublePolicy()}, options=ServeConfig(body_timeout_s=0.2))
    async with sd.lifespan(server.app):
        sent = await asyncio.wait_for(
            call(server.app, http_scope(), scripted_receive(PARTIAL)), timeout=10
        )
    status, headers, body = answer(sent)
    assert status == 408 and body["error"] == "body-timeout"
    assert headers[b"connection"] == b"close"
    assert body["details"] == {"body_timeout_s": 0.2}


async def test_past_the_request_cap_503_server_busy_and_health_still_answers() -> None:
    config = ServeConfig(max_concurrent_requests=2, body_timeout_s=5.0)
    server = ReflexServer({"default": sd.DoublePolicy()}, options=config)
    async with sd.lifespan(server.app):
        stalled = [
            asyncio.create_task(call(server.app, http_scope(), scripted_receive(PARTIAL)))
            for _ in range(2)
        ]
        await asyncio.sleep(0.05)  # both are inside, waiting for their bodies
        busy = await call(server.app, http_scope(), scripted_receive(PARTIAL))
        health = await call(server.app, http_scope("/health", "GET"), scripted_receive())
        for task in stalled:
            task.cancel()
        await asyncio.gather(*stalled, return_exceptions=True)
        good = await call(
            server.app,
            http_scope(),
            scripted_receive(
                {"type": "http.request", "body": json.dumps(sd.observation()).encode()}
            ),
        )
    status, headers, body = answer(busy)
    assert status == 503 and body["error"] == "server-busy" and headers[b"retry-after"] == b"1"
    assert answer(health)[0] == 200
    assert answer(good)[0] == 200  # the places are given back


def test_past_the_session_cap_the_handshake_gets_503_too_many_sessions() -> None:
    server = ReflexServer({"default": sd.DoublePolicy()}, options=ServeConfig(max_ws_sessions=1))
    with TestClient(server.app) as client:
        while client.get("/health").status_code != 200:
            time.sleep(0.01)
        with client.websocket_connect("/ws") as first:
            with pytest.raises(WebSocketDenialResponse) as refused:
                client.websocket_connect("/ws").__enter__()
            assert refused.value.status_code == 503
            assert refused.value.json()["error"] == "too-many-sessions"
            first.send_text(json.dumps(sd.observation(seq=1)))
            assert first.receive_json()["seq"] == 1
        with client.websocket_connect("/ws") as again:  # the place is given back
            again.send_text(json.dumps(sd.observation(seq=2)))
            assert again.receive_json()["seq"] == 2


def test_a_silent_websocket_session_is_closed_but_not_one_awaiting_an_answer() -> None:
    registry = make_plugin_manager(load_entrypoints=False).registry
    options = resolve_serve_options({}, {"ws": {"ws-idle-timeout-s": 0.3}}, registry)
    gate = threading.Event()
    server = ReflexServer({"default": sd.DoublePolicy(gate=gate)}, options=options)
    with TestClient(server.app) as client:
        while client.get("/health").status_code != 200:
            time.sleep(0.01)
        with client.websocket_connect("/ws") as ws:
            ws.send_text(json.dumps(sd.observation(seq=7)))
            time.sleep(0.8)  # longer than the idle timeout, but the session owes an answer
            gate.set()
            assert ws.receive_json()["seq"] == 7
            closed = ws.receive()  # then nothing for the idle timeout
        assert closed == {"type": "websocket.close", "code": 1000, "reason": "ws-idle"}
        assert len(server.ws_sessions) == 0


def test_idle_and_ping_settings_reach_hypercorn() -> None:
    hc = hypercorn_config(ServeConfig(idle_timeout_s=3.5, ws_ping_interval_s=7.0))
    assert hc.keep_alive_timeout == 3.5 and hc.websocket_ping_interval == 7.0
    assert hypercorn_config(ServeConfig(ws_ping_interval_s=0)).websocket_ping_interval is None


# ------------------------------------------------------------------------------ overload


def _request(i: int, deadline_ns: int | None) -> ActRequest:
    state = np.full(8, 0.01 * i, dtype=np.float32)
    return ActRequest(
        Observation(state=state), f"r{i}", time.monotonic_ns(), deadline_ns=deadline_ns
    )


async def test_the_threads_take_no_work_that_cannot_make_its_deadline() -> None:
    gate = threading.Event()
    policy = sd.DoublePolicy(gate=gate)
    server = ReflexServer({"default": policy}, options=ServeConfig(workers_threads=1))
    async with sd.lifespan(server.app):
        server.load.service_s["default"] = 0.2  # the pace: 200 ms a call
        now = time.monotonic_ns()
        busy = asyncio.create_task(server._run_batch([_request(0, None)]))  # holds the thread
        await asyncio.sleep(0.05)
        # behind one call of ~200 ms, 50 ms is out of reach: refused at once, never queued
        with pytest.raises(Unavailable) as shed:
            await server._run_batch([_request(1, now + 50_000_000)])
        assert shed.value.slug == "overloaded" and shed.value.retry_after_s == pytest.approx(0.2)
        # a deadline the pace can make is queued, and one without a deadline always is
        reachable = asyncio.create_task(server._run_batch([_request(2, now + 5_000_000_000)]))
        # queued while the pace looked fast, its deadline passes before a thread is free: the
        # thread skips it instead of computing a chunk nobody can use on time
        server.load.service_s["default"] = 0.001
        stale = asyncio.create_task(
            server._run_batch([_request(3, time.monotonic_ns() + 20_000_000)])
        )
        await asyncio.sleep(0.05)
        gate.set()
        await busy
        assert len(await reachable) == 1
        with pytest.raises(Unavailable) as dropped:
            await stale
        health = server.health()[1]["inference"]
    assert dropped.value.slug == "overloaded"
    assert policy.calls == [1, 1]  # the busy call and the reachable one; nothing else ran
    assert health["shed_overloaded"] == 1 and health["dropped_stale"] == 1


async def test_overload_with_a_deadline_keeps_real_chunks_flowing_and_the_late_cap() -> None:
    """32 closed-loop clients against a policy that serves ~8 in a deadline: the threads work
    only on requests that can still make it, so real chunks keep coming, the rest fall back,
    and late inferences in the background never pass --deadline-max-late."""
    deadline = pytest.importorskip("reflex_deadline")
    from reflex_core.plugin import testing as kit

    policy = sd.DoublePolicy(infer_delay_s=0.012)
    server = kit.wedge_server(
        {"deadline": deadline},
        {"default": policy},
        sections={"serve": {"workers-threads": 2}, "deadline": {"deadline-ms": 50}},
    )
    max_late = 8
    transport = httpx.ASGITransport(app=server.app)
    seen_late: list[int] = []
    outcomes: list[bool] = []
    async with (
        sd.lifespan(server.app),
        httpx.AsyncClient(transport=transport, base_url="http://t") as client,
    ):
        for _ in range(5):  # the pace, measured the way the server measures it
            assert (await client.post("/act", json=sd.observation())).status_code == 200
        stop = time.monotonic() + 1.5

        async def robot() -> None:
            while time.monotonic() < stop:
                r = await client.post("/act", json=sd.observation())
                assert r.status_code == 200, r.text
                outcomes.append(not r.json()["metadata"]["fallback"]["used"])

        async def watch() -> None:
            while time.monotonic() < stop:
                seen_late.append(server.ctx.health["deadline"]()["late_in_background"])
                await asyncio.sleep(0.005)

        await asyncio.gather(watch(), *(robot() for _ in range(32)))
    assert max(seen_late) <= max_late
    real = sum(outcomes)
    assert real > 0 and real < len(outcomes)  # real chunks flow; the rest fell back
    assert server.load.shed > 0
