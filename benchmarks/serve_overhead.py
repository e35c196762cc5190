"""What serving adds to a policy call: the runtime's direct ``policy.infer`` vs ``POST /act`` over
HTTP vs ``/ws``, measured side by side in one run on tiny-pi05 (franka).

The server is a real ``reflex serve`` subprocess (Hypercorn on 127.0.0.1). Every client keeps one
connection open for the whole run, as a robot's control loop would:

- ``http``: the standard library's ``http.client.HTTPConnection`` (TCP_NODELAY). **The headline
  HTTP figure**: the target asks what the server and the transport add to the direct call, and
  this is a real, general HTTP/1.1 client whose own cost is modest (~0.3 ms of CPU a call
  more than ``http_raw`` on the reference box).
- ``http_raw``: one socket, a prebuilt request, the response framed by its Content-Length: the
  least any client can spend, i.e. server + kernel + wire alone.
- ``http_httpx``: ``httpx.Client``. Its own CPU (~1.2 ms a call on the reference box) is part of
  what a robot using it pays, so it is reported separately, not hidden, and not the headline.
- ``ws``: the ``websockets`` sync client with permessage-deflate off (recommended for control
  loops; the headline WS figure); ``ws_deflate`` with the library default (compression on);
  ``ws_raw``: a socket, a prebuilt masked frame, the answer read by its length (the floor of
  any WS client: the ``websockets`` sync client reads on a background thread, one more wake-up).

The calls are interleaved (the order rotates every round) so machine noise lands on all paths
alike. ``client_cpu_*`` is the calling thread's CPU time per call (``time.thread_time``): the
client library's own work plus its system calls. The observation is a state vector and a prompt
(no images: JPEG decoding is the wire format's cost, not the server's, and would swamp what this
measures; ``--images`` adds them).

To tell the server's share from the transport's, the same clients also call a *floor* server: a
bare ASGI app under the same Hypercorn settings that answers every request with a canned chunk
of the same size, doing no work. ``*_floor_p50_ms`` is what a round trip costs on this machine
before any Reflex code runs. From each answer's ``metadata.timings``: ``server_internal_*`` is
the server's own receipt-to-response time minus the policy; ``*_minus_server_policy_p50_ms`` is
each call's round trip minus that call's own policy time (what serving added to it, free of the
policy's own run-to-run noise); ``server_policy_p50_ms`` is the policy's time inside the server
(compare it with ``direct_p50_ms``: when they differ, the target's "p50 minus direct p50"
measure moves by the difference). Both servers run the event loop ``--event-loop`` names
(default ``auto``, as ``reflex serve``: uvloop where installed); the JSON says which ran.

Prints a table, then ONE JSON line (the last line) with p50/p99 per path and the overheads.
Targets: HTTP adds <= 1 ms p50, WS <= 0.5 ms p50 to the direct call.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_overhead.py [--calls 500] [--artifact DIR]
"""

from __future__ import annotations

import argparse
import base64
import http.client
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REFLEX = str(Path(sys.executable).with_name("reflex"))
HTTP_TARGET_MS = 1.0
WS_TARGET_MS = 0.5
HEADLINE_CLIENTS = {
    "http": "http.client.HTTPConnection (stdlib), keep-alive, TCP_NODELAY",
    "ws": "websockets.sync.client, compression=None",
}


