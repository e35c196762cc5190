"""What serving adds to a policy call: the runtime's direct ``policy.infer`` vs ``POST /act``
over HTTP vs ``/ws``, measured side by side in one run on tiny-pi05 (franka).

The calls are interleaved (direct, HTTP, WS, ...) so machine noise lands on all of them alike.
The server is a real ``reflex serve`` subprocess (Hypercorn on 127.0.0.1); the HTTP client is one
keep-alive ``httpx.Client``, the WS client one ``websockets`` connection. ``ws`` connects with
permessage-deflate off (recommended for control loops), ``ws_deflate`` with the library
default. The observation is a state vector and a prompt (no images: JPEG decoding is the wire
format's cost, not the server's, and would swamp what this measures; ``--images`` adds them).

To tell the server's share from the transport's, the same clients also call a *floor* server:
a bare ASGI app under the same Hypercorn settings that answers every request with a canned
chunk of the same size, doing no work. ``*_floor_p50_ms`` is what HTTP/WS round trips cost on
this machine before any Reflex code runs.

Prints a table, then ONE JSON line (the last line) with p50/p99 per path and the overheads.
Targets: HTTP adds <= 1 ms p50, WS <= 0.5 ms p50 to the direct call.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_overhead.py [--calls 500] [--artifact DIR]
"""

from __future__ import annotations

import argparse
import base64
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
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REFLEX = str(Path(sys.executable).with_name("reflex"))
HTTP_TARGET_MS = 1.0
WS_TARGET_MS = 0.5


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
    artifact: Path, port: int, log: Any, embodiment: str | None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [REFLEX, "serve", str(artifact), "--port", str(port), "--workers-threads", "1",
           "--idempotency-window-s", "0"]  # fmt: skip
    if embodiment:
        cmd += ["--embodiment", embodiment]
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    wait_until_up(proc, f"http://127.0.0.1:{port}/health")
    return proc


def start_floor_server(port: int, reply: Path, log: Any) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, __file__, "--floor-server", str(port), "--floor-reply", str(reply)]
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


