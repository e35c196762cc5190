"""The unmodified openpi client from PyPI against a real ``reflex serve`` (Hypercorn
subprocess) with this plugin installed: metadata, actions of the right shape through the
wedges, the custom key map, /healthz, GET / left alone, and the error path (text frame + 1011)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import msgpack
import numpy as np
import pytest
from openpi_client.websocket_client_policy import WebsocketClientPolicy
from reflex_openpi.codec import packb, unpackb
from websockets.exceptions import ConnectionClosedError
from websockets.sync.client import connect as ws_connect
from wsproto.events import CloseConnection

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.plugin.testing import RawWebSocket, exported_artifact, server_process

pytestmark = [
    pytest.mark.slow,
    # openpi-client (unmodified) opens its socket without a `with`, which websockets >= 17.1
    # reports as deprecated; that is the client's business, not a failure here.
    pytest.mark.filterwarnings("ignore:connect\\(\\) must be used as a context manager"),
]

REFLEX = str(Path(sys.executable).with_name("reflex"))


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """``reflex serve`` (Hypercorn) on a real tiny-pi05 export, the guard and this transport on."""
    artifact = exported_artifact("tiny-pi05", embodiment=None, mode="decomposed")
    log = tmp_path_factory.mktemp("openpi") / "server.log"
    argv = [REFLEX, "serve", str(artifact), "--embodiment", "franka",
            "--guard", "clamp", "--guard-trip-after", "0",
            "--openpi-key-map", "observation/extra=ignore,observation/top=images.front"]  # fmt: skip
    with server_process(argv, log_path=log) as base:
        yield int(base.rsplit(":", 1)[1])


def observation(**extra: Any) -> dict[str, Any]:
    rng = np.random.default_rng(0)
    return {
        "observation/image": rng.integers(0, 255, (32, 32, 3), dtype=np.uint8),
        "observation/wrist_image": rng.integers(0, 255, (3, 24, 24), dtype=np.uint8),
        "observation/state": np.array([0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02]),
        "prompt": "pick up the red block",
        **extra,
    }


def test_openpi_client_round_trip(server: int) -> None:
    client = WebsocketClientPolicy("127.0.0.1", server)
    meta = client.get_server_metadata()
    assert meta["server"] == "reflex" and meta["ready"] is True
    assert (meta["chunk_size"], meta["action_dim"], meta["embodiment"]) == (16, 8, "franka")
    assert meta["wedges"] == ["actionguard"]
    assert meta["key_map"]["observation/extra"] == "ignore"

    first = client.infer(observation())
    assert first["actions"].shape == (16, 8) and first["actions"].dtype == np.float32
    assert first["server_timing"]["infer_ms"] > 0 and "prev_total_ms" not in first["server_timing"]
    # the wedges ran: every chunk an openpi client gets went through ActionGuard
    assert first["reflex"]["guard"]["verdict"] in ("pass", "clamped")
    assert first["reflex"]["embodiment"] == "franka"
    ranges = EmbodimentConfig.load_preset("franka").action_ranges
    assert np.all(first["actions"] >= ranges[:, 0] - 1e-6)  # clamped into the joint limits
    assert np.all(first["actions"] <= ranges[:, 1] + 1e-6)

    # the key map option: an extra key ignored, another camera name routed to images.front
    routed = {k: v for k, v in observation().items() if k != "observation/image"}
    second = client.infer(
        {
            **routed,
            "observation/extra": np.zeros(3),
            "observation/top": np.zeros((8, 8, 3), np.uint8),
        }
    )
    assert second["actions"].shape == (16, 8)
    assert second["server_timing"]["prev_total_ms"] > 0


def test_a_bad_observation_gets_a_text_frame_and_close_1011(server: int) -> None:
    client = WebsocketClientPolicy("127.0.0.1", server)
    with pytest.raises(RuntimeError) as info:
        client.infer(observation(**{"observation/state": np.zeros(3)}))
    error = json.loads(str(info.value).split("\n", 1)[1])
    assert (error["error"], error["status"]) == ("state-length-mismatch", 422)
    with pytest.raises(ConnectionClosedError) as closed:
        client._ws.recv(timeout=10)  # the server closed the socket after the text frame
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


@pytest.mark.parametrize("client_answers", [True, False], ids=["answered", "never-answered"])
def test_the_error_close_waits_for_the_clients_close_frame(
    server: int, client_answers: bool
) -> None:
    """The server keeps the closing handshake: after its text frame and close it keeps TCP open
    for the client's close frame. (Closing TCP at once let openpi's client fail its close reply
    and drop the text frame it had just read: a ConnectionClosedError instead of the error.)"""
    with RawWebSocket(f"ws://127.0.0.1:{server}/") as ws:
        assert unpackb(ws.receive())["server"] == "reflex"
        ws.send(packb(observation(**{"observation/state": np.zeros(3)})))
        text = ws.receive()
        assert isinstance(text, str) and json.loads(text)["error"] == "state-length-mismatch"
        close = ws.receive()
        assert isinstance(close, CloseConnection) and close.code == 1011
        assert not ws.tcp_closed_within(0.5)
        if client_answers:
            ws.answer_close(close)
        assert ws.tcp_closed_within(10)  # a silent client is dropped after a bound, too


def test_refused_dtypes_close_with_1011_too(server: int) -> None:
    with ws_connect(f"ws://127.0.0.1:{server}/") as ws:
        assert unpackb(ws.recv(timeout=10))["server"] == "reflex"
        bad = {
            "observation/state": {
                "__ndarray__": True,
                "data": b"\0" * 8,
                "dtype": "|O",
                "shape": [1],
            }
        }
        ws.send(msgpack.packb(bad))
        text = ws.recv(timeout=10)
        assert isinstance(text, str) and json.loads(text)["error"] == "openpi-bad-frame"
        with pytest.raises(ConnectionClosedError) as closed:
            ws.recv(timeout=10)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1011


def test_healthz_and_plain_get_root(server: int) -> None:
    base = f"http://127.0.0.1:{server}"
    assert httpx.get(base + "/healthz", timeout=5).text == "OK\n"
    root = httpx.get(base + "/", timeout=5)
    assert root.status_code == 404 and root.json()["error"] == "not-found"
    assert httpx.get(base + "/health", timeout=5).json()["status"] == "ready"
