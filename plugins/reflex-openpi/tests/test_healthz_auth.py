"""openpi's ``GET /healthz`` is open like ``/health``: an openpi client polls it before it
sends anything, key or not. Everything else the transport serves still needs the key."""

from __future__ import annotations

import time

import pytest
import reflex_openpi
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from reflex_core.plugin import testing as kit


def test_healthz_needs_no_api_key_but_the_openpi_socket_does() -> None:
    server = kit.wedge_server(
        {"openpi": reflex_openpi},
        {"default": kit.FakeRuntimePolicy()},
        sections={"serve": {"api-key": "s3cret"}},
    )
    with TestClient(server.app) as client:
        deadline = time.monotonic() + 30
        while client.get("/healthz").status_code != 200:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        assert client.get("/healthz").text == "OK\n"
        assert client.get("/config").status_code == 401
        with pytest.raises(WebSocketDisconnect), client.websocket_connect("/") as ws:
            ws.receive_bytes()
        with client.websocket_connect("/", headers={"Authorization": "Api-Key s3cret"}) as ws:
            assert ws.receive_bytes()  # the openpi metadata frame
