"""What the batching wedge buys: N concurrent clients against ``reflex serve`` with and without
``--max-batch``, side by side in one run, on a tiny-pi05 exported through the export pipeline.

Two real ``reflex serve`` subprocesses (Hypercorn on 127.0.0.1) serve the same artifact, one
plain and one with the batching wedge. For each N in ``--clients``, N asyncio clients, each
with its own keep-alive ``httpx.AsyncClient``, send ``POST /act`` back to back for
``--duration-s``; throughput is answered requests per second, latency the client-side round
trip. Each N runs ``--rounds`` rounds alternating between the two servers (pooled), so a swing
in machine load lands on both. Observations are a state vector and a prompt (no images: JPEG
decoding is the wire format's cost, not the scheduler's).

Prints a table, then ONE JSON line (the last line) with ``clients``, per-N results for both
servers, ``throughput_ratio`` (batched / unbatched throughput at 8 clients), ``p99_ratio``
(batched p99 at 8 clients / single-client p50 of the plain server), ``inference_scaling``
(``policy.infer`` alone at batch 1 and 8: the ceiling batching can reach before any serving
overhead) and the machine's load average. Targets on tiny-pi05 with 8 clients:
throughput_ratio >= 2.5 and p99_ratio <= 2.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/batching.py [--artifact DIR] [--duration-s 5]

``--fake`` serves ``reflex_core.wedge_testing``'s policy double instead of a model (fixed +
per-row sleep): it checks the benchmark itself, its numbers say nothing about a model.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

REFLEX = str(Path(sys.executable).with_name("reflex"))
TARGET_THROUGHPUT_RATIO = 2.5
TARGET_P99_RATIO = 2.0
RATIO_CLIENTS = 8


def export_tiny_pi05(out: Path) -> None:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    cmd = [REFLEX, "export", "tiny-pi05", "-o", str(out), "--embodiment", "franka"]
    print(f"exporting: {' '.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, check=True, env=env, stdout=sys.stderr)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Server:
    """A server subprocess on 127.0.0.1, ready once ``/health`` is 200."""

    def __init__(self, name: str, cmd: list[str], port: int, log_dir: Path) -> None:
        self.name = name
        self.base = f"http://127.0.0.1:{port}"
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
        print(f"starting {name}: {' '.join(cmd)}", file=sys.stderr)
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env)

    def wait_ready(self, timeout_s: float = 300.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready in {timeout_s}s:\n{self.log_path.read_text()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


def server_command(artifact: Path | None, port: int, extra: list[str], fake: bool) -> list[str]:
    if fake:
        # 20 ms per call + 1 ms per row: a rough shape of a small batched ORT call
        return [sys.executable, "-m", "reflex_core.wedge_testing", "--port", str(port),
                "--fixed-s", "0.02", "--per-row-s", "0.001", "--idempotency-window-s", "0",
                *extra]  # fmt: skip
    assert artifact is not None
    return [REFLEX, "serve", str(artifact), "--embodiment", "franka", "--port", str(port),
            "--idempotency-window-s", "0", *extra]  # fmt: skip


def observation(state_dim: int, client: int, i: int) -> dict[str, Any]:
    rng = np.random.default_rng(client * 100_003 + i)
    return {
        "state": rng.uniform(-0.5, 0.5, state_dim).round(4).tolist(),
        "prompt": "pick up the red cube",
        "episode_id": f"client-{client}",
        "seq": i,
    }


async def run_clients(
    base: str, n_clients: int, duration_s: float, state_dim: int
) -> dict[str, Any]:
    """N clients back to back for ``duration_s``: throughput and latency percentiles."""
    latencies: list[float] = []
    errors: dict[str, int] = {}
    start_gate = asyncio.Event()

    async def client(index: int) -> None:
        limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
        async with httpx.AsyncClient(base_url=base, timeout=60, limits=limits) as http:
            await http.get("/health")  # open the connection before the clock starts
            await start_gate.wait()
            i = 0
            while time.perf_counter() < end:
                body = observation(state_dim, index, i)
                t0 = time.perf_counter()
                response = await http.post("/act", json=body)
                elapsed = time.perf_counter() - t0
                i += 1
                if response.status_code == 200:
                    latencies.append(elapsed)
                else:
                    slug = response.json().get("error", str(response.status_code))
                    errors[slug] = errors.get(slug, 0) + 1

    tasks = [asyncio.create_task(client(k)) for k in range(n_clients)]
    await asyncio.sleep(0.2)
    started = time.perf_counter()
    end = started + duration_s
    start_gate.set()
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - started  # includes the requests in flight at the end
    return {"latencies": latencies, "errors": errors, "wall_s": wall}


def summarize(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Pool several rounds: total answered / total time, percentiles over every latency."""
    latencies = [x for run in runs for x in run["latencies"]]
    errors: dict[str, int] = {}
    for run in runs:
        for slug, count in run["errors"].items():
            errors[slug] = errors.get(slug, 0) + count
    wall = sum(run["wall_s"] for run in runs)
    lat_ms = np.asarray(latencies) * 1e3
    return {
        "requests": len(latencies),
        "errors": errors,
        "throughput_rps": round(len(latencies) / wall, 2),
        "p50_ms": round(float(np.percentile(lat_ms, 50)), 2) if lat_ms.size else None,
        "p99_ms": round(float(np.percentile(lat_ms, 99)), 2) if lat_ms.size else None,
    }


