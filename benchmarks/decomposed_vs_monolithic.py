"""Decomposed vs monolithic vs naive, through the reflex runtime, side by side in one run.

    python benchmarks/decomposed_vs_monolithic.py                 # exports tiny-pi05-heavy twice
    python benchmarks/decomposed_vs_monolithic.py --model tiny-groot   # any family's model
    python benchmarks/decomposed_vs_monolithic.py --artifacts DEC MONO
    python benchmarks/decomposed_vs_monolithic.py --artifacts DEC      # decomposed only
    python benchmarks/decomposed_vs_monolithic.py --model CKPT_DIR --decomposed-only \
        --export-arg=--tokenizer=tokenizer.json        # a real-size checkpoint directory

Exports the model (a built-in name or a checkpoint directory of any installed family) in both
modes with ``reflex export`` into a temporary directory (or takes existing artifacts), loads them
with :func:`reflex_core.runtime.load_policy`, and measures at batch 1, interleaved (every repeat
runs every method once, in rotating order), median after warm-up:

- P: the prefix graph; E: one expert step (KV already bound);
- decomposed: prefix once + N expert steps (the runtime's DecomposedRunner);
- monolithic: the one-graph export (its Euler loop is inside ONNX);
- naive: what a runtime without a KV split pays: the prefix graph AND one expert step at every
  one of the N steps (notes/onnx-export-facts.md: an ONNX graph that recomputes the prefix per
  step gets deduplicated by the optimizer, so the honest baseline is N prefix runs).

bound = N(P+E)/(P+N·E) is the best possible naive/decomposed ratio given P and E. It is the
family's own: P, E and N are measured and read in the same run on the same artifact. GR00T
(the Eagle backbone once, a 16-layer DiT per step) runs N = 4 steps where pi0 runs 10, so its
bound is at most 4 however cheap the step, against pi0's 10.
The JSON line carries P/E, N, the bound and naive/decomposed as a fraction of it.
``--decomposed-only`` skips the monolithic export and its rows (a real-size monolithic graph may
not fit in memory); P, E, decomposed, naive and the bound still come from the one artifact.

Then: session variants (prefix spinning on/off, KV via IOBinding or numpy, one shared global
thread pool, which needs its own process), and adaptive steps (time saved and max action
difference vs the full schedule on the same inputs). The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from reflex_core.runtime import DecomposedRunner, Policy, load_policy
from reflex_core.runtime.preprocess import ModelInputs, prepare_inputs
from reflex_core.runtime.providers import choose_providers
from reflex_core.runtime.sessions import enable_global_thread_pool, open_session
from reflex_core.wire.types import Observation

MODEL = "tiny-pi05-heavy"


# -- setup ---------------------------------------------------------------------------------------


def export(model: str, mode: str, out: Path, extra: list[str]) -> Path:
    """``reflex export`` in a subprocess (torch stays out of the measuring process); ``extra``
    are more of its flags (``--tokenizer``, ``--embodiment``...)."""
    cmd = [sys.executable, "-m", "reflex_core.cli", "export", model, "--mode", mode, "-o", str(out)]
    cmd += extra
    print(f"exporting {model} ({mode}) -> {out}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    print(f"  exported in {time.perf_counter() - start:.0f} s", file=sys.stderr, flush=True)
    return out


def observation(policy: Policy, seed: int) -> Observation:
    """A camera-sized frame per camera (resized by the runtime), a state, a prompt."""
    rng = np.random.default_rng(seed)
    return Observation(
        state=rng.uniform(-0.5, 0.5, policy.state_dim).astype(np.float32),
        images={
            c: rng.integers(0, 256, (480, 640, 3), dtype=np.uint8) for c in policy.camera_names
        },
        prompt="pick up the red cube and place it in the box",
    )


def model_inputs(policy: Policy, obs: Observation) -> ModelInputs:
    return prepare_inputs(
        images=[obs.images],
        states=[obs.state],
        prompts=[obs.prompt],
        io=policy.io,
        max_state_dim=policy.max_state_dim,
        state_stats=policy.state_stats,
        tokenizer=policy.tokenizer,
    )


def noise(policy: Policy, seed: int) -> np.ndarray:
    shape = (1, policy.chunk_size, policy.max_action_dim)
    return np.random.default_rng(seed).standard_normal(shape, dtype=np.float32)


def decomposed_runner(
    policy: Policy, *, prefix_spin: bool, expert_spin: bool, kv_feed: str, threads: int | None
) -> DecomposedRunner:
    """The artifact's graphs in fresh sessions with the given thread-pool behaviour."""
    plan = choose_providers(["CPUExecutionProvider"], ["cpu"])
    art = policy.artifact
    prefix, _ = open_session(
        art.graph_path("vlm_prefix"),
        plan,
        role="vlm_prefix",
        threads=threads,
        allow_spinning=prefix_spin,
    )
    expert, _ = open_session(
        art.graph_path("expert_denoise"),
        plan,
        role="expert_denoise",
        threads=threads,
        allow_spinning=expert_spin,
    )
    return DecomposedRunner(
        prefix, expert, num_steps=art.num_steps, flow=art.flow, kv_feed=kv_feed
    )


