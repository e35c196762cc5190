"""Reflex vs lerobot on a real-size SmolVLA, side by side in one run on this machine.

Same checkpoint (random weights at ``lerobot/smolvla_base`` dimensions, written by
``reflex_smolvla.write_checkpoint --real-size``), same raw observation (3 cameras 512x512 uint8,
state in robot units, a task), same noise, 10 steps, a fresh chunk per call, batch 1, the same
thread budget (1, then 2). Contenders:

- ``lerobot_fp32``: lerobot 0.4.4's own path in ``.venv-reference`` (its processor pipeline from
  the checkpoint, ``predict_action_chunk`` with the noise, its postprocessor: robot units);
- ``lerobot_bf16``: the same with the model as real checkpoints load it (``load_vlm_weights``
  loads the VLM with ``torch_dtype=bfloat16`` and the expert built from its config follows:
  ``vlm_with_expert`` in bf16, the ~3M projection parameters fp32);
- ``reflex_ort_fp32``: ``load_policy(ARTIFACT, providers=["cpu"])`` (what ``reflex serve``
  runs by default);
- ``reflex_openvino``, ``reflex_openvino_int8``, ``reflex_openvino_bf16``: the
  ``reflex-openvino`` backends (``--providers openvino[-int8|-bf16]``). A reduced precision runs
  only if this machine has it (``probe``) and its gate passed (``reflex openvino gate``, run here
  when its report is missing); a refused one is listed with the reason, not timed as shipped.

Rounds alternate the contenders so load swings land on all of them. The lerobot contenders
are worker processes in the reference venv that keep their model loaded; Reflex's run in this
process, one policy per thread budget (sessions fix their threads at creation).

Accuracy: every chunk against ``lerobot_fp32``'s chunk for the same call (robot units, the
checkpoint's own statistics): max abs error and cosine (float64, flattened), worst over calls.

Prints a table, then ONE JSON line (the last line).

    .venv/bin/python benchmarks/vs_lerobot.py [--workdir /tmp/vs_lerobot] [--rounds 3]

It builds ``.venv-reference`` (``scripts/reference_env.sh``), writes the checkpoint and runs
``reflex export`` into ``--workdir`` when they are not there yet (minutes and ~6 GB of disk).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
LEROBOT_SIDE = REPO / "plugins" / "reflex-smolvla" / "reference" / "lerobot_side.py"
TASKS = ("pick up the red cube and put it in the bowl", "open the top drawer")


# -----------------------------------------------------------------------------------------------
# lerobot worker (runs in .venv-reference; imports nothing of Reflex)
# -----------------------------------------------------------------------------------------------


def lerobot_worker(checkpoint: Path, dtype: str) -> int:
    """Serve timed calls over stdin/stdout: one JSON request per line, one JSON answer."""
    import importlib.util
    from copy import copy

    import torch

    spec = importlib.util.spec_from_file_location("lerobot_side", LEROBOT_SIDE)
    assert spec is not None and spec.loader is not None
    side = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(side)
    started = time.perf_counter()
    modeling, _ = side._import_lerobot()
    import lerobot.policies.smolvla.processor_smolvla  # noqa: F401 (registers its steps)
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.utils import prepare_observation_for_inference
    from transformers import PreTrainedTokenizerFast

    config = PreTrainedConfig.from_pretrained(checkpoint)
    config.vlm_model_name = str(checkpoint / config.vlm_model_name)
    config.device = "cpu"
    policy = modeling.SmolVLAPolicy.from_pretrained(checkpoint, config=config, strict=True)
    if dtype == "bf16":
        policy.model.vlm_with_expert.to(torch.bfloat16)
    policy.eval()
    pad = json.loads((checkpoint / "tokenizer_pad.json").read_text())["pad_token"]
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_file=str(checkpoint / "tokenizer.json"), pad_token=pad
    )
    preprocessor, postprocessor = make_pre_post_processors(
        config,
        pretrained_path=str(checkpoint),
        preprocessor_overrides={
            "tokenizer_processor": {"tokenizer": tokenizer},
            "device_processor": {"device": "cpu"},
        },
    )
    params = {str(p.dtype): 0 for p in policy.parameters()}
    for p in policy.parameters():
        params[str(p.dtype)] += p.numel()
    cold_s = time.perf_counter() - started
    _answer({"ready": True, "cold_start_s": cold_s, "parameters": params})
    cpu = torch.device("cpu")
    for line in sys.stdin:
        request = json.loads(line)
        if request.get("cmd") == "quit":
            break
        torch.set_num_threads(int(request["threads"]))
        data = np.load(request["inputs"])
        observation = {f"observation.images.{c}": data[f"image/{c}"] for c in request["cameras"]}
        observation["observation.state"] = data["state"]
        noise = torch.from_numpy(data["noise"])
        start = time.perf_counter()
        with torch.no_grad():
            batch = preprocessor(
                prepare_observation_for_inference(copy(observation), cpu, request["task"])
            )
            policy.reset()
            chunk = policy.predict_action_chunk(dict(batch), noise=noise)
            actions = postprocessor(chunk)[0].float().numpy()
        ms = (time.perf_counter() - start) * 1e3
        np.save(request["out"], actions)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        _answer({"ms": ms, "out": request["out"], "rss_mb": rss})
    return 0


MARK = "@@vs_lerobot "


def _answer(payload: dict[str, Any]) -> None:
    # libraries print to stdout too: answers carry a marker
    print(MARK + json.dumps(payload), flush=True)


class LerobotProcess:
    def __init__(self, python: Path, checkpoint: Path, dtype: str, log: Path) -> None:
        self.name = f"lerobot_{dtype}"
        self._log = open(log, "w")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [str(python), __file__, "--lerobot-worker", str(checkpoint), "--dtype", dtype],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            text=True,
            env={**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"},
        )
        self.info = self._read()
        self.rss_mb = 0.0

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError(f"{self.name} worker died; see {self._log.name}")
            if line.startswith(MARK):
                return dict(json.loads(line[len(MARK) :]))

    def call(
        self, inputs: Path, out: Path, threads: int, task: str, cameras: list[str]
    ) -> tuple[float, np.ndarray]:
        assert self.proc.stdin is not None
        request = {
            "inputs": str(inputs),
            "out": str(out),
            "threads": threads,
            "task": task,
            "cameras": cameras,
        }
        self.proc.stdin.write(json.dumps(request) + "\n")
        self.proc.stdin.flush()
        answer = self._read()
        self.rss_mb = max(self.rss_mb, answer["rss_mb"])
        return answer["ms"], np.load(answer["out"])

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            self.proc.stdin.write(json.dumps({"cmd": "quit"}) + "\n")
            self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        self._log.close()


# -----------------------------------------------------------------------------------------------
# setup
# -----------------------------------------------------------------------------------------------


def run(cmd: list[str], **kwargs: Any) -> None:
    print("+", " ".join(cmd), file=sys.stderr, flush=True)
    subprocess.run(cmd, check=True, **kwargs)


def prepare(workdir: Path, tokenizer: Path | None) -> tuple[Path, Path]:
    checkpoint, artifact = workdir / "checkpoint", workdir / "export"
    python = sys.executable
    if not (checkpoint / "model.safetensors").is_file():
        cmd = [python, "-m", "reflex_smolvla.write_checkpoint", "--real-size", str(checkpoint)]
        run(cmd + (["--tokenizer", str(tokenizer)] if tokenizer else []))
    if not (checkpoint / "tokenizer.json").is_file():
        from reflex_smolvla import builtin  # the tiny checkpoint's tokenizer: random weights anyway

        tiny = builtin.write_builtin_checkpoint("tiny-smolvla", workdir / "tiny-smolvla")
        (checkpoint / "tokenizer.json").write_bytes((tiny / "tokenizer.json").read_bytes())
    prepare_tokenizer_pad(checkpoint)
    if not (artifact / "reflex_config.json").is_file():
        reflex = str(Path(python).parent / "reflex")
        run(
            [
                reflex,
                "export",
                str(checkpoint),
                "-o",
                str(artifact),
                "--tokenizer",
                str(checkpoint / "tokenizer.json"),
            ]
        )
    return checkpoint, artifact


def observations(policy: Any, count: int, seed: int) -> list[tuple[Any, np.ndarray]]:
    from reflex_core.wire.types import Observation

    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        h, w = policy.image_size
        images = {}
        for camera in policy.camera_names:
            coarse = rng.uniform(0, 255, size=(8, 8, 3))
            frame = coarse[np.linspace(0, 7, h).astype(int)][:, np.linspace(0, 7, w).astype(int)]
            frame = frame + rng.normal(0, 12, size=(h, w, 3))
            images[camera] = np.clip(frame, 0, 255).astype(np.uint8)
        state = rng.normal(0, 1, policy.state_dim).astype(np.float32)
        obs = Observation(state=state, images=images, prompt=TASKS[i % len(TASKS)])
        noise = rng.standard_normal((1, policy.chunk_size, policy.max_action_dim), dtype=np.float32)
        out.append((obs, noise))
    return out


def compare(reference: np.ndarray, candidate: np.ndarray) -> tuple[float, float]:
    ref = np.asarray(reference, np.float64).ravel()
    got = np.asarray(candidate, np.float64).ravel()
    cos = float(ref @ got / (np.linalg.norm(ref) * np.linalg.norm(got)))
    return float(np.max(np.abs(ref - got))), cos


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


# -----------------------------------------------------------------------------------------------
# the run
# -----------------------------------------------------------------------------------------------


REFLEX_PATHS = {
    "reflex_ort_fp32": "cpu",
    "reflex_openvino": "openvino",
    "reflex_openvino_int8": "openvino-int8",
    "reflex_openvino_bf16": "openvino-bf16",
}


def reflex_paths(artifact: Path, threads: int, refused: dict[str, str]) -> dict[str, Any]:
    from reflex_core.errors import ReflexError
    from reflex_core.runtime import load_policy

    loaded: dict[str, Any] = {}
    for name, provider in REFLEX_PATHS.items():
        if name in refused:
            continue
        start = time.perf_counter()
        try:
            policy = load_policy(artifact, providers=[provider], threads=threads)
        except ReflexError as exc:
            refused[name] = f"[{exc.slug}] {exc}"
            continue
        policy.warmup()
        policy.cold_start_s = time.perf_counter() - start  # type: ignore[attr-defined]
        loaded[name] = policy
    return loaded


def gate_if_needed(
    artifact: Path, precision: str, refused: dict[str, str]
) -> dict[str, Any] | None:
    from reflex_openvino import backend

    name = f"reflex_openvino_{precision}"
    why = backend.probe(precision)
    if why is not None:
        refused[name] = f"[provider-unavailable] {why}"
        return None
    report_path = backend.gate_dir(artifact, precision) / backend.GATE_REPORT
    if not report_path.is_file():
        reflex = str(Path(sys.executable).parent / "reflex")
        subprocess.run(
            [reflex, "openvino", "gate", str(artifact), "--precision", precision], check=False
        )
    if not report_path.is_file():
        refused[name] = "the gate did not write a report"
        return None
    report = json.loads(report_path.read_text())
    if not report["passed"]:
        refused[name] = f"[precision-gate-failed] worst {report['worst']}"
    return report


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workdir", type=Path, default=Path(tempfile.gettempdir()) / "vs_lerobot")
    parser.add_argument("--checkpoint", type=Path, help="an existing real-size checkpoint dir")
    parser.add_argument("--artifact", type=Path, help="its existing export")
    parser.add_argument("--tokenizer", type=Path)
    parser.add_argument(
        "--rounds", type=int, default=3, help="timed calls per contender and thread budget"
    )
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--skip", default="", help="contenders to leave out, comma-separated")
    parser.add_argument(
        "--reference-python", type=Path, default=REPO / ".venv-reference" / "bin" / "python"
    )
    parser.add_argument("--lerobot-worker", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--dtype", default="fp32", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.lerobot_worker is not None:
        return lerobot_worker(args.lerobot_worker, args.dtype)

    args.workdir.mkdir(parents=True, exist_ok=True)
    if args.checkpoint and args.artifact:
        checkpoint, artifact = args.checkpoint, args.artifact
        prepare_tokenizer_pad(checkpoint)
    else:
        checkpoint, artifact = prepare(args.workdir, args.tokenizer)
    if not args.reference_python.exists():
        run(["bash", str(REPO / "scripts" / "reference_env.sh")])
    skip = {s for s in args.skip.split(",") if s}
    budgets = [int(t) for t in args.threads.split(",")]

    refused: dict[str, str] = {}
    gates = {p: gate_if_needed(artifact, p, refused) for p in ("int8", "bf16")}

    from reflex_core.runtime import load_policy

    probe_policy = load_policy(artifact, providers=["cpu"], threads=1)
    calls = observations(probe_policy, args.rounds, seed=13)
    cameras = list(probe_policy.camera_names)
    image = "x".join(map(str, probe_policy.image_size))
    del probe_policy
    inputs = []
    for i, (obs, noise) in enumerate(calls):
        path = args.workdir / f"call_{i}.npz"
        np.savez(
            path, state=obs.state, noise=noise, **{f"image/{c}": obs.images[c] for c in cameras}
        )
        inputs.append(path)

    workers = {}
    for dtype in ("fp32", "bf16"):
        if f"lerobot_{dtype}" not in skip:
            worker = LerobotProcess(
                args.reference_python, checkpoint, dtype, args.workdir / f"lerobot_{dtype}.log"
            )
            workers[worker.name] = worker

    times: dict[str, dict[int, list[float]]] = {}
    chunks: dict[str, dict[tuple[int, int], np.ndarray]] = {}
    cold: dict[str, float] = {name: w.info["cold_start_s"] for name, w in workers.items()}
    rss: dict[str, float] = {}
    for threads in budgets:
        policies = {
            k: v for k, v in reflex_paths(artifact, threads, refused).items() if k not in skip
        }
        for name, policy in policies.items():
            cold.setdefault(name, policy.cold_start_s)
        order = [*workers, *policies]
        for r, (obs, noise) in enumerate(calls):
            rotated = order[r % len(order) :] + order[: r % len(order)]
            for name in rotated:
                if name in workers:
                    out = args.workdir / f"{name}_{threads}_{r}.npy"
                    ms, actions = workers[name].call(inputs[r], out, threads, obs.prompt, cameras)
                else:
                    start = time.perf_counter()
                    actions = policies[name].infer([obs], noise=noise).actions[0]
                    ms = (time.perf_counter() - start) * 1e3
                times.setdefault(name, {}).setdefault(threads, []).append(ms)
                chunks.setdefault(name, {})[(threads, r)] = actions
                print(
                    f"  threads={threads} round={r} {name}: {ms:.0f} ms",
                    file=sys.stderr,
                    flush=True,
                )
        del policies
        gc.collect()
    rss["reflex_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for name, worker in workers.items():
        rss[f"{name}_mb"] = worker.rss_mb
        worker.close()

    reference = chunks.get("lerobot_fp32", {})
    accuracy: dict[str, dict[str, float]] = {}
    for name, by_call in chunks.items():
        errs = [compare(reference[k], v) for k, v in by_call.items() if k in reference]
        if errs and name != "lerobot_fp32":
            accuracy[name] = {"max_abs": max(e[0] for e in errs), "cos": min(e[1] for e in errs)}

    rows = []
    print(
        f"\n{'contender':<24}{'threads':>8}{'p50 ms':>10}{'p99 ms':>10}{'max abs':>12}{'cos':>14}"
    )
    for name, by_threads in times.items():
        for threads, values in sorted(by_threads.items()):
            acc = accuracy.get(name, {})
            rows.append((name, threads, pct(values, 50), pct(values, 99)))
            print(
                f"{name:<24}{threads:>8}{pct(values, 50):>10.0f}{pct(values, 99):>10.0f}"
                f"{acc.get('max_abs', float('nan')):>12.4g}{acc.get('cos', float('nan')):>14.8f}"
            )
    for name, why in refused.items():
        print(f"{name:<24} refused: {why[:200]}")

    def p(name: str, q: float, threads: int) -> float | None:
        values = times.get(name, {}).get(threads)
        return round(pct(values, q), 1) if values else None

    # Reflex's best shipped path: the fastest that loaded, at the largest budget
    top = max(budgets)
    shipped = [n for n in REFLEX_PATHS if n in times]
    best = min(shipped, key=lambda n: pct(times[n][top], 50)) if shipped else None
    result: dict[str, Any] = {
        "benchmark": "vs_lerobot",
        "model": f"smolvla ({checkpoint.name}, random weights)",
        "parameters": {n: w.info.get("parameters") for n, w in workers.items()},
        "cameras": len(cameras),
        "image": image,
        "num_steps": 10,
        "rounds": args.rounds,
        "machine": {
            "cpu": platform.processor() or platform.machine(),
            "cores": os.cpu_count(),
            "load_avg": os.getloadavg(),
        },
        "best_reflex_path": best,
        "p50_ms": {n: {t: p(n, 50, t) for t in budgets} for n in times},
        "p99_ms": {n: {t: p(n, 99, t) for t in budgets} for n in times},
        "lerobot_eager_p50_ms": p("lerobot_bf16", 50, top),
        "lerobot_eager_fp32_p50_ms": p("lerobot_fp32", 50, top),
        "reflex_p50_ms": p(best, 50, top) if best else None,
        "reflex_p99_ms": p(best, 99, top) if best else None,
        "accuracy_vs_lerobot_fp32": accuracy,
        "cold_start_s": {k: round(v, 1) for k, v in cold.items()},
        "rss_mb": {k: round(v) for k, v in rss.items()},
        "refused": refused,
        "gates": {
            k: (None if v is None else {"passed": v["passed"], "worst": v["worst"]})
            for k, v in gates.items()
        },
        "lerobot_async_p50_ms": None,
        "reflex_ws_p50_ms": None,
        "reflex_http_p50_ms": None,
    }
    eager = [result["lerobot_eager_p50_ms"], result["lerobot_eager_fp32_p50_ms"]]
    if best and all(e is not None for e in eager):
        result["speedup_vs_eager"] = round(eager[0] / result["reflex_p50_ms"], 3)
        result["speedup_vs_eager_fp32"] = round(eager[1] / result["reflex_p50_ms"], 3)
    print(json.dumps(result))
    return 0


def prepare_tokenizer_pad(checkpoint: Path) -> None:
    """The pad token lerobot's tokenizer step needs, as the reference check finds it."""
    if not (checkpoint / "tokenizer_pad.json").is_file():
        from reflex_smolvla.loader import _pad_id
        from tokenizers import Tokenizer

        path = checkpoint / "tokenizer.json"
        pad = Tokenizer.from_file(str(path)).id_to_token(_pad_id(path))
        (checkpoint / "tokenizer_pad.json").write_text(json.dumps({"pad_token": pad}))


if __name__ == "__main__":
    sys.exit(main())