def export_tiny_pi05(out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [REFLEX, "export", "tiny-pi05", "-o", str(out), "--embodiment", "franka", "-q"]
    print(f"exporting: {' '.join(cmd)}", flush=True)
    subprocess.run(cmd, check=True, env=env)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(proc: subprocess.Popen[bytes], url: str, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{url}: server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    proc.kill()
    raise SystemExit(f"{url} never answered 200")


def start_server(
    artifact: Path, port: int, log: Any, embodiment: str | None, event_loop: str
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [REFLEX, "serve", str(artifact), "--port", str(port), "--workers-threads", "1",
           "--idempotency-window-s", "0", "--event-loop", event_loop]  # fmt: skip
    if embodiment:
        cmd += ["--embodiment", embodiment]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_until_up(proc, f"http://127.0.0.1:{port}/health")
    return proc


def start_floor_server(
    port: int, reply: Path, log: Any, event_loop: str
) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "--floor-server", str(port), "--floor-reply", str(reply),
           "--event-loop", event_loop]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    wait_until_up(proc, f"http://127.0.0.1:{port}/health")
    return proc


def floor_app(reply: bytes) -> Callable[..., Any]:
    """A bare ASGI app: reads the request, answers ``reply``; WebSocket: one reply per frame."""
    text = reply.decode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(reply)).encode()),
    ]

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                else:
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] == "http":
            while (await receive()).get("more_body"):
                pass
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": reply})
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while (await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": text})

    return app


def run_floor_server(port: int, reply_path: Path, event_loop: str) -> int:
    import asyncio

    from hypercorn.asyncio import serve

    from reflex_core.serve.config import ServeConfig
    from reflex_core.serve.hypercorn_runner import hypercorn_config, resolve_event_loop

    config = hypercorn_config(ServeConfig(port=port))
    main = serve(floor_app(reply_path.read_bytes()), config)  # type: ignore[arg-type]
    if resolve_event_loop(event_loop) == "uvloop":
        import uvloop

        uvloop.run(main)
    else:
        asyncio.run(main)
    return 0


def png_b64(height: int, width: int, seed: int) -> str:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def percentiles(samples_ms: list[float]) -> tuple[float, float]:
    arr = np.asarray(samples_ms)
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 99))


# --------------------------------------------------------------------------------- clients