# -- timing --------------------------------------------------------------------------------------


def interleaved(
    methods: dict[str, Callable[[], Any]], repeats: int, warmup: int
) -> dict[str, list[float]]:
    """ms per call of each method; every repeat runs each method once, in a fresh seeded random
    order (a fixed rotation would always run a method after the same neighbour)."""
    names = list(methods)
    for _ in range(warmup):
        for name in names:
            methods[name]()
    samples: dict[str, list[float]] = {n: [] for n in names}
    rng = np.random.default_rng(0)
    for _ in range(repeats):
        for name in rng.permutation(names):
            start = time.perf_counter_ns()
            methods[name]()
            samples[name].append((time.perf_counter_ns() - start) / 1e6)
    return samples


def med(xs: list[float]) -> float:
    return float(statistics.median(xs))


def naive_call(runner: DecomposedRunner, inputs: ModelInputs, eps: np.ndarray) -> np.ndarray:
    """The prefix graph and one expert step at every step (no KV reuse)."""
    n = runner.num_steps
    dt = runner.flow.dt(n)
    x = eps
    for t_k in runner.flow.times(n):
        step = runner.stepper(runner.prefix(inputs), inputs.state)
        x = x + np.float32(dt) * step(x, np.full((1,), t_k, np.float32))
    return x


# -- sections ------------------------------------------------------------------------------------


def bound(p_ms: float, e_ms: float, num_steps: int) -> float:
    """The best naive/decomposed ratio: naive pays N (P + E), decomposed P + N E."""
    return num_steps * (p_ms + e_ms) / (p_ms + num_steps * e_ms)


