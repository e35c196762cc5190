"""Soak and fault benchmark: does the server hold?

N closed-loop clients (HTTP ``POST /act`` and ``/ws`` mixed) run for T seconds against a real
``reflex serve`` process on tiny-pi05 (franka) with the safety wedges on (ActionGuard clamping,
a ``--deadline-ms`` with the hold fallback), while faults are injected:

- the policy raises on a fraction of calls and stalls (sleeps) on another fraction (the server
  here wraps the runtime's Policy; everything else is the stock server);
- some requests are abandoned mid-body (headers and half a body, then the socket closes);
- a 4x overload phase (4N clients) after the steady phase.

Side by side in the same run, first: the capacity (real chunks per second with 8 clients and no
faults, the issue's reference load). Phases: capacity -> warm-up -> steady (faults) -> overload
(faults, 4N clients) -> settle. It prints a table, then one JSON line:

``sent, ok, shed, fallbacks, lost`` (must be 0: a request that got no answer at all, counting
neither the abandoned ones nor their intended disconnects), ``errors`` (4xx/5xx answers, by
slug), ``p99_ms`` (steady phase, answered requests), ``rss_growth_pct_after_warmup`` (server RSS
at the end over its RSS after warm-up; target < 5), ``goodput_under_overload`` (real chunks/s in
the overload phase over the capacity; target >= 0.9).

    .venv/bin/python benchmarks/soak.py [--artifact DIR] [--clients 8] [--seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

REFLEX = str(Path(sys.executable).with_name("reflex"))
RSS_TARGET_PCT = 5.0
GOODPUT_TARGET = 0.9


# ---------------------------------------------------------------------------- the server


def serve(args: argparse.Namespace) -> int:
    """The server process: the stock server, its policy wrapped to raise or stall sometimes."""
    import logging

    from reflex_core.plugin.manager import make_plugin_manager
    from reflex_core.runtime import load_policy
    from reflex_core.serve.app import ReflexServer
    from reflex_core.serve.config import resolve_serve_options
    from reflex_core.serve.hypercorn_runner import run
    from reflex_core.serve.middleware import install_request_id_logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    install_request_id_logging()
    policy = load_policy(args.artifact, embodiment="franka", threads=1)

    class FaultyPolicy:
        """The runtime's Policy, raising on ``raise_rate`` of calls, stalling on ``stall_rate``."""

        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.rng = random.Random(1)
            self.armed = False  # no faults in the capacity phase

        def __getattr__(self, name: str) -> Any:
            return getattr(self.inner, name)

        def infer(self, observations: Any, noise: Any = None) -> Any:
            if self.armed:
                roll = self.rng.random()
                if roll < args.fault_raise:
                    raise RuntimeError("injected policy fault")
                if roll < args.fault_raise + args.fault_stall:
                    time.sleep(args.stall_s)
            return self.inner.infer(observations, noise)

    faulty = FaultyPolicy(policy)
    pm = make_plugin_manager()
    sections = {
        "serve": {"port": args.serve, "workers-threads": 2, "idempotency-window-s": 0},
        # clamp every action; random states make the tiny model's chunks violate limits all the
        # time, which must not trip the guard into refusing (that is the guard's test, not this)
        "actionguard": {
            "guard": "clamp",
            "guard-trip-after": 1_000_000,
            **({"guard-no-audit-log": True} if args.no_audit_log else {}),
        },
        "deadline": {"deadline-ms": args.deadline_ms},
    }
    options = resolve_serve_options({}, sections, pm.registry)
    server = ReflexServer(
        {"default": faulty}, embodiment=policy.embodiment, registry=pm.registry, options=options
    )

    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def arm(request: Any) -> Any:  # the benchmark's switch, not a server feature
        faulty.armed = True
        return JSONResponse({"armed": True})

    server.app.router.routes.append(Route("/_soak/arm", arm, methods=["POST"]))
    return run(server)


# ---------------------------------------------------------------------------- the clients


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def observation(seq: int, episode: str) -> bytes:
    rng = np.random.default_rng(seq)
    return json.dumps(
        {
            "state": (rng.standard_normal(8) * 0.1).round(4).tolist(),
            "prompt": "pick up the cube",
            "seq": seq,
            "episode_id": episode,
        }
    ).encode()


class Stats:
    def __init__(self) -> None:
        self.sent = 0
        self.ok = 0
        self.shed = 0
        self.fallbacks = 0
        self.real = 0
        self.lost = 0
        self.abandoned = 0
        self.errors: Counter[str] = Counter()
        self.shed_slugs: Counter[str] = Counter()
        self.latencies_ms: list[float] = []

    def record(self, status: int, body: dict[str, Any], ms: float) -> None:
        self.latencies_ms.append(ms)
        if status == 200 and body.get("type") == "action_chunk":
            self.ok += 1
            fallback = (body.get("metadata") or {}).get("fallback") or {}
            if fallback.get("used"):
                self.fallbacks += 1
            else:
                self.real += 1
        elif status in (429, 503):
            self.shed += 1
            self.shed_slugs[str(body.get("error"))] += 1
        else:
            self.errors[f"{status} {body.get('error')}"] += 1