def _nodelay(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class _RawSocket:
    """One TCP_NODELAY socket to the server and the bytes received but not yet consumed."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        _nodelay(self.sock)
        self.buf = bytearray()

    def _recv(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise SystemExit("the server closed the connection")
        self.buf += chunk

    def close(self) -> None:
        self.sock.close()


class RawHTTPClient(_RawSocket):
    """The least an HTTP client can do: one keep-alive socket, a prebuilt request, and the
    response framed by its ``Content-Length`` (what the server sends for /act)."""

    def __init__(self, port: int, path: str, body: bytes) -> None:
        super().__init__(port)
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.request = head.encode() + body

    def post(self) -> tuple[int, bytes]:
        self.sock.sendall(self.request)
        while (end_of_head := self.buf.find(b"\r\n\r\n")) < 0:
            self._recv()
        head = bytes(self.buf[:end_of_head]).decode("latin-1")
        status = int(head.split(" ", 2)[1])
        length = next(
            int(line.split(":", 1)[1])
            for line in head.split("\r\n")[1:]
            if line.lower().startswith("content-length:")
        )
        end = end_of_head + 4 + length
        while len(self.buf) < end:
            self._recv()
        body = bytes(self.buf[end_of_head + 4 : end])
        del self.buf[:end]
        return status, body


class StdlibHTTPClient:
    """``http.client.HTTPConnection``, kept alive, with TCP_NODELAY."""

    def __init__(self, port: int, path: str, body: bytes) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.conn.connect()
        assert self.conn.sock is not None
        _nodelay(self.conn.sock)
        self.path, self.body = path, body
        self.headers = {"Content-Type": "application/json"}

    def post(self) -> tuple[int, bytes]:
        self.conn.request("POST", self.path, self.body, self.headers)
        response = self.conn.getresponse()
        return response.status, response.read()

    def close(self) -> None:
        self.conn.close()


class HttpxClient:
    """``httpx.Client`` with its default (keep-alive) connection pool."""

    def __init__(self, port: int, path: str, body: bytes) -> None:
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
        self.path, self.body = path, body
        self.headers = {"content-type": "application/json"}

    def post(self) -> tuple[int, bytes]:
        response = self.client.post(self.path, content=self.body, headers=self.headers)
        return response.status_code, response.content

    def close(self) -> None:
        self.client.close()


class WSClient:
    """One ``websockets`` sync connection; a text frame out, a text frame back."""

    def __init__(self, url: str, body: bytes, compression: str | None) -> None:
        from websockets.sync.client import connect

        kwargs: dict[str, Any] = {"max_size": None}
        if compression is None:
            kwargs["compression"] = None
        self.conn = connect(url, **kwargs).__enter__()  # closed by close()
        self.text = body.decode()

    def post(self) -> tuple[int, bytes]:
        self.conn.send(self.text)
        reply = self.conn.recv(timeout=30)
        return 200, reply.encode() if isinstance(reply, str) else reply

    def close(self) -> None:
        self.conn.close()


class RawWSClient(_RawSocket):
    """The least a WebSocket client can do: one socket, the handshake by hand, a prebuilt masked
    text frame out, and the server's unmasked frame read by its length header."""

    def __init__(self, port: int, path: str, body: bytes) -> None:
        super().__init__(port)
        key = base64.b64encode(os.urandom(16)).decode()
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        while (end := self.buf.find(b"\r\n\r\n")) < 0:
            self._recv()
        if not self.buf.startswith(b"HTTP/1.1 101"):
            raise SystemExit(f"WebSocket handshake refused: {bytes(self.buf[:end])!r}")
        del self.buf[: end + 4]
        # a client's frames are masked (RFC 6455 5.3); one fixed mask is fine for a benchmark
        mask = os.urandom(4)
        n = len(body)
        length = (
            bytes([0x80 | n])
            if n < 126
            else bytes([0x80 | 126]) + n.to_bytes(2, "big")
            if n < 65536
            else bytes([0x80 | 127]) + n.to_bytes(8, "big")
        )
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(body))
        self.frame = b"\x81" + length + mask + masked

    def post(self) -> tuple[int, bytes]:
        self.sock.sendall(self.frame)
        while len(self.buf) < 2:
            self._recv()
        first, n = self.buf[0], self.buf[1] & 0x7F
        if first != 0x81:  # FIN + text: how the server sends every chunk
            raise SystemExit(f"unexpected WebSocket frame header {first:#x}")
        start = 2
        if n >= 126:
            start += 2 if n == 126 else 8
            while len(self.buf) < start:
                self._recv()
            n = int.from_bytes(self.buf[2:start], "big")
        while len(self.buf) < start + n:
            self._recv()
        payload = bytes(self.buf[start : start + n])
        del self.buf[: start + n]
        return 200, payload


HTTP_CLIENTS: dict[str, type[Any]] = {
    "http": StdlibHTTPClient,
    "http_raw": RawHTTPClient,
    "http_httpx": HttpxClient,
}


