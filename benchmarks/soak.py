"""Soak and fault benchmark: does the server hold?

N closed-loop clients (HTTP ``POST /act`` and ``/ws`` mixed) run for T seconds against a real
``reflex serve`` process on tiny-pi05 (franka) with the safety wedges on (ActionGuard clamping,
a ``--deadline-ms`` with the hold fallback), while faults are injected:

- the policy raises on a fraction of calls and stalls (sleeps) on another fraction (the server
  here wraps the runtime's Policy; everything else is the stock server);
- some requests are abandoned mid-body (headers and half a body, then the socket closes);
- 4x overload rounds (4N clients) after the steady phase.

The clients behave like the SDK: straight back after a chunk (a closed loop), unless the
server asked them to wait: a chunk's ``metadata.fallback.retry_after_s`` (the deadline wedge's
turn while it is refusing work) or a 429/503's ``retry_after_s``
(``--ignore-retry-after``: they never wait, the worst case). Each client is a robot that follows
its commands: it starts near the Franka ready pose and its next state is the first action of
the chunk it got (within the joint limits), so a hold is a legal command from where it stands.

Phases: warm-up (faults) -> steady (faults, N clients) -> ``--rounds`` x [capacity (8 clients,
the issue's reference load), overload (4N clients)] -> settle, every phase with the same faults.
Capacity and overload alternate so that the load other processes put on a shared machine weighs
on both alike, and both see the same faults, so the one difference between them is the 4x load:
goodput is the overload rounds' real chunks over the capacity rounds' (per round too).
It prints a table, then one JSON line:

``sent, ok, shed, fallbacks, lost`` (must be 0: a request that got no answer at all, counting
neither the abandoned ones nor their intended disconnects), ``errors`` (4xx/5xx answers, by
slug), ``p99_ms`` (steady phase, answered requests), ``rss_growth_pct_after_warmup`` (server RSS
at the end over its RSS after warm-up; target < 5), ``goodput_under_overload`` (real chunks/s
in the overload rounds over the capacity rounds; target >= 0.9; ``goodput_per_server_cpu``: the
same per CPU second the server got, which discounts the CPU the clients and other processes
took from it), ``late_in_background_max``
(sampled from /health during overload; the deadline wedge's cap must hold), and ``bound``:
what limits real chunks on this machine, for the capacity and the overload rounds: the
inference call's wall time against its thread's own CPU time (``wall_per_cpu`` far above 1:
the threads waited for a CPU, other processes' doing), the share of inferences that finished
by their deadline, the CPU seconds per second the event loop and the inference threads got.
``phases`` has the same per phase, with the deadline wedge's counts.

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
CAPACITY_CLIENTS = 8  # the reference load
# Franka's ready pose (rad; the finger opening in m): states are drawn around it, inside limits.
READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04])
LOWER = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973, 0.0])
UPPER = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973, 0.04])


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
            self.armed = False  # no faults until the benchmark arms them

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
        "deadline": {
            "deadline-ms": args.deadline_ms,
            "deadline-max-late": args.deadline_max_late,
        },
    }
    options = resolve_serve_options({}, sections, pm.registry)
    server = ReflexServer(
        {"default": faulty}, embodiment=policy.embodiment, registry=pm.registry, options=options
    )

    from starlette.responses import JSONResponse
    from starlette.routing import Route

    async def arm(request: Any) -> Any:  # the benchmark's switch, not a server feature
        faulty.armed = (await request.json())["armed"]
        return JSONResponse({"armed": faulty.armed})

    async def threads(request: Any) -> Any:  # which OS thread is which (Python names them)
        import threading

        return JSONResponse({str(t.native_id): t.name for t in threading.enumerate()})

    server.app.router.routes.append(Route("/_soak/arm", arm, methods=["POST"]))
    server.app.router.routes.append(Route("/_soak/threads", threads, methods=["GET"]))
    return run(server)


# ---------------------------------------------------------------------------- the clients


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def thread_cpu_s(pid: int, names: dict[str, str]) -> dict[str, float]:
    """CPU seconds so far of the server's event-loop thread (``loop``, the main thread), its
    inference threads (``inference``) and everything else (``other``: the audit log writer,
    onnxruntime's own threads...). ``names``: OS thread id -> Python thread name."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {"loop": 0.0, "inference": 0.0, "other": 0.0}
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # the thread ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
        if task.name == str(pid):
            out["loop"] += seconds
        elif names.get(task.name, "").startswith("reflex-infer"):
            out["inference"] += seconds
        else:
            out["other"] += seconds
    return out


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def observation(seq: int, episode: str, state: np.ndarray) -> bytes:
    return json.dumps(
        {
            "state": state.round(4).tolist(),
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
    i: int,
    port: int,
    stats: Stats,
    stop: float,
    disconnect_rate: float,
    rng: random.Random,
    honour_retry_after: bool,
) -> None:
    client: HttpClient | WsClient = WsClient(port) if i % 2 else HttpClient(port)
    episode = f"ep-{i}-{rng.random():.6f}"
    seq = 0
    noise = np.random.default_rng(rng.getrandbits(32)).standard_normal(8)
    state = np.clip(READY + noise * 0.05 * (UPPER - LOWER) / 2, LOWER, UPPER)
    try:
        while time.monotonic() < stop:
            seq += 1
            body = observation(seq + 1000 * i, episode, state)
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
            if status == 200 and reply.get("actions"):  # it moved as told (one step)
                state = np.clip(np.asarray(reply["actions"][0], dtype=float), LOWER, UPPER)
            if honour_retry_after:
                await asyncio.sleep(back_off_s(status, reply))
    finally:
        await client.close()


def back_off_s(status: int, reply: dict[str, Any]) -> float:
    """How long the server asked this client to wait before its next request, as the SDK
    reads it: a 429/503's ``retry_after_s``, a chunk's ``metadata.fallback.retry_after_s``;
    0 otherwise (a closed loop: straight back)."""
    if status in (429, 503):
        return float(reply.get("retry_after_s") or 0.05)
    fallback = (reply.get("metadata") or {}).get("fallback") or {}
    return float(fallback.get("retry_after_s") or 0.0)


class Phase:
    """One phase's client-side stats, its length, the server's CPU over it, and the most late
    inferences the deadline wedge had in the background while it ran."""

    def __init__(self, name: str, stats: Stats, seconds: float, cpu: dict[str, float]) -> None:
        self.name, self.stats, self.seconds, self.cpu = name, stats, seconds, cpu
        self.late_max = 0
        self.deadline: dict[str, int] = {}  # the deadline wedge's counts over the phase
        self.inference: dict[str, Any] = {}  # /health's inference pace at the phase's end

    @property
    def real_per_s(self) -> float:
        return self.stats.real / self.seconds


async def phase(
    args: argparse.Namespace,
    port: int,
    pid: int,
    name: str,
    clients: int,
    seconds: float,
    *,
    faults: bool,
    seed: int = 0,
) -> Phase:
    import httpx

    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
        await http.post("/_soak/arm", json={"armed": faults})
        stats = Stats()
        rng = random.Random(seed)
        disconnect_rate = args.disconnect_rate if faults else 0.0
        names = (await http.get("/_soak/threads")).json()
        counts_before = (await http.get("/health")).json()["wedge_health"]["deadline"]["counts"]
        cpu_before = thread_cpu_s(pid, names)
        own_before = os.times()
        started = time.monotonic()
        stop = started + seconds
        late: list[int] = [0]

        async def watch() -> None:  # the background cap, as /health shows it
            while time.monotonic() < stop:
                health = (await http.get("/health")).json()
                late.append(health["wedge_health"]["deadline"]["late_in_background"])
                await asyncio.sleep(0.1)

        await asyncio.gather(
            watch(),
            *(
                robot(i, port, stats, stop, disconnect_rate, rng, not args.ignore_retry_after)
                for i in range(clients)
            ),
        )
        elapsed = time.monotonic() - started
        cpu_after = thread_cpu_s(pid, names)
        own_after = os.times()
        health = (await http.get("/health")).json()
    cpu = {k: round((cpu_after[k] - cpu_before[k]) / elapsed, 3) for k in cpu_after}
    # this process (the clients) shares the machine's two cores with the server
    own = (own_after.user - own_before.user) + (own_after.system - own_before.system)
    cpu["clients"] = round(own / elapsed, 3)
    result = Phase(name, stats, elapsed, cpu)
    result.late_max = max(late)
    counts = health["wedge_health"]["deadline"]["counts"]
    result.deadline = {k: counts[k] - counts_before.get(k, 0) for k in counts}
    result.inference = {k: health["inference"][k] for k in ("service_ms", "service_cpu_ms")}
    return result


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

    n = args.clients

    async def run(name: str, clients: int, seconds: float, faults: bool, seed: int) -> Phase:
        return await phase(args, port, pid, name, clients, seconds, faults=faults, seed=seed)

    await run("warm-up", n, args.warmup_s, True, 1)
    rss_warm = rss_kb(pid)
    steady = await run(f"steady ({n} clients, faults)", n, args.seconds, True, 2)
    capacity: list[Phase] = []
    overload: list[Phase] = []
    for r in range(args.rounds):
        name = f"capacity {r + 1} ({CAPACITY_CLIENTS} clients, faults)"
        capacity.append(await run(name, CAPACITY_CLIENTS, args.capacity_s, True, 10 + r))
        name = f"overload {r + 1} ({4 * n} clients, faults)"
        overload.append(await run(name, 4 * n, args.overload_s, True, 20 + r))
    await asyncio.sleep(2.0)  # the late inferences finish; nothing is in flight
    rss_end = rss_kb(pid)
    health = httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).json()
    total = Stats()
    for p in (steady, *overload):
        for key in ("sent", "ok", "shed", "fallbacks", "real", "lost", "abandoned"):
            setattr(total, key, getattr(total, key) + getattr(p.stats, key))
        total.errors.update(p.stats.errors)
        total.shed_slugs.update(p.stats.shed_slugs)

    def rate(phases: list[Phase]) -> float:
        return sum(p.stats.real for p in phases) / sum(p.seconds for p in phases)

    capacity_rate, overload_rate = rate(capacity), rate(overload)

    def bound(phases: list[Phase]) -> dict[str, float | None]:
        """What limits real chunks here: how much of each inference was waiting for a CPU
        (wall time over the thread's own CPU time), the share of the inferences that finished
        by their deadline, and the CPU the event loop and the inference threads got."""
        walls = [p.inference["service_ms"].get("default") for p in phases]
        cpus = [p.inference["service_cpu_ms"].get("default") for p in phases]
        on_time = sum(p.deadline.get("on_time", 0) for p in phases)
        late = sum(p.deadline.get("late", 0) for p in phases)
        ratios = [w / c for w, c in zip(walls, cpus, strict=True) if w and c]
        return {
            "service_ms": round(float(np.mean([w for w in walls if w])), 1),
            "service_cpu_ms": round(float(np.mean([c for c in cpus if c])), 1),
            "wall_per_cpu": round(float(np.mean(ratios)), 2) if ratios else None,
            "inferences_on_time_share": round(on_time / (on_time + late), 3)
            if on_time + late
            else None,
            "loop_cpu_per_s": round(float(np.mean([p.cpu["loop"] for p in phases])), 3),
            "inference_cpu_per_s": round(float(np.mean([p.cpu["inference"] for p in phases])), 3),
            "server_cpu_per_s": round(server_cpu_per_s(phases), 3),
            "clients_cpu_per_s": round(float(np.mean([p.cpu["clients"] for p in phases])), 3),
        }

    def server_cpu_per_s(phases: list[Phase]) -> float:
        cpu = sum((p.cpu["loop"] + p.cpu["inference"] + p.cpu["other"]) * p.seconds for p in phases)
        return cpu / sum(p.seconds for p in phases)

    # Real chunks per CPU second the server got: on a shared machine the 4x clients (this
    # process) and other processes take CPU from the server during overload; this ratio is
    # the server's own efficiency under overload, whatever CPU it was given.
    per_cpu = (overload_rate / server_cpu_per_s(overload)) / (
        capacity_rate / server_cpu_per_s(capacity)
    )

    service_ms = (health.get("inference") or {}).get("service_ms", {}).get("default")
    return {
        "table": [steady, *[p for pair in zip(capacity, overload, strict=True) for p in pair]],
        "result": {
            "sent": total.sent,
            "ok": total.ok,
            "shed": total.shed,
            "fallbacks": total.fallbacks,
            "lost": total.lost,
            "errors": dict(total.errors),
            "shed_by_slug": dict(total.shed_slugs),
            "p99_ms": p99(steady.stats.latencies_ms),
            "rss_growth_pct_after_warmup": round((rss_end - rss_warm) / rss_warm * 100, 2),
            "goodput_under_overload": round(overload_rate / capacity_rate, 3),
            "goodput_per_server_cpu": round(per_cpu, 3),
            "goodput_by_round": [
                round(o.real_per_s / c.real_per_s, 3) if c.real_per_s else None
                for c, o in zip(capacity, overload, strict=True)
            ],
            "capacity_chunks_per_s": round(capacity_rate, 1),
            "overload_real_chunks_per_s": round(overload_rate, 1),
            "steady_real_chunks_per_s": round(steady.real_per_s, 1),
            # what the inference threads could do at the pace they measured (2 threads)
            "inference_bound_chunks_per_s": round(2e3 / service_ms, 1) if service_ms else None,
            "bound": {"capacity": bound(capacity), "overload": bound(overload)},
            # per phase: the server's CPU (seconds per second) by thread, the deadline wedge's
            # counts (on time, late, refused as overloaded...), the pace at its end
            "phases": {
                p.name: {"cpu_per_s": p.cpu, "deadline": p.deadline, "inference": p.inference}
                for p in (steady, *capacity, *overload)
            },
            "late_in_background_max": max(p.late_max for p in (steady, *overload)),
            "late_cap": args.deadline_max_late,
            "honour_retry_after": not args.ignore_retry_after,
            "abandoned_mid_body": total.abandoned,
            "server_client_disconnected": metric(port, 'slug="client-disconnected"'),
            "server_500s": metric(port, 'status="500"'),
            "late_in_background_now": health["wedge_health"]["deadline"]["late_in_background"],
            "server_inference": health.get("inference"),
            "deadline_counts": health["wedge_health"]["deadline"]["counts"],
            "rss_kb_after_warmup": rss_warm,
            "rss_kb_end": rss_end,
            "targets": {
                "lost": 0,
                "rss_growth_pct_after_warmup": f"< {RSS_TARGET_PCT}",
                "goodput_under_overload": f">= {GOODPUT_TARGET}",
                "late_in_background_max": f"<= {args.deadline_max_late}",
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
    parser.add_argument("--capacity-s", type=float, default=6.0, help="each capacity round")
    parser.add_argument("--warmup-s", type=float, default=8.0)
    parser.add_argument("--overload-s", type=float, default=6.0, help="each overload round")
    parser.add_argument("--rounds", type=int, default=3, help="capacity/overload alternations")
    parser.add_argument("--deadline-ms", type=float, default=50.0)
    parser.add_argument("--deadline-max-late", type=int, default=8)
    parser.add_argument(
        "--ignore-retry-after",
        action="store_true",
        help="clients come straight back even after an overload fallback or a 503",
    )
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
                   "--deadline-max-late", str(args.deadline_max_late),
                   "--fault-stall", str(args.fault_stall), "--stall-s", str(args.stall_s),
                   *(["--no-audit-log"] if args.no_audit_log else [])]  # fmt: skip
            # the guard's audit log goes to this run's own state directory, never the user's
            env = {
                **os.environ,
                "OMP_NUM_THREADS": "1",
                "REFLEX_STATE_DIR": str(Path(tmp) / "state"),
            }
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
          f"{'err':>4} {'lost':>4} {'p50 ms':>7} {'p99 ms':>7} {'loop cpu':>8} "
          f"{'infer cpu':>9}")  # fmt: skip
    for p in out["table"]:
        stats = p.stats
        lat = stats.latencies_ms or [float("nan")]
        print(
            f"{p.name:<36} {p.seconds:5.1f} {stats.sent:6d} {p.real_per_s:7.1f} "
            f"{stats.fallbacks:8d} {stats.shed:5d} {sum(stats.errors.values()):4d} "
            f"{stats.lost:4d} {np.percentile(lat, 50):7.1f} {np.percentile(lat, 99):7.1f} "
            f"{p.cpu['loop']:8.2f} {p.cpu['inference']:9.2f}"
        )
    print(json.dumps(out["result"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