class HttpClient:
    """One keep-alive HTTP/1.1 connection on asyncio streams (lean: the clients share the two
    cores with the server)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def _connect(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        sock = self.writer.get_extra_info("socket")
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        if self.writer is None:
            await self._connect()
        assert self.reader is not None and self.writer is not None
        self.writer.write(
            b"POST /act HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%b" % (len(body), body)
        )
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = {
            k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)
        }
        payload = await self.reader.readexactly(int(headers.get("content-length", "0")))
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, json.loads(payload) if payload else {}

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class WsClient:
    def __init__(self, port: int) -> None:
        self.url = f"ws://127.0.0.1:{port}/ws"
        self.ws: Any = None

    async def post(self, body: bytes) -> tuple[int, dict[str, Any]]:
        import websockets

        if self.ws is None:
            self.ws = await websockets.connect(self.url, compression=None, max_size=None)
        await self.ws.send(body.decode())
        frame = json.loads(await self.ws.recv())
        return (int(frame.get("status", 500)) if frame.get("type") == "error" else 200), frame

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()
            self.ws = None


async def abandon_mid_body(port: int, body: bytes) -> None:
    """Headers and half a body, then the socket closes: the server must shrug it off."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        b"POST /act HTTP/1.1\r\nHost: soak\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n%b" % (len(body), body[: len(body) // 2])
    )
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.close()


async def robot(
    i: int, port: int, stats: Stats, stop: float, disconnect_rate: float, rng: random.Random
) -> None:
    client: HttpClient | WsClient = WsClient(port) if i % 2 else HttpClient(port)
    episode = f"ep-{i}-{rng.random():.6f}"
    seq = 0
    try:
        while time.monotonic() < stop:
            seq += 1
            body = observation(seq + 1000 * i, episode)
            if (
                disconnect_rate
                and isinstance(client, HttpClient)
                and rng.random() < disconnect_rate
            ):
                stats.abandoned += 1
                await abandon_mid_body(port, body)
                continue
            stats.sent += 1
            started = time.perf_counter()
            try:
                status, reply = await asyncio.wait_for(client.post(body), 10)
            except Exception as exc:  # no answer at all: lost
                stats.lost += 1
                stats.errors[f"lost {type(exc).__name__}"] += 1
                await client.close()
                client = WsClient(port) if i % 2 else HttpClient(port)
                continue
            stats.record(status, reply, (time.perf_counter() - started) * 1e3)
            if status in (429, 503):  # a shed answer says when to come back
                await asyncio.sleep(float(reply.get("retry_after_s") or 0.05))
    finally:
        await client.close()


async def phase(
    port: int, clients: int, seconds: float, disconnect_rate: float = 0.0, seed: int = 0
) -> tuple[Stats, float]:
    stats = Stats()
    rng = random.Random(seed)
    started = time.monotonic()
    stop = started + seconds
    await asyncio.gather(
        *(robot(i, port, stats, stop, disconnect_rate, rng) for i in range(clients))
    )
    return stats, time.monotonic() - started


def p99(samples: list[float]) -> float:
    return round(float(np.percentile(samples, 99)), 2) if samples else float("nan")


