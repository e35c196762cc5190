"""``reflex serve`` latency per ``POST /act`` for a model family, through a real server.

    OMP_NUM_THREADS=1 .venv/bin/python benchmarks/serve_family.py [--family smolvla|groot]
        [--workdir DIR] [--tiny-artifact DIR] [--real-artifact DIR | --real-checkpoint DIR]
        [--skip-real] [--skip-tiny] [--tiny-requests 100] [--real-requests 12] [--server-threads 1]

Two artifacts of the family, each behind its own ``reflex serve`` subprocess on 127.0.0.1 (no
wedges), one client sending observations back to back over one keep-alive connection:

- the built-in tiny checkpoint (``tiny-smolvla`` / ``tiny-groot``), exported with
  ``--embodiment franka`` and served with it (2 cameras, frames 480x640 JPEG as a robot camera
  sends them, resized by the server to the model's tiny image size);
- the real-size random checkpoint, decomposed, fp32, served without an embodiment (its own
  state), one JPEG per camera at the model's own image size, the same prompt, the checkpoint's
  Euler steps. SmolVLA: ``lerobot/smolvla_base`` dimensions (450M parameters, 3 cameras at
  512x512, 10 steps), written by ``python -m reflex_smolvla.write_checkpoint --real-size``.
  GR00T: N1.5-3B dimensions (2.41 B parameters, 9.7 GB fp32, 2 cameras at 224x224, 4 steps),
  written by ``plugins/reflex-groot/scripts/write_real_size.py``. Takes ``--real-artifact``
  (e.g. the decomposed export ``benchmarks/export_memory.py --keep`` leaves), else exports
  ``--real-checkpoint`` (default ``WORKDIR/<family>-real``, written when missing) with a
  word-level stand-in tokenizer (nothing comes from the Hub here; token ids only pick embedding
  rows, and GR00T's stand-in gives the chat and image markers their Eagle ids so the image
  tokens land where the model expects them). The real-size steps need memory: run the script
  under ``flock /tmp/reflex-bigmem.lock`` on a shared machine.

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
import dataclasses
import io
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

PROMPT = "pick up the red cube on the left and place it in the blue bowl on the right"
REPO = Path(__file__).resolve().parents[1]


@dataclasses.dataclass(frozen=True)
class Family:
    """What the benchmark needs to know of a family: its built-in tiny checkpoint, how to write a
    real-size random one, and a stand-in tokenizer for it."""

    tiny: str
    write_real: Callable[[Path], list[str]]
    tokenizer: Callable[[Path], Any]


def smolvla_tokenizer(checkpoint: Path) -> Any:
    from reflex_core.models.tiny_tokenizer import build_tiny_tokenizer

    return build_tiny_tokenizer()


def groot_tokenizer(checkpoint: Path) -> Any:
    """tiny-groot's word-level tokenizer with the chat markers, the pad and the image token moved
    to their ids in the Eagle 2.5 tokenizer: Qwen3's ``<|endoftext|>`` 151643 is the pad the
    loader declares for a real checkpoint, and ``<IMG_CONTEXT>`` must be the Eagle config's
    ``image_token_index`` (the model puts the image features where it finds that id). The other
    words keep their small ids."""
    from reflex_groot.prompt import IMAGE_TOKEN, build_tiny_tokenizer
    from tokenizers import Tokenizer

    eagle = json.loads((checkpoint / "eagle" / "config.json").read_text())
    eagle_ids = {
        "<|endoftext|>": 151643,
        "<|im_start|>": 151644,
        "<|im_end|>": 151645,
        "<img>": 151665,
        "</img>": 151666,
        IMAGE_TOKEN: int(eagle["image_token_index"]),
    }
    data = json.loads(build_tiny_tokenizer().to_str())
    for token, new_id in eagle_ids.items():
        data["model"]["vocab"][token] = new_id
    for added in data["added_tokens"]:
        added["id"] = eagle_ids[added["content"]]
    return Tokenizer.from_str(json.dumps(data))


FAMILIES = {
    "smolvla": Family(
        tiny="tiny-smolvla",
        write_real=lambda d: [
            sys.executable,
            "-m",
            "reflex_smolvla.write_checkpoint",
            "--real-size",
            str(d),
        ],
        tokenizer=smolvla_tokenizer,
    ),
    "groot": Family(
        tiny="tiny-groot",
        write_real=lambda d: [
            sys.executable,
            str(REPO / "plugins/reflex-groot/scripts/write_real_size.py"),
            str(d),
        ],
        tokenizer=groot_tokenizer,
    ),
}


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
    parser.add_argument("--family", choices=sorted(FAMILIES), default="smolvla")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path(os.environ.get("REFLEX_BENCH_DIR", Path.home() / ".cache/reflex/bench")),
    )
    parser.add_argument("--tiny-artifact", type=Path)
    parser.add_argument("--real-artifact", type=Path)
    parser.add_argument("--real-checkpoint", type=Path)
    parser.add_argument("--skip-real", action="store_true")
    parser.add_argument("--skip-tiny", action="store_true")
    parser.add_argument("--tiny-requests", type=int, default=100)
    parser.add_argument("--real-requests", type=int, default=12)
    parser.add_argument("--server-threads", type=int, default=1)
    args = parser.parse_args(argv)
    workdir = args.workdir.expanduser().absolute()
    workdir.mkdir(parents=True, exist_ok=True)
    threads = args.server_threads
    family = FAMILIES[args.family]

    results: dict[str, Any] = {}
    if not args.skip_tiny:
        tiny = args.tiny_artifact or workdir / f"serve-{family.tiny}"
        if args.tiny_artifact is None:
            export([family.tiny, "--embodiment", "franka"], tiny, threads)
        tiny_cameras = json.loads((tiny / "reflex_config.json").read_text())["preprocessing"]
        results[family.tiny] = measure(
            family.tiny,
            tiny,
            embodiment="franka",
            cameras={cam: (480, 640) for cam in tiny_cameras["image"]["cameras"]},
            state_dim=8,
            requests=args.tiny_requests,
            warmup=5,
            threads=threads,
            workdir=workdir,
        )
    if not args.skip_real:
        real = args.real_artifact
        if real is None:
            checkpoint = args.real_checkpoint or workdir / f"{args.family}-real"
            if not (checkpoint / "model.safetensors").is_file():
                subprocess.run(family.write_real(checkpoint), check=True, env=_env(threads))
            tokenizer = workdir / f"{args.family}-stand-in-tokenizer.json"
            if not tokenizer.is_file():
                family.tokenizer(checkpoint).save(str(tokenizer))
            real = workdir / f"serve-{args.family}-real"
            export(
                [str(checkpoint), "--tokenizer", str(tokenizer), "--mode", "decomposed"],
                real,
                threads,
            )
        manifest = json.loads((real / "reflex_config.json").read_text())
        image = manifest["preprocessing"]["image"]
        results[f"{args.family}-real-size"] = measure(
            f"{args.family}-real-size",
            real,
            embodiment=None,
            cameras={cam: (image["height"], image["width"]) for cam in image["cameras"]},
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
                "family": args.family,
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