def batch_sizes(base: str) -> dict[str, float]:
    """Mean batch size the batching wedge ran, from its /metrics histogram."""
    text = httpx.get(base + "/metrics", timeout=5).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        for key in ("reflex_batching_batch_size_sum", "reflex_batching_batch_size_count"):
            if line.startswith(key + "{"):
                values[key] = values.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


def inference_scaling(artifact: Path, state_dim: int, repeats: int = 15) -> dict[str, float]:
    """``policy.infer`` alone at batch 1 and at 8 (interleaved, median ms): what batching can
    save before any serving overhead. ``8 * b1 / b8`` bounds the throughput gain at 8 clients
    over a server running one call at a time."""
    from reflex_core.runtime import load_policy
    from reflex_core.wire.types import Observation

    policy = load_policy(artifact)
    rng = np.random.default_rng(0)
    obs = [
        Observation(state=rng.uniform(-0.5, 0.5, state_dim).astype(np.float32), prompt="pick")
        for _ in range(RATIO_CLIENTS)
    ]
    times: dict[int, list[float]] = {1: [], RATIO_CLIENTS: []}
    for size in times:
        policy.infer(obs[:size])  # warm
    for _ in range(repeats):
        for size, samples in times.items():
            t0 = time.perf_counter()
            policy.infer(obs[:size])
            samples.append((time.perf_counter() - t0) * 1e3)
    b1 = float(np.median(times[1]))
    b8 = float(np.median(times[RATIO_CLIENTS]))
    return {
        "infer_ms_batch_1": round(b1, 2),
        f"infer_ms_batch_{RATIO_CLIENTS}": round(b8, 2),
        "inference_bound_ratio": round(RATIO_CLIENTS * b1 / b8, 3),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--artifact", type=Path, help="an exported tiny-pi05 (default: export)")
    parser.add_argument("--clients", default="1,2,4,8,16", help="client counts (1,2,4,8,16)")
    parser.add_argument("--duration-s", type=float, default=4.0, help="seconds per round")
    parser.add_argument(
        "--rounds", type=int, default=3, help="alternating rounds per client count (3)"
    )
    parser.add_argument("--warmup-s", type=float, default=2.0, help="seconds of warm-up load")
    parser.add_argument("--max-batch", type=int, default=8)
    parser.add_argument(
        "--batch-timeout-ms", type=float, default=None, help="(the wedge's default: 10)"
    )
    parser.add_argument("--max-batch-cost-ms", type=float, default=None)
    parser.add_argument("--batch-concurrency", type=int, default=1)
    parser.add_argument("--workers-threads", type=int, default=2, help="both servers (2)")
    parser.add_argument("--fake", action="store_true", help="benchmark a policy double")
    args = parser.parse_args(argv)
    clients = [int(c) for c in args.clients.split(",")]
    if RATIO_CLIENTS not in clients or 1 not in clients:
        parser.error(f"--clients must include 1 and {RATIO_CLIENTS}")

    load_start = os.getloadavg()[0]  # the machine may be shared: say how busy it was
    with tempfile.TemporaryDirectory(prefix="reflex-bench-") as tmp:
        tmp_path = Path(tmp)
        artifact = args.artifact
        state_dim = 4
        if not args.fake:
            if artifact is None:
                artifact = tmp_path / "tiny-pi05"
                export_tiny_pi05(artifact)
            state_dim = int(json.loads((artifact / "reflex_config.json").read_text())["state_dim"])
        common = ["--workers-threads", str(args.workers_threads)]
        batching = ["--max-batch", str(args.max_batch),
                    "--batch-concurrency", str(args.batch_concurrency)]  # fmt: skip
        if args.batch_timeout_ms is not None:
            batching += ["--batch-timeout-ms", str(args.batch_timeout_ms)]
        if args.max_batch_cost_ms is not None:
            batching += ["--max-batch-cost-ms", str(args.max_batch_cost_ms)]
        scaling = None if args.fake else inference_scaling(artifact, state_dim)
        if scaling is not None:
            print(f"policy.infer alone: {scaling}", file=sys.stderr)
        servers: dict[str, Server] = {}
        try:
            for name, extra in (("unbatched", common), ("batched", common + batching)):
                port = free_port()
                servers[name] = Server(
                    name, server_command(artifact, port, extra, args.fake), port, tmp_path
                )
            for server in servers.values():
                server.wait_ready()
            for server in servers.values():  # warm-up: caches, the cost model, the JIT-free path
                asyncio.run(run_clients(server.base, RATIO_CLIENTS, args.warmup_s, state_dim))
            results: dict[str, dict[int, dict[str, Any]]] = {"unbatched": {}, "batched": {}}
            print(f"{'clients':>7} | {'unbatched rps':>13} {'p50 ms':>8} {'p99 ms':>8} | "
                  f"{'batched rps':>11} {'p50 ms':>8} {'p99 ms':>8} {'mean batch':>10}",
                  file=sys.stderr)  # fmt: skip
            for n in clients:
                before = batch_sizes(servers["batched"].base)
                runs: dict[str, list[dict[str, Any]]] = {"unbatched": [], "batched": []}
                for _ in range(args.rounds):  # alternate, so load swings hit both servers
                    for name in ("unbatched", "batched"):
                        runs[name].append(
                            asyncio.run(
                                run_clients(servers[name].base, n, args.duration_s, state_dim)
                            )
                        )
                for name in ("unbatched", "batched"):
                    results[name][n] = summarize(runs[name])
                after = batch_sizes(servers["batched"].base)
                runs = after.get("reflex_batching_batch_size_count", 0) - before.get(
                    "reflex_batching_batch_size_count", 0
                )
                rows = after.get("reflex_batching_batch_size_sum", 0) - before.get(
                    "reflex_batching_batch_size_sum", 0
                )
                results["batched"][n]["mean_batch_size"] = round(rows / runs, 2) if runs else None
                u, b = results["unbatched"][n], results["batched"][n]
                print(f"{n:>7} | {u['throughput_rps']:>13} {u['p50_ms']:>8} {u['p99_ms']:>8} | "
                      f"{b['throughput_rps']:>11} {b['p50_ms']:>8} {b['p99_ms']:>8} "
                      f"{b['mean_batch_size']!s:>10}", file=sys.stderr)  # fmt: skip
        finally:
            for server in servers.values():
                server.stop()

    u8, b8 = results["unbatched"][RATIO_CLIENTS], results["batched"][RATIO_CLIENTS]
    single_p50 = results["unbatched"][1]["p50_ms"]
    throughput_ratio = round(b8["throughput_rps"] / u8["throughput_rps"], 3)
    p99_ratio = round(b8["p99_ms"] / single_p50, 3)
    summary = {
        "benchmark": "batching",
        "model": "fake-policy-double" if args.fake else "tiny-pi05",
        "clients": clients,
        "duration_s": args.duration_s,
        "rounds": args.rounds,
        "settings": {
            "max_batch": args.max_batch,
            "batch_timeout_ms": (
                args.batch_timeout_ms if args.batch_timeout_ms is not None else "default (10)"
            ),
            "max_batch_cost_ms": args.max_batch_cost_ms,
            "batch_concurrency": args.batch_concurrency,
            "workers_threads": args.workers_threads,
            "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
            "cpu_count": os.cpu_count(),
            "load_avg_1m_start": round(load_start, 2),
            "load_avg_1m_end": round(os.getloadavg()[0], 2),
        },
        "unbatched": {str(n): r for n, r in results["unbatched"].items()},
        "batched": {str(n): r for n, r in results["batched"].items()},
        "inference_scaling": scaling,
        "single_client_p50_ms": single_p50,
        "throughput_ratio": throughput_ratio,
        "p99_ratio": p99_ratio,
        "targets": {"throughput_ratio": TARGET_THROUGHPUT_RATIO, "p99_ratio": TARGET_P99_RATIO},
        "targets_met": throughput_ratio >= TARGET_THROUGHPUT_RATIO
        and p99_ratio <= TARGET_P99_RATIO,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