def metric(port: int, needle: str) -> float:
    import httpx

    total = 0.0
    for line in httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text.splitlines():
        if not line.startswith("#") and "_created" not in line and needle in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def run_phases(args: argparse.Namespace, port: int, pid: int) -> dict[str, Any]:
    import httpx

    capacity_stats, capacity_s = await phase(port, 8, args.capacity_s)
    capacity = capacity_stats.real / capacity_s
    httpx.post(f"http://127.0.0.1:{port}/_soak/arm", timeout=5)
    await phase(port, args.clients, args.warmup_s, args.disconnect_rate, seed=1)
    rss_warm = rss_kb(pid)
    steady, steady_s = await phase(port, args.clients, args.seconds, args.disconnect_rate, seed=2)
    over, over_s = await phase(port, 4 * args.clients, args.overload_s, args.disconnect_rate, 3)
    await asyncio.sleep(2.0)  # the late inferences finish; nothing is in flight
    rss_end = rss_kb(pid)
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    total = Stats()
    for s in (steady, over):
        for key in ("sent", "ok", "shed", "fallbacks", "real", "lost", "abandoned"):
            setattr(total, key, getattr(total, key) + getattr(s, key))
        total.errors.update(s.errors)
        total.shed_slugs.update(s.shed_slugs)
    goodput = (over.real / over_s) / capacity if capacity else float("nan")
    return {
        "table": [
            ("capacity (8 clients, no faults)", capacity_stats, capacity_s),
            (f"steady ({args.clients} clients, faults)", steady, steady_s),
            (f"overload ({4 * args.clients} clients, faults)", over, over_s),
        ],
        "result": {
            "sent": total.sent,
            "ok": total.ok,
            "shed": total.shed,
            "fallbacks": total.fallbacks,
            "lost": total.lost,
            "errors": dict(total.errors),
            "shed_by_slug": dict(total.shed_slugs),
            "capacity_phase_shed_by_slug": dict(capacity_stats.shed_slugs),
            "p99_ms": p99(steady.latencies_ms),
            "rss_growth_pct_after_warmup": round((rss_end - rss_warm) / rss_warm * 100, 2),
            "goodput_under_overload": round(goodput, 3),
            "capacity_chunks_per_s": round(capacity, 1),
            "overload_real_chunks_per_s": round(over.real / over_s, 1),
            "steady_real_chunks_per_s": round(steady.real / steady_s, 1),
            "abandoned_mid_body": total.abandoned,
            "server_client_disconnected": metric(port, 'slug="client-disconnected"'),
            "server_500s": metric(port, 'status="500"'),
            "late_in_background_now": health["wedge_health"]["deadline"]["late_in_background"],
            "server_inference": health.get("inference"),
            "rss_kb_after_warmup": rss_warm,
            "rss_kb_end": rss_end,
            "targets": {
                "lost": 0,
                "rss_growth_pct_after_warmup": f"< {RSS_TARGET_PCT}",
                "goodput_under_overload": f">= {GOODPUT_TARGET}",
            },
        },
    }


def wait_up(proc: subprocess.Popen[bytes], port: int, timeout_s: float = 300) -> None:
    import httpx

    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise SystemExit("server never ready")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, help="an exported tiny-pi05 (franka) dir")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0, help="steady phase")
    parser.add_argument("--capacity-s", type=float, default=8.0)
    parser.add_argument("--warmup-s", type=float, default=8.0)
    parser.add_argument("--overload-s", type=float, default=15.0)
    parser.add_argument("--deadline-ms", type=float, default=50.0)
    parser.add_argument("--fault-raise", type=float, default=0.01)
    parser.add_argument("--fault-stall", type=float, default=0.01)
    parser.add_argument("--stall-s", type=float, default=0.2)
    parser.add_argument("--disconnect-rate", type=float, default=0.01)
    parser.add_argument(
        "--no-audit-log", action="store_true", help="run ActionGuard without its audit log"
    )
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve is not None:
        return serve(args)

    with tempfile.TemporaryDirectory(prefix="reflex-soak-") as tmp:
        artifact = args.artifact
        if artifact is None:
            artifact = Path(tmp) / "tiny-pi05-franka"
            env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
            cmd = [REFLEX, "export", "tiny-pi05", "-o", str(artifact), "--embodiment", "franka"]
            subprocess.run([*cmd, "-q"], check=True, env=env)
        port = free_port()
        log_path = Path(tmp) / "server.log"
        with log_path.open("wb") as log:
            cmd = [sys.executable, __file__, "--serve", str(port), "--artifact", str(artifact),
                   "--deadline-ms", str(args.deadline_ms), "--fault-raise", str(args.fault_raise),
                   "--fault-stall", str(args.fault_stall), "--stall-s", str(args.stall_s),
                   *(["--no-audit-log"] if args.no_audit_log else [])]  # fmt: skip
            env = {**os.environ, "OMP_NUM_THREADS": "1"}
            proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
            try:
                wait_up(proc, port)
                out = asyncio.run(run_phases(args, port, proc.pid))
            finally:
                proc.terminate()
                proc.wait(30)
        text = log_path.read_text(errors="replace")
        out["result"]["server_tracebacks"] = text.count("Traceback")
        out["result"]["server_log_disconnect_lines"] = text.count("disconnected before its body")

    print(f"{'phase':<36} {'s':>5} {'sent':>6} {'real/s':>7} {'fallback':>8} {'shed':>5} "
          f"{'err':>4} {'lost':>4} {'p50 ms':>7} {'p99 ms':>7}")  # fmt: skip
    for name, stats, seconds in out["table"]:
        lat = stats.latencies_ms or [float("nan")]
        print(
            f"{name:<36} {seconds:5.1f} {stats.sent:6d} {stats.real / seconds:7.1f} "
            f"{stats.fallbacks:8d} {stats.shed:5d} {sum(stats.errors.values()):4d} "
            f"{stats.lost:4d} {np.percentile(lat, 50):7.1f} {np.percentile(lat, 99):7.1f}"
        )
    print(json.dumps(out["result"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