# ------------------------------------------------------------------------------------- run


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=500, help="calls per path (>= 500 for p99)")
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--artifact", type=Path, help="reuse an exported tiny-pi05 (franka) dir")
    parser.add_argument("--images", action="store_true", help="send PNG images for each camera")
    parser.add_argument(
        "--embodiment", default="franka", help="embodiment for server and direct call ('' = raw)"
    )
    parser.add_argument("--floor-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    parser.add_argument(
        "--event-loop",
        choices=("auto", "asyncio", "uvloop"),
        default="auto",
        help="both servers' event loop (reflex serve --event-loop; auto: uvloop if installed)",
    )
    parser.add_argument("--floor-reply", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_server is not None:
        return run_floor_server(args.floor_server, args.floor_reply, args.event_loop)

    from reflex_core.runtime import load_policy
    from reflex_core.wire import parse_observation

    with tempfile.TemporaryDirectory(prefix="reflex-serve-bench-") as tmp_dir:
        tmp = Path(tmp_dir)
        artifact = args.artifact
        if artifact is None:
            artifact = tmp / "tiny-pi05-franka"
            export_tiny_pi05(artifact)
        policy = load_policy(artifact, embodiment=args.embodiment or None)
        body: dict[str, Any] = {
            "state": [0.01 * i for i in range(policy.state_dim)],
            "prompt": "pick up the red cube",
        }
        if args.images:
            h, w = policy.image_size
            body["images"] = {n: png_b64(h, w, i) for i, n in enumerate(policy.camera_names)}
        observation = parse_observation(body)
        payload = json.dumps(body).encode()

        port, floor_port = free_port(), free_port()
        log_path = tmp / "serve.log"
        with log_path.open("wb") as log:
            proc = start_server(artifact, port, log, args.embodiment or None, args.event_loop)
            floor = None
            try:
                status, reply = StdlibHTTPClient(port, "/act", payload).post()
                if status != 200:
                    raise SystemExit(f"/act answered {status}: {reply!r}")
                (tmp / "reply.json").write_bytes(reply)
                floor = start_floor_server(floor_port, tmp / "reply.json", log, args.event_loop)
                run = run_interleaved(
                    policy, observation, payload, port, floor_port, args.calls, args.warmup
                )
            finally:
                if floor is not None:
                    floor.send_signal(signal.SIGTERM)
                    floor.wait(60)
                proc.send_signal(signal.SIGTERM)
                code = proc.wait(60)
        if code != 0:
            print(log_path.read_text(), file=sys.stderr)
            raise SystemExit(f"reflex serve exited with {code} after SIGTERM")

    result = report(run, args, policy, len(reply))
    print(json.dumps(result))
    return 0


class Run:
    """Samples of one interleaved run: wall ms and client CPU ms per path, and the server's
    own timings from each answer."""

    def __init__(self, names: list[str]) -> None:
        self.wall: dict[str, list[float]] = {name: [] for name in names}
        self.cpu: dict[str, list[float]] = {name: [] for name in names}
        self.server_internal: dict[str, list[float]] = {}
        self.minus_policy: dict[str, list[float]] = {}
        self.server_policy: list[float] = []

    def add_server_timings(self, name: str, wall_ms: float, reply: bytes) -> None:
        frame = json.loads(reply)
        if frame.get("type") != "action_chunk":
            raise SystemExit(f"{name} answered {frame}")
        timings = frame["metadata"]["timings"]
        policy_ms = timings["policy_ms"]
        self.server_internal.setdefault(name, []).append(timings["total_ms"] - policy_ms)
        # this call's round trip less this call's policy time: what serving added to it
        self.minus_policy.setdefault(name, []).append(wall_ms - policy_ms)
        self.server_policy.append(policy_ms)


def run_interleaved(
    policy: Any,
    observation: Any,
    payload: bytes,
    port: int,
    floor_port: int,
    calls: int,
    warmup: int,
) -> Run:
    with ExitStack() as stack:
        clients: dict[str, Any] = {}

        def add(name: str, client: Any) -> None:
            clients[name] = client
            stack.callback(client.close)

        for name, cls in HTTP_CLIENTS.items():
            add(name, cls(port, "/act", payload))
            add(f"{name}_floor", cls(floor_port, "/act", payload))
        add("ws", WSClient(f"ws://127.0.0.1:{port}/ws", payload, None))
        add("ws_floor", WSClient(f"ws://127.0.0.1:{floor_port}/ws", payload, None))
        add("ws_raw", RawWSClient(port, "/ws", payload))
        add("ws_raw_floor", RawWSClient(floor_port, "/ws", payload))
        add("ws_deflate", WSClient(f"ws://127.0.0.1:{port}/ws", payload, "deflate"))

        def direct() -> tuple[int, bytes]:
            policy.infer([observation])
            return 200, b""

        calls_by_name: dict[str, Callable[[], tuple[int, bytes]]] = {"direct": direct}
        calls_by_name.update({name: client.post for name, client in clients.items()})
        names = list(calls_by_name)
        run = Run(names)
        for i in range(warmup + calls):
            # rotate the order so no path always follows the same neighbour
            shift = i % len(names)
            for name in names[shift:] + names[:shift]:
                fn = calls_by_name[name]
                c0, t0 = time.thread_time_ns(), time.perf_counter_ns()
                status, reply = fn()
                t1, c1 = time.perf_counter_ns(), time.thread_time_ns()
                if status != 200:
                    raise SystemExit(f"{name} answered {status}: {reply!r}")
                if i < warmup:
                    continue
                run.wall[name].append((t1 - t0) / 1e6)
                run.cpu[name].append((c1 - c0) / 1e6)
                if name != "direct" and not name.endswith("_floor"):
                    run.add_server_timings(name, (t1 - t0) / 1e6, reply)
    return run


def report(run: Run, args: Any, policy: Any, reply_bytes: int) -> dict[str, Any]:
    from reflex_core.serve.hypercorn_runner import resolve_event_loop

    stats = {name: percentiles(values) for name, values in run.wall.items()}
    cpu = {name: float(np.median(values)) for name, values in run.cpu.items()}
    inside = {name: percentiles(values) for name, values in run.server_internal.items()}
    minus_policy = {name: percentiles(values) for name, values in run.minus_policy.items()}
    server_policy50 = percentiles(run.server_policy)[0]
    direct50, direct99 = stats["direct"]
    print(f"{'path':17} {'p50 ms':>8} {'p99 ms':>8} {'+p50 ms':>8} {'-policy':>8} {'inside':>8} "
          f"{'client cpu':>10}")  # fmt: skip
    for name, (p50, p99) in stats.items():
        added = "" if name.endswith("_floor") or name == "direct" else f"{p50 - direct50:.3f}"
        less = f"{minus_policy[name][0]:.3f}" if name in minus_policy else ""
        own = f"{inside[name][0]:.3f}" if name in inside else ""
        print(f"{name:17} {p50:8.3f} {p99:8.3f} {added:>8} {less:>8} {own:>8} {cpu[name]:10.3f}")
    print(
        "+p50: p50 minus direct p50 (the target's measure); -policy: p50 of each call's round trip "
        "less its own policy time in the server; inside: the server's receipt-to-response less "
        "the policy; client cpu: the calling thread's CPU per call (p50)"
    )
    print(f"the policy inside the server: p50 {server_policy50:.3f} ms (direct: {direct50:.3f})")
    print(f"headline clients: {HEADLINE_CLIENTS}")

    def r(value: float) -> float:
        return round(value, 4)

    result: dict[str, Any] = {
        "benchmark": "serve_overhead",
        "model": policy.info.get("model"),
        "embodiment": args.embodiment or None,
        "mode": policy.info.get("mode"),
        "calls": args.calls,
        "images": bool(args.images),
        "reply_bytes": reply_bytes,
        "event_loop": resolve_event_loop(args.event_loop),
        "headline_clients": HEADLINE_CLIENTS,
    }
    for name, (p50, p99) in stats.items():
        result[f"{name}_p50_ms"] = r(p50)
        result[f"{name}_p99_ms"] = r(p99)
    for name, (p50, p99) in stats.items():
        if name != "direct" and not name.endswith("_floor"):
            result[f"{name}_overhead_p50_ms"] = r(p50 - direct50)
            result[f"{name}_overhead_p99_ms"] = r(p99 - direct99)
            floor = stats.get(f"{name}_floor")
            if floor is not None:
                result[f"{name}_overhead_above_floor_p50_ms"] = r(p50 - direct50 - floor[0])
    for name, (p50, _p99) in minus_policy.items():
        result[f"{name}_minus_server_policy_p50_ms"] = r(p50)
    for name, value in cpu.items():
        if name != "direct":
            result[f"client_cpu_{name}_p50_ms"] = r(value)
    for name, (p50, p99) in inside.items():
        result[f"server_internal_{name}_p50_ms"] = r(p50)
        result[f"server_internal_{name}_p99_ms"] = r(p99)
    result["server_policy_p50_ms"] = r(server_policy50)
    result["http_target_met"] = stats["http"][0] - direct50 <= HTTP_TARGET_MS
    result["ws_target_met"] = stats["ws"][0] - direct50 <= WS_TARGET_MS
    return result


if __name__ == "__main__":
    sys.exit(main())
