"""A real Hypercorn on 127.0.0.1 in a subprocess: readiness from process start, /act, /ws
(100 frames in order), body limit on the wire, SIGTERM with a request in flight (it completes,
exit 0), a failed start-up (exit 1), and ``reflex serve`` on a real exported tiny-pi05."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from websockets.sync.client import connect as ws_connect
from wsproto.events import CloseConnection

from reflex_core.plugin.testing import RawWebSocket, fake_server_process

pytestmark = pytest.mark.slow

TESTS = Path(__file__).parent
DOUBLE_SCRIPT = TESTS / "serve_double.py"
REFLEX = str(Path(sys.executable).with_name("reflex"))


def observation(seq: int | None = None, state_dim: int = 8, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"state": [0.1 * i for i in range(state_dim)], "prompt": "pick"}
    if seq is not None:
        body["seq"] = seq
    body.update(extra)
    return body


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """A server subprocess, its port and its log."""

    def __init__(self, argv: Sequence[str], port: int, log_path: Path) -> None:
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        self.proc = subprocess.Popen(argv, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def poll_health(self, timeout_s: float = 60.0) -> list[tuple[int, str]]:
        """Poll /health from now until it answers 200; returns every (status, state) seen."""
        seen: list[tuple[int, str]] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited with {self.proc.returncode}:\n{self.log()}")
            try:
                r = httpx.get(self.base + "/health", timeout=2)
            except httpx.TransportError:
                time.sleep(0.02)
                continue
            seen.append((r.status_code, r.json()["status"]))
            if r.status_code == 200:
                return seen
            time.sleep(0.02)
        raise AssertionError(f"never ready; saw {seen[-5:]}\n{self.log()}")

    def stop(self, sig: int = signal.SIGTERM, timeout_s: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout_s)
        finally:
            self._log.close()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._log.close()


@contextlib.contextmanager
def double_server(tmp_path: Path, *args: str) -> Iterator[ServerProcess]:
    port = free_port()
    server = ServerProcess(
        [sys.executable, str(DOUBLE_SCRIPT), "--port", str(port), *args],
        port,
        tmp_path / f"server-{port}.log",
    )
    try:
        yield server
    finally:
        server.kill()


def metric_value(base: str, name: str) -> float:
    text = httpx.get(base + "/metrics", timeout=5).text
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


# ------------------------------------------------------------------ the double, under Hypercorn


def test_readiness_from_process_start_then_act_and_ws(tmp_path: Path) -> None:
    with double_server(tmp_path, "--warmup-delay-s", "1.0") as server:
        seen = server.poll_health()
        assert seen[-1] == (200, "ready")
        not_ready = seen[:-1]
        assert not_ready, "expected /health to answer 503 during the 1 s warm-up"
        assert all(status == 503 and state in ("loading", "warming") for status, state in not_ready)
        assert "warming" in {state for _, state in not_ready}

        with httpx.Client(base_url=server.base, timeout=10) as client:
            r = client.post("/act", json=observation(seq=5), headers={"X-Request-ID": "hc-1"})
            assert r.status_code == 200, r.text
            assert r.headers["x-request-id"] == "hc-1"
            assert np.asarray(r.json()["actions"]).shape == (10, 8)
            assert r.json()["seq"] == 5
            big = client.post(
                "/act",
                content=b'{"state": [' + b"0.0, " * 2_000_000 + b"0.0]}",
                headers={"content-type": "application/json"},
            )
            assert (big.status_code, big.json()["error"]) == (413, "payload-too-large")
            assert client.post("/act", json=observation(seq=6)).status_code == 200

        with ws_connect(f"ws://127.0.0.1:{server.port}/ws") as ws:
            for seq in range(100):
                ws.send(json.dumps(observation(seq=seq)))
            replies = [json.loads(ws.recv(timeout=30)) for _ in range(100)]
        assert [r["type"] for r in replies] == ["action_chunk"] * 100
        assert [r["seq"] for r in replies] == list(range(100))

        assert server.stop() == 0


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_lets_the_in_flight_request_finish_then_exits_0(
    tmp_path: Path, sig: signal.Signals
) -> None:
    with double_server(tmp_path, "--infer-delay-s", "1.5") as server:
        server.poll_health()
        outcome: dict[str, Any] = {}

        def call() -> None:
            try:
                outcome["response"] = httpx.post(
                    server.base + "/act", json=observation(seq=9), timeout=30
                )
            except Exception as exc:  # recorded and asserted below
                outcome["error"] = exc

        caller = threading.Thread(target=call)
        caller.start()
        deadline = time.monotonic() + 10
        while metric_value(server.base, "reflex_in_flight") < 1:
            assert time.monotonic() < deadline, "the request never got in flight"
            time.sleep(0.02)
        server.proc.send_signal(sig)
        caller.join(30)
        code = server.proc.wait(30)
        log = server.log()
    assert "error" not in outcome, outcome
    response = outcome["response"]
    assert response.status_code == 200 and response.json()["seq"] == 9
    assert code == 0, log
    assert sig.name in log and "stopped" in log


def test_a_failed_start_up_exits_1(tmp_path: Path) -> None:
    with double_server(tmp_path, "--fail-warmup") as server:
        code = server.proc.wait(30)
        log = server.log()
    assert code == 1, log
    assert "warm-up failed on purpose" in log and "start-up failed" in log


# ------------------------------------------------------- reflex serve on a real artifact


@pytest.fixture(scope="module")
def onnx_artifact(tmp_path_factory: pytest.TempPathFactory, runtime_graphs: Any) -> Path:
    """A real decomposed artifact (hand-built ONNX graphs, hashes, parity verdict) that the real
    runtime loads: ``reflex serve`` end to end without torch."""
    return Path(runtime_graphs.write_artifact(tmp_path_factory.mktemp("onnx") / "dec"))


def test_reflex_serve_on_an_onnx_artifact_matches_the_runtime(
    onnx_artifact: Path, tmp_path: Path
) -> None:
    from reflex_core.runtime import load_policy
    from reflex_core.serve import noise_from_seed
    from reflex_core.wire import parse_observation

    port = free_port()
    server = ServerProcess(
        [REFLEX, "serve", str(onnx_artifact), "--port", str(port), "--prefix-cache", "4",
         "--workers-threads", "1"],
        port,
        tmp_path / "reflex-serve.log",
    )  # fmt: skip
    try:
        seen = server.poll_health(timeout_s=60)
        assert all(status == 503 and state in ("loading", "warming") for status, state in seen[:-1])
        health = httpx.get(server.base + "/health", timeout=5).json()
        assert health["raw_actions"] is True and health["warnings"]
        assert health["model"]["prefix_cache_size"] == 4
        assert health["model"]["mode"] == "decomposed"

        policy = load_policy(onnx_artifact)
        body = {"state": [0.1, 0.5, 1.0, 1.9], "prompt": "pick up the red cube", "seq": 4}
        observation = parse_observation(body)
        noise = noise_from_seed(11, policy.chunk_size, policy.max_action_dim)[None]
        direct = policy.infer([observation], noise).actions[0]

        r = httpx.post(server.base + "/act", json={**body, "noise_seed": 11}, timeout=30)
        assert r.status_code == 200, r.text
        got = np.asarray(r.json()["actions"], dtype=np.float32)
        assert got.shape == (policy.chunk_size, policy.action_dim)
        np.testing.assert_array_equal(got, direct)
        meta = r.json()["metadata"]
        assert meta["raw_actions"] is True and meta["policy"] == "default"
        assert meta["model"]["model_version"] == policy.info["model_version"]
        assert meta["timings"]["steps"] == policy.info["num_steps"]

        with ws_connect(f"ws://127.0.0.1:{port}/ws", compression=None) as ws:
            ws.send(json.dumps({**body, "noise_seed": 11}))
            frame = json.loads(ws.recv(timeout=30))
            ws.send(json.dumps({"state": [0.0, 1.0], "seq": 5}))
            error = json.loads(ws.recv(timeout=30))
        np.testing.assert_array_equal(np.asarray(frame["actions"], dtype=np.float32), direct)
        assert (error["error"], error["seq"]) == ("state-length-mismatch", 5)
        assert server.stop() == 0, server.log()
    finally:
        server.kill()


def test_reflex_serve_exits_1_when_the_artifact_fails_verification(
    onnx_artifact: Path, tmp_path: Path
) -> None:
    import shutil

    broken = tmp_path / "broken"
    shutil.copytree(onnx_artifact, broken)
    graph = next(broken.glob("*.onnx"))
    graph.write_bytes(graph.read_bytes() + b"tampered")
    port = free_port()
    server = ServerProcess([REFLEX, "serve", str(broken), "--port", str(port)], port,
                           tmp_path / "broken.log")  # fmt: skip
    try:
        code = server.proc.wait(60)
    finally:
        server.kill()
    log = server.log()
    assert code == 1, log
    assert "artifact-hash-mismatch" in log


@pytest.fixture(scope="module")
def tiny_pi05_franka(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real tiny-pi05 artifact exported with the franka embodiment (through the CLI, the way
    a user makes one)."""
    out = tmp_path_factory.mktemp("tiny-pi05-franka") / "export"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    result = subprocess.run(
        # one parity case keeps the fixture quick; the export tests cover the full gate
        [
            REFLEX,
            "export",
            "tiny-pi05",
            "-o",
            str(out),
            "--embodiment",
            "franka",
            "--parity-cases",
            "1",
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_reflex_serve_matches_the_runtime_on_a_real_artifact(
    tiny_pi05_franka: Path, tmp_path: Path
) -> None:
    from reflex_core.runtime import load_policy
    from reflex_core.serve import noise_from_seed
    from reflex_core.wire import parse_observation

    port = free_port()
    server = ServerProcess(
        [REFLEX, "serve", str(tiny_pi05_franka), "--embodiment", "franka", "--port", str(port)],
        port,
        tmp_path / "reflex-serve.log",
    )
    try:
        seen = server.poll_health(timeout_s=120)
        assert all(status == 503 for status, _ in seen[:-1])
        health = httpx.get(server.base + "/health", timeout=5).json()
        assert health["embodiment"] == "franka" and health["raw_actions"] is False
        assert health["model"]["family"] == "pi05"

        policy = load_policy(tiny_pi05_franka, embodiment="franka")
        body = {
            "state": [0.05 * i for i in range(policy.state_dim)],
            "prompt": "pick up the cube",
            "noise_seed": 42,
            "seq": 3,
        }
        r = httpx.post(server.base + "/act", json=body, timeout=60)
        assert r.status_code == 200, r.text
        got = np.asarray(r.json()["actions"], dtype=np.float32)
        assert got.shape == (policy.chunk_size, 8)

        obs = parse_observation({k: v for k, v in body.items() if k != "noise_seed"})
        noise = noise_from_seed(42, policy.chunk_size, policy.max_action_dim)[None]
        direct = policy.infer([obs], noise).actions[0]
        np.testing.assert_array_equal(got, direct)
        meta = r.json()["metadata"]
        assert meta["embodiment"] == "franka" and meta["model"]["family"] == "pi05"

        with ws_connect(f"ws://127.0.0.1:{port}/ws") as ws:
            ws.send(json.dumps(body))
            frame = json.loads(ws.recv(timeout=60))
        np.testing.assert_array_equal(np.asarray(frame["actions"], dtype=np.float32), direct)
        assert server.stop() == 0, server.log()
    finally:
        server.kill()


def test_ws_closes_keep_the_closing_handshake(tmp_path: Path) -> None:
    """``/ws`` closes an idle session (1000 ws-idle) and then keeps TCP open for the client's
    close frame, so what it sent just before the close reaches the client."""
    with fake_server_process(
        "--ws-idle-timeout-s", "0.5", log_path=tmp_path / "log", load_plugins=""
    ) as base:
        with RawWebSocket(base.replace("http://", "ws://") + "/ws") as ws:
            ws.send(json.dumps({"state": [0.0] * 4, "seq": 1}))
            reply = json.loads(ws.receive())
            assert (reply["type"], reply["seq"]) == ("action_chunk", 1), reply
            close = ws.receive()
            assert isinstance(close, CloseConnection)
            assert (close.code, close.reason) == (1000, "ws-idle")
            assert not ws.tcp_closed_within(0.3)
            ws.answer_close(close)
            assert ws.tcp_closed_within(10)
