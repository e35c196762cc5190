"""The serving hot path's shortcuts keep their promises: the fast chunk encoder writes the same
numbers as the strict stdlib encoder and still refuses NaN/Inf, /act's raw ASGI body reader
assembles streamed bodies and notices a client that left, generated request ids are unique,
and ``--event-loop uvloop`` serves for real (or says it is not installed)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from starlette.requests import ClientDisconnect

from reflex_core.errors import ConfigError, ReflexError
from reflex_core.serve import ReflexServer, ServeConfig
from reflex_core.serve.errors import dumps, encode_action_chunk
from reflex_core.serve.http_transport import read_body
from reflex_core.serve.hypercorn_runner import run
from reflex_core.serve.middleware import new_request_id

TESTS = Path(__file__).parent


def _old_encoding(seq: Any, actions: np.ndarray, metadata: dict[str, Any]) -> bytes:
    return dumps(
        {"type": "action_chunk", "seq": seq, "actions": actions.tolist(), "metadata": metadata}
    )


def test_fast_chunk_encoding_writes_the_same_numbers_as_the_stdlib() -> None:
    rng = np.random.default_rng(0)
    specials = np.array(
        [0.0, -0.0, 1e-45, -1e-45, 1.1754944e-38, 3.4028235e38, -3.4028235e38, 0.1, 1e-5, 1e16],
        dtype=np.float32,
    )
    metadata = {"policy": "default", "timings": {"total_ms": 1.25}, "note": np.float32(0.5)}
    for trial in range(300):
        scale = 10.0 ** rng.integers(-30, 30, (16, 8))
        actions = (rng.standard_normal((16, 8)) * scale).astype(np.float32)
        if trial == 0:
            actions.ravel()[: specials.size] = specials
        fast = json.loads(encode_action_chunk(trial, actions, metadata))
        assert fast == json.loads(_old_encoding(trial, actions, metadata))
        back = np.asarray(fast["actions"], dtype=np.float32)
        assert np.array_equal(back, actions) and np.array_equal(
            np.signbit(back), np.signbit(actions)
        )
        assert list(fast) == ["type", "seq", "actions", "metadata"]


def test_fast_chunk_encoding_takes_views_float64_and_no_seq() -> None:
    base = np.arange(48, dtype=np.float64).reshape(6, 8) / 7
    view = base[::2, ::2]  # not contiguous
    frame = json.loads(encode_action_chunk(None, view, {}))
    assert frame["seq"] is None and frame["actions"] == view.tolist()


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_fast_chunk_encoding_refuses_non_finite_actions(bad: float) -> None:
    actions = np.zeros((4, 2), dtype=np.float32)
    actions[2, 1] = bad
    with pytest.raises(ReflexError) as info:
        encode_action_chunk(1, actions, {})
    assert info.value.slug == "non-finite-output" and info.value.status == 500


def test_fast_chunk_encoding_keeps_metadata_strict() -> None:
    with pytest.raises(ReflexError) as info:
        encode_action_chunk(1, np.zeros((2, 2), dtype=np.float32), {"note": float("nan")})
    assert info.value.slug == "non-finite-output"


def _receive_from(messages: list[dict[str, Any]]) -> Any:
    queue = list(messages)

    async def receive() -> dict[str, Any]:
        return queue.pop(0)

    return receive


@pytest.mark.anyio
async def test_read_body_joins_a_streamed_body() -> None:
    receive = _receive_from(
        [
            {"type": "http.request", "body": b'{"state": ', "more_body": True},
            {"type": "http.request", "body": b"", "more_body": True},
            {"type": "http.request", "body": b"[0]}", "more_body": False},
        ]
    )
    assert await read_body(receive) == b'{"state": [0]}'
    assert await read_body(_receive_from([{"type": "http.request"}])) == b""


@pytest.mark.anyio
@pytest.mark.parametrize("first", [True, False])
async def test_read_body_raises_when_the_client_leaves(first: bool) -> None:
    messages = [{"type": "http.disconnect"}]
    if not first:
        messages.insert(0, {"type": "http.request", "body": b"{", "more_body": True})
    with pytest.raises(ClientDisconnect):
        await read_body(_receive_from(messages))


def test_generated_request_ids_are_unique_32_hex_digits() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)


# ------------------------------------------------------------------------------ event loop


def test_uvloop_requested_but_not_installed_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # makes `import uvloop` fail
    server = ReflexServer({}, options=ServeConfig(event_loop="uvloop"))
    with pytest.raises(ConfigError) as info:
        run(server)
    assert info.value.slug == "uvloop-unavailable"
    assert "pip install uvloop" in str(info.value)


def test_event_loop_auto_is_uvloop_where_installed_else_asyncio(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reflex_core.serve.hypercorn_runner import resolve_event_loop

    assert ServeConfig().event_loop == "auto"
    assert resolve_event_loop("auto") == "uvloop"  # a base dependency on this platform
    assert resolve_event_loop("asyncio") == "asyncio"
    monkeypatch.setitem(sys.modules, "uvloop", None)
    assert resolve_event_loop("auto") == "asyncio"
    with pytest.raises(ConfigError):
        resolve_event_loop("uvloop")


def test_config_reports_the_running_event_loop() -> None:
    import asyncio

    import uvloop

    from reflex_core.serve.ops import running_event_loop

    server = ReflexServer({}, options=ServeConfig())

    async def snapshot() -> Any:
        return server.config_snapshot()["event_loop"]

    assert running_event_loop() is None
    assert asyncio.run(snapshot()) == "asyncio"
    assert uvloop.run(snapshot()) == "uvloop"


_UVLOOP_SERVER = """
import importlib.util, logging, sys
spec = importlib.util.spec_from_file_location("serve_double", sys.argv[1])
sd = importlib.util.module_from_spec(spec); spec.loader.exec_module(sd)
from reflex_core.serve import ReflexServer, ServeConfig
from reflex_core.serve.hypercorn_runner import run
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
config = ServeConfig(port=int(sys.argv[2]), event_loop="uvloop")
sys.exit(run(ReflexServer({"default": sd.DoublePolicy()}, options=config)))
"""


@pytest.mark.slow
def test_event_loop_uvloop_serves_act_and_ws_then_stops_on_sigterm(tmp_path: Path) -> None:
    from websockets.sync.client import connect

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log_path = tmp_path / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-c", _UVLOOP_SERVER, str(TESTS / "serve_double.py"), str(port)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        try:
            base = f"http://127.0.0.1:{port}"
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, log_path.read_text()
                try:
                    if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, log_path.read_text()
                time.sleep(0.05)
            observation = {"state": [0.1 * i for i in range(8)], "prompt": "pick", "seq": 3}
            answer = httpx.post(f"{base}/act", json=observation, timeout=10)
            assert answer.status_code == 200 and answer.json()["seq"] == 3
            assert len(answer.json()["actions"]) == 10
            with connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
                ws.send(json.dumps({**observation, "seq": 4}))
                frame = json.loads(ws.recv(timeout=10))
            assert frame["type"] == "action_chunk" and frame["seq"] == 4
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(30) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
    assert "event loop: uvloop" in log_path.read_text()
