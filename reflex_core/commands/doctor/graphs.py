"""The graphs as the runtime loads them: inputs/outputs against the manifest and the runtime
contract, and a timed dry run through the real runtime."""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

from reflex_core.commands.doctor.embodiment import emb_fits
from reflex_core.commands.doctor.report import FAIL, PASS, Check

_MONOLITHIC_INPUTS = ("images", "image_masks", "tokens", "token_masks", "state", "noise")


def contract_problems(artifact: Any, sessions: Mapping[str, Any]) -> list[str]:
    """What the runtime contract needs from the graphs, checked on the live sessions."""
    problems: list[str] = []
    names = {
        g: ([i.name for i in s.get_inputs()], [o.name for o in s.get_outputs()])
        for g, s in sessions.items()
    }
    if artifact.mode == "decomposed":
        p_in, p_out = names["vlm_prefix"]
        e_in, e_out = names["expert_denoise"]
        unknown = [n for n in p_in if n not in _MONOLITHIC_INPUTS[:5]]
        if unknown:
            problems.append(f"vlm_prefix wants inputs the runtime does not produce: {unknown}")
        unfed = [n for n in e_in if n not in ("x_t", "t", "state") and n not in p_out]
        if unfed:
            problems.append(f"expert_denoise wants inputs nobody produces: {unfed}")
        if "velocity" not in e_out:
            problems.append("expert_denoise has no 'velocity' output")
    elif artifact.mode == "monolithic":
        p_in, p_out = names["policy"]
        unknown = [n for n in p_in if n not in _MONOLITHIC_INPUTS]
        if unknown:
            problems.append(f"policy wants inputs the runtime does not produce: {unknown}")
        if "actions" not in p_out:
            problems.append("policy has no 'actions' output")
    return problems


def _expected_dims(artifact: Any) -> dict[str, dict[int, int]]:
    """Fixed axes (axis -> size) each named input must have, from the manifest's scalars."""
    n = len(artifact.cameras)
    return {
        "images": {1: n, 2: 3, 3: artifact.image.height, 4: artifact.image.width},
        "image_masks": {1: n},
        "tokens": {1: artifact.tokenizer.max_length},
        "token_masks": {1: artifact.tokenizer.max_length},
        "state": {1: artifact.max_state_dim},
        "noise": {1: artifact.chunk_size, 2: artifact.max_action_dim},
        "x_t": {1: artifact.chunk_size, 2: artifact.max_action_dim},
    }


def io_problems(artifact: Any, sessions: Mapping[str, Any]) -> list[str]:
    """Graph inputs/outputs as loaded vs as the manifest records them, plus fixed dims."""
    problems: list[str] = []
    expected = _expected_dims(artifact)
    for name, session in sessions.items():
        spec = artifact.graphs[name]
        live_in = [i.name for i in session.get_inputs()]
        live_out = [o.name for o in session.get_outputs()]
        if live_in != spec.input_names:
            problems.append(f"{name}: inputs {live_in} but the manifest says {spec.input_names}")
        if live_out != spec.output_names:
            problems.append(f"{name}: outputs {live_out} but the manifest says {spec.output_names}")
        for arg in session.get_inputs():
            for axis, size in expected.get(arg.name, {}).items():
                shape = list(arg.shape)
                got = shape[axis] if axis < len(shape) else None
                if isinstance(got, int) and got != size:
                    problems.append(
                        f"{name}: input {arg.name} axis {axis} is {got}, the manifest implies {size}"
                    )
    return problems


def dry_run_checks(
    artifact: Any,
    emb: Any,
    *,
    providers: Sequence[str] | None,
    allow_cpu_fallback: bool,
    runs: int,
) -> list[Check]:
    """Load the artifact in the real runtime (with ``emb`` when it fits), compare its graphs
    with the manifest, and time ``runs`` inferences of a dummy observation."""
    import numpy as np

    from reflex_core.errors import ReflexError
    from reflex_core.runtime import load_policy

    checks: list[Check] = []
    try:
        policy = load_policy(
            artifact,
            embodiment=emb if emb is not None and emb_fits(artifact, emb) else None,
            providers=providers,
            allow_cpu_fallback=allow_cpu_fallback,
        )
    except ReflexError as exc:
        hint = (
            "serve with --providers cpu or --allow-cpu-fallback, or fix the GPU libraries"
            if exc.slug.startswith("provider")
            else "re-export the model"
        )
        checks.append(
            Check("dry run", FAIL, f"the runtime cannot load it: {exc}", hint, {"slug": exc.slug})
        )
        return checks
    problems = io_problems(artifact, policy.runner.sessions) + contract_problems(
        artifact, policy.runner.sessions
    )
    checks.append(
        Check(
            "graph io",
            FAIL if problems else PASS,
            "; ".join(problems)
            if problems
            else "graph inputs/outputs match the manifest and the runtime contract",
            "re-export with this reflex version" if problems else None,
        )
    )
    try:
        warm = policy.warmup()
        outputs = [policy.infer([policy.dummy_observation()]) for _ in range(runs)]
    except ReflexError as exc:
        checks.append(Check("dry run", FAIL, f"inference failed: {exc}", "re-export the model"))
        return checks
    total = statistics.median(o.timings["total_ms"] for o in outputs)
    finite = all(np.isfinite(o.actions).all() for o in [warm, *outputs])
    timing = outputs[-1].timings
    parts = [f"median {total:.1f} ms over {runs} runs (warm-up {warm.timings['total_ms']:.1f} ms)"]
    if timing.get("prefix_ms") is not None:
        parts.append(
            f"prefix {timing['prefix_ms']:.1f} ms + {timing['steps']} expert steps {timing['expert_ms']:.1f} ms"
        )
    parts.append(f"actions {tuple(outputs[-1].actions.shape)}")
    parts.append(
        "providers " + ", ".join(sorted({p for v in policy.info["providers"].values() for p in v}))
    )
    checks.append(
        Check(
            "dry run",
            PASS if finite else FAIL,
            "; ".join(parts) if finite else "the policy produced NaN or Inf actions",
            None if finite else "check the export's parity report and the normalization stats",
            {"median_total_ms": total, "timings": timing, "providers": policy.info["providers"]},
        )
    )
    return checks