def main_comparison(dec: Policy, mono: Policy | None, repeats: int, warmup: int) -> dict[str, Any]:
    obs = observation(dec, 0)
    inputs = model_inputs(dec, obs)
    eps = noise(dec, 1)
    runner = dec.runner
    assert isinstance(runner, DecomposedRunner)
    prefix = runner.prefix(inputs)
    step = runner.stepper(prefix, inputs.state)
    t0 = np.full((1,), runner.flow.t_start, np.float32)
    methods = {
        "P": lambda: runner.prefix(inputs),
        "E": lambda: step(eps, t0),
        "decomposed": lambda: runner.run(inputs, eps),
        "naive": lambda: naive_call(runner, inputs, eps),
        "policy_decomposed": lambda: dec.infer([obs], eps),
    }
    if mono is not None:
        methods["monolithic"] = lambda: mono.runner.run(inputs, eps)
        methods["policy_monolithic"] = lambda: mono.infer([obs], eps)
    samples = interleaved(methods, repeats, warmup)
    m = {k: med(v) for k, v in samples.items()}
    n = runner.num_steps
    a_dec = runner.run(inputs, eps).actions
    a_naive = naive_call(runner, inputs, eps)
    mono_rows: dict[str, float | None] = dict.fromkeys(
        ("monolithic_ms", "policy_monolithic_ms", "decomposed_over_monolithic",
         "max_abs_decomposed_vs_monolithic")
    )  # fmt: skip
    if mono is not None:
        a_mono = mono.runner.run(inputs, eps).actions
        mono_rows = {
            "monolithic_ms": m["monolithic"],
            "policy_monolithic_ms": m["policy_monolithic"],
            "decomposed_over_monolithic": m["decomposed"] / m["monolithic"],
            "max_abs_decomposed_vs_monolithic": float(np.abs(a_dec - a_mono).max()),
        }
    the_bound = bound(m["P"], m["E"], n)
    return {
        "P_ms": m["P"],
        "E_ms": m["E"],
        "P_over_E": m["P"] / m["E"],
        "num_steps": n,
        "decomposed_ms": m["decomposed"],
        "naive_ms": m["naive"],
        "policy_decomposed_ms": m["policy_decomposed"],
        "bound": the_bound,
        "ratio_vs_naive": m["naive"] / m["decomposed"],
        "fraction_of_bound": m["naive"] / m["decomposed"] / the_bound,
        "max_abs_decomposed_vs_naive": float(np.abs(a_dec - a_naive).max()),
        **mono_rows,
        "min_ms": {k: min(v) for k, v in samples.items()},
        "iqr_ms": {k: float(np.subtract(*np.percentile(v, [75, 25]))) for k, v in samples.items()},
    }


def variants(dec: Policy, threads: int | None, repeats: int, warmup: int) -> dict[str, float]:
    """Decomposed per-call ms under different thread-pool and KV-feed settings."""
    configs = {
        "prefix_nospin_iobinding": dict(prefix_spin=False, expert_spin=True, kv_feed="iobinding"),
        "prefix_nospin_numpy": dict(prefix_spin=False, expert_spin=True, kv_feed="numpy"),
        "all_spin_iobinding": dict(prefix_spin=True, expert_spin=True, kv_feed="iobinding"),
        "no_spin_iobinding": dict(prefix_spin=False, expert_spin=False, kv_feed="iobinding"),
    }
    runners = {k: decomposed_runner(dec, threads=threads, **v) for k, v in configs.items()}
    inputs = model_inputs(dec, observation(dec, 0))
    eps = noise(dec, 1)
    samples = interleaved(
        {k: (lambda r=r: r.run(inputs, eps)) for k, r in runners.items()}, repeats, warmup
    )
    return {k: med(v) for k, v in samples.items()}


def global_pool_child(dec_dir: Path, threads: int, repeats: int, warmup: int) -> None:
    """Run in a fresh process: one process-wide intra-op pool shared by both sessions."""
    enable_global_thread_pool(threads)
    dec = load_policy(dec_dir)
    inputs = model_inputs(dec, observation(dec, 0))
    eps = noise(dec, 1)
    samples = interleaved({"global_pool": lambda: dec.runner.run(inputs, eps)}, repeats, warmup)
    print(json.dumps({"global_pool": med(samples["global_pool"])}))