def run_floor_server(port: int, reply_path: Path) -> int:
    import asyncio

    from hypercorn.asyncio import serve

    from reflex_core.serve.config import ServeConfig
    from reflex_core.serve.hypercorn_runner import hypercorn_config

    config = hypercorn_config(ServeConfig(port=port))
    asyncio.run(serve(floor_app(reply_path.read_bytes()), config))  # type: ignore[arg-type]
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
    parser.add_argument("--floor-reply", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.floor_server is not None:
        return run_floor_server(args.floor_server, args.floor_reply)

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
        payload = json.dumps(body)

        port, floor_port = free_port(), free_port()
        log_path = tmp / "serve.log"
        with log_path.open("wb") as log:
            proc = start_server(artifact, port, log, args.embodiment or None)
            floor = None
            try:
                reply = httpx.post(
                    f"http://127.0.0.1:{port}/act",
                    content=payload,
                    headers={"content-type": "application/json"},
                    timeout=30,
                ).content
                (tmp / "reply.json").write_bytes(reply)
                floor = start_floor_server(floor_port, tmp / "reply.json", log)
                samples, server_side = run_interleaved(
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

    result = report(samples, server_side, args, policy, len(reply))
    print(json.dumps(result))
    return 0


def run_interleaved(
    policy: Any,
    observation: Any,
    payload: str,
    port: int,
    floor_port: int,
    calls: int,
    warmup: int,
) -> tuple[dict[str, list[float]], dict[str, list[float]]]:
    from websockets.sync.client import connect

    headers = {"content-type": "application/json"}
    names = ("direct", "http", "ws", "ws_deflate", "http_floor", "ws_floor")
    samples: dict[str, list[float]] = {name: [] for name in names}
    server_side: dict[str, list[float]] = {"http": [], "ws": []}
    url = f"ws://127.0.0.1:{port}/ws"
    floor_url = f"ws://127.0.0.1:{floor_port}/ws"
    with (
        httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client,
        httpx.Client(base_url=f"http://127.0.0.1:{floor_port}", timeout=30) as floor_client,
        connect(url, max_size=None, compression=None) as ws,
        connect(url, max_size=None) as ws_deflate,
        connect(floor_url, max_size=None, compression=None) as ws_floor,
    ):

        def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
            t0 = time.perf_counter()
            out = fn()
            return (time.perf_counter() - t0) * 1e3, out

        def ws_call(conn: Any) -> dict[str, Any]:
            conn.send(payload)
            return json.loads(conn.recv(timeout=30))

        for i in range(warmup + calls):
            row: dict[str, float] = {}
            row["direct"], _ = timed(lambda: policy.infer([observation]))
            row["http"], r = timed(lambda: client.post("/act", content=payload, headers=headers))
            if r.status_code != 200:
                raise SystemExit(f"/act answered {r.status_code}: {r.text}")
            row["ws"], frame = timed(lambda: ws_call(ws))
            if frame.get("type") != "action_chunk":
                raise SystemExit(f"/ws answered {frame}")
            row["ws_deflate"], _ = timed(lambda: ws_call(ws_deflate))
            row["http_floor"], _ = timed(
                lambda: floor_client.post("/act", content=payload, headers=headers)
            )
            row["ws_floor"], _ = timed(lambda: ws_call(ws_floor))
            if i < warmup:
                continue
            for name, value in row.items():
                samples[name].append(value)
            # inside the server: receipt -> response built, minus the policy itself
            for name, timings in (
                ("http", r.json()["metadata"]["timings"]),
                ("ws", frame["metadata"]["timings"]),
            ):
                server_side[name].append(timings["total_ms"] - timings["policy_ms"])
    return samples, server_side


def report(
    samples: dict[str, list[float]],
    server_side: dict[str, list[float]],
    args: Any,
    policy: Any,
    reply_bytes: int,
) -> dict[str, Any]:
    stats = {name: percentiles(values) for name, values in samples.items()}
    inside = {name: percentiles(values) for name, values in server_side.items()}
    direct50, direct99 = stats["direct"]
    print(f"{'path':11} {'p50 ms':>9} {'p99 ms':>9} {'+p50 ms':>9}")
    for name, (p50, p99) in stats.items():
        added = "" if name.endswith("_floor") else f"{p50 - direct50:9.3f}"
        print(f"{name:11} {p50:9.3f} {p99:9.3f} {added}")
    for name, (p50, p99) in inside.items():
        print(f"inside the server ({name}), receipt to response minus the policy: "
              f"p50 {p50:.3f} ms, p99 {p99:.3f} ms")  # fmt: skip
    http50, http99 = stats["http"]
    ws50, ws99 = stats["ws"]
    http_floor50, ws_floor50 = stats["http_floor"][0], stats["ws_floor"][0]
    return {
        "benchmark": "serve_overhead",
        "model": policy.info.get("model"),
        "embodiment": args.embodiment or None,
        "mode": policy.info.get("mode"),
        "calls": args.calls,
        "images": bool(args.images),
        "reply_bytes": reply_bytes,
        "direct_p50_ms": round(direct50, 4),
        "direct_p99_ms": round(direct99, 4),
        "http_p50_ms": round(http50, 4),
        "http_p99_ms": round(http99, 4),
        "ws_p50_ms": round(ws50, 4),
        "ws_p99_ms": round(ws99, 4),
        "ws_deflate_p50_ms": round(stats["ws_deflate"][0], 4),
        "ws_deflate_p99_ms": round(stats["ws_deflate"][1], 4),
        "http_overhead_p50_ms": round(http50 - direct50, 4),
        "ws_overhead_p50_ms": round(ws50 - direct50, 4),
        "http_overhead_p99_ms": round(http99 - direct99, 4),
        "ws_overhead_p99_ms": round(ws99 - direct99, 4),
        "http_floor_p50_ms": round(http_floor50, 4),
        "ws_floor_p50_ms": round(ws_floor50, 4),
        "http_overhead_above_floor_p50_ms": round(http50 - direct50 - http_floor50, 4),
        "ws_overhead_above_floor_p50_ms": round(ws50 - direct50 - ws_floor50, 4),
        "server_internal_http_p50_ms": round(inside["http"][0], 4),
        "server_internal_ws_p50_ms": round(inside["ws"][0], 4),
        "http_target_met": http50 - direct50 <= HTTP_TARGET_MS,
        "ws_target_met": ws50 - direct50 <= WS_TARGET_MS,
    }


if __name__ == "__main__":
    sys.exit(main())
