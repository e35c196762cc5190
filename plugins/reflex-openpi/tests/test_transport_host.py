"""The openpi transport in process: it reaches the server only through the
:class:`~reflex_core.plugin.contracts.TransportHost` protocol, and its replies carry the server's
timings and chunk metadata exactly as ``POST /act`` does."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import reflex_openpi
from reflex_openpi.codec import packb, unpackb
from reflex_openpi.transport import openpi_routes
from starlette.routing import BaseRoute
from starlette.testclient import TestClient, WebSocketDenialResponse
from starlette.websockets import WebSocketDisconnect

from reflex_core.plugin import Transport, TransportHost, hookimpl
from reflex_core.plugin import testing as kit
from reflex_core.serve import ReflexServer

# What the protocol declares, read off the class (methods and properties alike).
HOST_MEMBERS = frozenset(name for name in vars(TransportHost) if not name.startswith("_"))


class HostOnly:
    """A real server seen through TransportHost and nothing else: any other attribute (the
    server's config, its policies' ``validate``, its private state) is an AttributeError."""

    def __init__(self, host: TransportHost) -> None:
        self._host = host

    def __getattr__(self, name: str) -> Any:
        if name not in HOST_MEMBERS:
            raise AttributeError(f"{name!r} is not part of TransportHost")
        return getattr(self._host, name)


class _HostOnlyOpenpi:
    """Registers openpi's transport, handing its routes a :class:`HostOnly` view."""

    @staticmethod
    @hookimpl
    def reflex_register_transports(register: Any) -> None:
        def routes(host: TransportHost) -> list[BaseRoute]:
            return openpi_routes(HostOnly(host))

        register(Transport(name="openpi", routes=routes, config_cls=reflex_openpi.OpenpiConfig))


def _wait_ready(client: TestClient) -> None:
    deadline = time.monotonic() + 30
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, client.get("/health").json()
        time.sleep(0.01)


def _server(kind: str, **cli: Any) -> ReflexServer:
    plugin: Any = reflex_openpi if kind == "installed" else _HostOnlyOpenpi()
    return kit.wedge_server({"openpi": plugin}, {"default": kit.FakeRuntimePolicy()}, cli=cli)


@pytest.fixture(params=["installed", "host-only"])
def server(request: pytest.FixtureRequest) -> Iterator[ReflexServer]:
    yield _server(request.param)


def _observation(state: list[float]) -> bytes:
    return packb(
        {"observation/state": np.asarray(state, dtype=np.float32), "prompt": "pick up the cube"}
    )


def test_replies_carry_the_server_timings_and_metadata_of_act(server: ReflexServer) -> None:
    state = [0.1, -0.2, 0.3, 0.0]
    with TestClient(server.app) as client:
        _wait_ready(client)
        act = client.post("/act", json={"state": state, "prompt": "pick up the cube"}).json()
        with client.websocket_connect("/") as ws:
            meta = unpackb(ws.receive_bytes())
            before = time.time_ns()
            ws.send_bytes(_observation(state))
            first = unpackb(ws.receive_bytes())
            after = time.time_ns()
            ws.send_bytes(_observation(state))
            second = unpackb(ws.receive_bytes())

    assert meta["ready"] is True and meta["chunk_size"] == 5 and meta["wedges"] == []
    assert first["actions"].shape == (5, 3) and first["actions"].dtype == np.float32
    reflex, timings = first["reflex"], first["reflex"]["timings"]
    # the server's timings, as /act's chunks carry them: receive time, receive-to-reply total
    assert before <= timings["server_receive_ns"] <= after
    assert timings["total_ms"] >= timings["inference_ms"] > 0
    assert timings["total_ms"] * 1e6 <= after - before
    assert set(timings) == set(act["metadata"]["timings"])
    assert set(reflex) == set(act["metadata"])  # request_id, raw_actions, policy, model...
    assert reflex["raw_actions"] is True and reflex["policy"] == "default"
    assert reflex["request_id"] != second["reflex"]["request_id"]
    # openpi's own server_timing: the chain's time, and the previous frame's total
    assert 0 < first["server_timing"]["infer_ms"] <= (after - before) / 1e6
    assert "prev_total_ms" not in first["server_timing"]
    assert second["server_timing"]["prev_total_ms"] > 0


def test_errors_and_health_go_through_the_host(server: ReflexServer) -> None:
    with TestClient(server.app) as client:
        _wait_ready(client)
        assert client.get("/healthz").text == "OK\n"
        with client.websocket_connect("/") as ws:
            ws.receive_bytes()
            ws.send_bytes(_observation([0.0, 0.0]))  # the policy takes 4 state values
            error = json.loads(ws.receive_text())
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_bytes()
        metrics = client.get("/metrics").text
    assert (error["error"], error["status"]) == ("state-length-mismatch", 422)
    assert error["request_id"] and closed.value.code == 1011
    assert 'reflex_requests_total{route="/",slug="state-length-mismatch",status="422"} 1.0' in (
        metrics
    )


def test_a_stopping_server_closes_openpi_sessions(server: ReflexServer) -> None:
    with TestClient(server.app) as client:
        _wait_ready(client)
        with client.websocket_connect("/") as ws:
            ws.receive_bytes()
            ws.send_bytes(_observation([0.0] * 4))
            ws.receive_bytes()
            assert client.portal is not None
            client.portal.call(server.begin_stopping)
            with pytest.raises(WebSocketDisconnect) as closed:
                ws.receive_bytes()
    assert closed.value.code == 1001


@pytest.mark.parametrize("kind", ["installed", "host-only"])
def test_openpi_sessions_count_against_the_session_cap(kind: str) -> None:
    server = _server(kind, max_ws_sessions=1)
    with TestClient(server.app) as client:
        _wait_ready(client)
        with client.websocket_connect("/") as first:
            first.receive_bytes()
            for route in ("/", "/ws"):  # one cap for every transport's sessions
                with pytest.raises(WebSocketDenialResponse) as refused:
                    client.websocket_connect(route).__enter__()
                assert refused.value.status_code == 503
                assert refused.value.json()["error"] == "too-many-sessions"
            first.send_bytes(_observation([0.0] * 4))
            assert unpackb(first.receive_bytes())["actions"].shape == (5, 3)
        with client.websocket_connect("/") as again:  # the place is given back
            assert unpackb(again.receive_bytes())["server"] == "reflex"
        assert not server.ws_sessions