def adaptive(
    dec_dir: Path, tolerances: list[float], cases: int, repeats: int
) -> list[dict[str, Any]]:
    """Adaptive steps vs the full schedule on the same observations and noise."""
    full = load_policy(dec_dir)
    rows = []
    data = [
        (model_inputs(full, observation(full, 100 + i)), noise(full, 200 + i)) for i in range(cases)
    ]
    ref = [full.runner.run(x, e) for x, e in data]
    for tol in tolerances:
        fast = load_policy(dec_dir, adaptive_steps=tol)
        results = [fast.runner.run(x, e) for x, e in data]
        full_ms, fast_ms, full_expert, fast_expert = [], [], [], []
        for _ in range(repeats):  # interleaved: full and adaptive alternate on every case
            for x, e in data:
                a, b = full.runner.run(x, e), fast.runner.run(x, e)
                full_ms.append(a.model_ms)
                fast_ms.append(b.model_ms)
                full_expert.append(a.expert_ms)
                fast_expert.append(b.expert_ms)
        diff = max(
            float(np.abs(r.actions - f.actions).max()) for r, f in zip(ref, results, strict=True)
        )
        scale = max(float(np.abs(r.actions).max()) for r in ref)
        rows.append(
            {
                "tol": tol,
                "mean_steps": float(np.mean([r.steps for r in results])),
                "full_ms": med(full_ms),
                "adaptive_ms": med(fast_ms),
                "time_saved": 1.0 - med(fast_ms) / med(full_ms),
                "time_saved_from_min": 1.0 - min(fast_ms) / min(full_ms),
                "expert_full_ms": med(full_expert),
                "expert_adaptive_ms": med(fast_expert),
                "max_abs_action_diff": diff,
                "max_abs_action": scale,
            }
        )
    return rows


