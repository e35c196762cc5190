"""``reflex serve`` latency per ``POST /act`` for a model family, through a real server.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_family.py [--workdir DIR]
        [--tiny-artifact DIR] [--real-artifact DIR | --real-checkpoint DIR] [--skip-real]
        [--tiny-requests 100] [--real-requests 12] [--server-threads 1]

Two SmolVLA artifacts, each behind its own ``reflex serve`` subprocess on 127.0.0.1 (no wedges),
one client sending observations back to back over one keep-alive connection:

- ``tiny-smolvla``, exported with ``--embodiment franka`` and served with it (2 cameras,
  frames 480x640 JPEG as a robot camera sends them, resized to 32x32 by the server);
- the real-size random SmolVLA (``lerobot/smolvla_base`` dimensions, 450M parameters, fp32,
  decomposed), served without an embodiment (its own 6-dim state), 3 cameras at 512x512 JPEG,
  a 13-word prompt, 10 Euler steps. Takes ``--real-artifact`` (e.g. the decomposed export
  ``benchmarks/export_memory.py --keep`` leaves), else exports ``--real-checkpoint`` (default
  ``WORKDIR/smolvla-real``, written by ``python -m reflex_smolvla.write_checkpoint --real-size``
  when missing) with the tiny tokenizer (nothing comes from the Hub here).

Every request has its own state and ``noise_seed``, so each one is a fresh chunk (the prefix
cache is off by default). Latency is the client's round trip; the server's own breakdown
(preprocess, prefix graph, expert steps, total) comes from the chunk's ``metadata.timings``.
The ORT sessions get ``--server-threads`` intra-op threads (the server's ``OMP_NUM_THREADS``).

Prints a table, then ONE JSON line with p50 / p99 / mean per model, the server-side medians
and the machine's load average (the CPU is shared: read the figures with it).
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

PROMPT = "pick up the red cube on the left and place it in the blue bowl on the right"


def _env(threads: int) -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": str(threads), "HF_HUB_OFFLINE": "1"}


def _reflex() -> str:
    return str(Path(sys.executable).with_name("reflex"))


def _jpeg(height: int, width: int, seed: int) -> str:
    from PIL import Image

    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width]
    base = np.stack([ys * 255 / height, xs * 255 / width, (ys + xs) * 127 / (height + width)], -1)
    pixels = np.clip(base + rng.normal(0, 20, (height, width, 3)), 0, 255).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
    return base64.b64encode(buffer.getvalue()).decode()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def export(argv: list[str], out: Path, threads: int) -> None:
    if (out / "reflex_config.json").is_file():
        return
    print(f"exporting {out.name} ...", file=sys.stderr)
    result = subprocess.run(
        [_reflex(), "export", *argv, "-o", str(out), "--force", "-q"],
        env=_env(threads),
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"export of {out} failed:\n{result.stderr[-4000:]}")


def measure(
    name: str,
    artifact: Path,
    *,
    embodiment: str | None,
    cameras: dict[str, tuple[int, int]],
    state_dim: int,
    requests: int,
    warmup: int,
    threads: int,
    workdir: Path,
) -> dict[str, Any]:
    import httpx

    from reflex_core.plugin.testing import server_process

    argv = [_reflex(), "serve", str(artifact)]
    if embodiment is not None:
        argv += ["--embodiment", embodiment]
    images = {cam: _jpeg(h, w, i) for i, (cam, (h, w)) in enumerate(cameras.items())}
    rng = np.random.default_rng(0)
    bodies = [
        json.dumps(
            {
                "state": (0.1 * rng.normal(size=state_dim)).tolist(),
                "images": images,
                "prompt": PROMPT,
                "noise_seed": i,
            }
        ).encode()
        for i in range(warmup + requests)
    ]
    latencies: list[float] = []
    server: dict[str, list[float]] = {}
    with server_process(
        argv, log_path=workdir / f"serve-{name}.log", env=_env(threads), timeout_s=600
    ) as base:
        health = httpx.get(base + "/health", timeout=30).json()
        with httpx.Client(base_url=base, timeout=600) as client:
            for i, body in enumerate(bodies):
                start = time.perf_counter()
                reply = client.post(
                    "/act", content=body, headers={"content-type": "application/json"}
                )
                elapsed = (time.perf_counter() - start) * 1000
                if reply.status_code != 200:
                    raise SystemExit(f"{name}: /act {reply.status_code} {reply.text[:500]}")
                if i < warmup:
                    continue
                latencies.append(elapsed)
                timings = reply.json().get("metadata", {}).get("timings", {})
                for key in ("preprocess_ms", "prefix_ms", "expert_ms", "model_ms", "total_ms"):
                    value = timings.get(key)
                    if isinstance(value, (int, float)):
                        server.setdefault(key, []).append(float(value))
    return {
        "artifact": str(artifact),
        "embodiment": embodiment,
        "cameras": {cam: f"{h}x{w} JPEG" for cam, (h, w) in cameras.items()},
        "requests": len(latencies),
        "warmup": warmup,
        "server_threads": threads,
        "p50_ms": round(percentile(latencies, 50), 1),
        "p99_ms": round(percentile(latencies, 99), 1),
        "mean_ms": round(statistics.fmean(latencies), 1),
        "min_ms": round(min(latencies), 1),
        "max_ms": round(max(latencies), 1),
        "server_median_ms": {k: round(statistics.median(v), 1) for k, v in server.items()},
        "health_status": health.get("status"),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("REFLEX_BENCH_DIR", Path.home() / ".cache/reflex/bench")),
    )
    parser.add_argument("--tiny-artifact", type=Path)
    parser.add_argument("--real-artifact", type=Path)
    parser.add_argument("--real-checkpoint", type=Path)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--tiny-requests", type=int, default=100)
    parser.add_argument("--real-requests", type=int, default=12)
    parser.add_argument("--server-threads", type=int, default=1)
    args = parser.parse_args(argv)
    workdir = args.workdir.expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    threads = args.server_threads

    results: dict[str, Any] = {}
    tiny = args.tiny_artifact or workdir / "serve-tiny-smolvla"
    if args.tiny_artifact is None:
        export(["tiny-smolvla", "--embodiment", "franka"], tiny, threads)
    results["tiny-smolvla"] = measure(
        "tiny-smolvla",
        tiny,
        embodiment="franka",
        cameras={"front": (480, 640), "wrist": (480, 640)},
        state_dim=8,
        requests=args.tiny_requests,
        warmup=5,
        threads=threads,
        workdir=workdir,
    )
    if not args.skip_real:
        real = args.real_artifact
        if real is None:
            checkpoint = args.real_checkpoint or workdir / "smolvla-real"
            if not (checkpoint / "model.safetensors").is_file():
                subprocess.run(
                    [sys.executable, "-m", "reflex_smolvla.write_checkpoint", "--real-size",
                     str(checkpoint)],
                    check=True, env=_env(threads),
                )  # fmt: skip
            tokenizer = workdir / "tiny-tokenizer.json"
            if not tokenizer.is_file():
                from reflex_core.models.tiny_tokenizer import build_tiny_tokenizer

                build_tiny_tokenizer().save(str(tokenizer))
            real = workdir / "serve-smolvla-real"
            export([str(checkpoint), "--tokenizer", str(tokenizer)], real, threads)
        manifest = json.loads((real / "reflex_config.json").read_text())
        cameras = manifest["preprocessing"]["image"]["cameras"]
        results["smolvla-real-size"] = measure(
            "smolvla-real-size",
            real,
            embodiment=None,
            cameras={cam: (512, 512) for cam in cameras},
            state_dim=int(manifest["state_dim"]),
            requests=args.real_requests,
            warmup=2,
            threads=threads,
            workdir=workdir,
        )

    print(f"{'model':<20}{'p50 ms':>10}{'p99 ms':>10}{'mean ms':>10}  server medians (ms)")
    for name, r in results.items():
        server = ", ".join(f"{k.removesuffix('_ms')} {v}" for k, v in r["server_median_ms"].items())
        print(f"{name:<20}{r['p50_ms']:>10}{r['p99_ms']:>10}{r['mean_ms']:>10}  {server}")
    print(
        json.dumps(
            {
                "benchmark": "serve_family",
                "family": "smolvla",
                "results": results,
                "server_threads": threads,
                "loadavg": [round(x, 2) for x in os.getloadavg()],
                "cpu_count": os.cpu_count(),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