# -- main ----------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--artifacts",
        nargs="+",
        type=Path,
        metavar="DIR",
        help="DECOMPOSED [MONOLITHIC]: existing exports (one: decomposed only)",
    )
    parser.add_argument(
        "--model", default=MODEL, help=f"built-in name or checkpoint directory (default {MODEL})"
    )
    parser.add_argument(
        "--decomposed-only",
        action="store_true",
        help="export and measure the decomposed artifact only (no monolithic rows)",
    )
    parser.add_argument(
        "--export-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="pass ARG to reflex export (repeatable), e.g. --export-arg=--tokenizer=FILE",
    )
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="intra-op threads (default OMP_NUM_THREADS or cores)",
    )
    parser.add_argument("--tolerances", default="0.05,0.13,0.16")
    parser.add_argument("--adaptive-cases", type=int, default=4)
    parser.add_argument("--skip-variants", action="store_true")
    parser.add_argument("--workdir", type=Path, help="export here and keep the artifacts")
    parser.add_argument("--global-pool-child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    threads = (
        args.threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or (os.cpu_count() or 1)
    )
    if args.global_pool_child:
        global_pool_child(args.global_pool_child, threads, args.repeats, args.warmup)
        return 0

    tmp = None
    mono_dir: Path | None = None
    if args.artifacts:
        if len(args.artifacts) > 2:
            parser.error("--artifacts takes DECOMPOSED [MONOLITHIC]")
        dec_dir = args.artifacts[0]
        if len(args.artifacts) == 2 and not args.decomposed_only:
            mono_dir = args.artifacts[1]
    else:
        root = args.workdir or Path(tmp := tempfile.mkdtemp(prefix="reflex-bench-"))
        dec_dir = export(args.model, "decomposed", root / "decomposed", args.export_arg)
        if not args.decomposed_only:
            mono_dir = export(args.model, "monolithic", root / "monolithic", args.export_arg)

    dec = load_policy(dec_dir, threads=threads)
    mono = load_policy(mono_dir, threads=threads) if mono_dir is not None else None
    info = {k: dec.info[k] for k in ("model", "family", "num_steps", "chunk_size", "providers")}
    res = main_comparison(dec, mono, args.repeats, args.warmup)

    var: dict[str, float] = {}
    if not args.skip_variants:
        var = variants(dec, threads, args.repeats, args.warmup)
        child = subprocess.run(
            [
                sys.executable,
                __file__,
                "--global-pool-child",
                str(dec_dir),
                "--threads",
                str(threads),
                "--repeats",
                str(args.repeats),
                "--warmup",
                str(args.warmup),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        var.update(json.loads(child.stdout.strip().splitlines()[-1]))
    tols = [float(t) for t in args.tolerances.split(",") if t]
    ada = adaptive(dec_dir, tols, args.adaptive_cases, max(3, args.repeats // 3)) if tols else []

    n = res["num_steps"]
    print(
        f"\n{info['model']} ({info['family']}), batch 1, {n} steps, {threads} intra-op threads, "
        f"providers {sorted({p for v in info['providers'].values() for p in v})}, median of {args.repeats}"
    )
    rows = [
        ("P  prefix graph", "P"),
        ("E  one expert step", "E"),
        ("decomposed (prefix once + N steps)", "decomposed"),
        ("monolithic (one graph)", "monolithic"),
        ("naive (prefix + step, N times)", "naive"),
        ("policy.infer decomposed (with preprocessing)", "policy_decomposed"),
        ("policy.infer monolithic (with preprocessing)", "policy_monolithic"),
    ]
    print(f"  {'':<46} {'median':>9}    {'min':>9}")
    for label, key in rows:
        if key in res["min_ms"]:  # the monolithic rows are absent with --decomposed-only
            ms = res[f"{key}_ms"]
            print(f"  {label:<46} {ms:9.2f} ms {res['min_ms'][key]:9.2f} ms")
    print(
        f"  {info['family']}'s bound N(P+E)/(P+N·E) with P/E = {res['P_over_E']:.1f}, N = {n}: "
        f"{res['bound']:.2f}x   naive/decomposed = {res['ratio_vs_naive']:.2f}x "
        f"({res['fraction_of_bound']:.0%} of bound, target >= 90%)"
    )
    if mono is not None:
        print(f"  decomposed/monolithic = {res['decomposed_over_monolithic']:.3f} (target <= 1.05)")
        print(f"  max |decomposed - monolithic| = {res['max_abs_decomposed_vs_monolithic']:.2e}")
    print(f"  max |decomposed - naive| = {res['max_abs_decomposed_vs_naive']:.2e}")
    if var:
        print("\nsession variants (decomposed per call):")
        for k, v in var.items():
            print(f"  {k:<28} {v:9.2f} ms")
    if ada:
        print("\nadaptive steps (same observations and noise as the full schedule):")
        head = (
            "tol",
            "steps",
            "full ms",
            "adaptive ms",
            "saved",
            "saved(min)",
            "expert ms",
            "max |Δa|",
        )
        print("  " + " ".join(f"{h:>11}" for h in head))
        for r in ada:
            cells = [
                f"{r['tol']:g}",
                f"{r['mean_steps']:.2f}",
                f"{r['full_ms']:.2f}",
                f"{r['adaptive_ms']:.2f}",
                f"{r['time_saved']:.1%}",
                f"{r['time_saved_from_min']:.1%}",
                f"{r['expert_full_ms']:.1f}->{r['expert_adaptive_ms']:.1f}",
                f"{r['max_abs_action_diff']:.2e}",
            ]
            print("  " + " ".join(f"{c:>11}" for c in cells))
        print(f"  (max |action| in the chunk: {ada[0]['max_abs_action']:.2f}, normalized units)")
    summary = {k: v for k, v in res.items() if k != "iqr_ms"}
    mins = res["min_ms"]
    summary["bound_from_min"] = bound(mins["P"], mins["E"], n)
    summary["ratio_vs_naive_from_min"] = mins["naive"] / mins["decomposed"]
    summary["decomposed_over_monolithic_from_min"] = (
        mins["decomposed"] / mins["monolithic"] if "monolithic" in mins else None
    )
    summary.update(
        threads=threads,
        repeats=args.repeats,
        variants_ms=var,
        adaptive=ada,
        model=info["model"],
        family=info["family"],
        loadavg=[round(x, 2) for x in os.getloadavg()],
    )
    if tmp:
        summary["artifacts_dir"] = tmp
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
