"""The precision gate of a reduced-precision OpenVINO path: ``reflex openvino gate DIR``.

The reference is the artifact itself run by onnxruntime's CPU provider in fp32 — the graphs
``reflex export`` already held to the fp32 parity gate against PyTorch (max abs 1e-4). Both sides
run the full runtime (`load_policy`: preprocessing, the Euler loop, unnormalization) on the same
generated observations and the same noise, so what is compared is the **action chunk in robot
units** a robot would receive (the artifact's own action statistics applied; no embodiment, so
no gripper binarization).

Passes when, on every case, ``cosine >= min_cos`` (default 0.9999) and ``max_abs_error <=
allowed_abs`` — ``max_abs`` when given, else ``max_rel * max|reference|`` over all cases (default
1 %, the order of lerobot's own bf16 path against its fp32: measure it with
``benchmarks/vs_lerobot.py``). The report goes to ``DIR/backends/openvino/<precision>/
gate_report.json``, passed or not; the backend serves the precision only while it says passed for
this artifact, OpenVINO version and CPU.

``--precision int8`` first calibrates: the fp32 graphs run with the activation inputs of every
quantizable linear layer as extra outputs on ``calibration`` generated observations (prefix once,
expert at every Euler step), their ``max |x|`` becomes the activation range, and the quantized
graphs are written beside the report (``vlm_prefix.xml`` / ``.bin``...).
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from reflex_openvino import backend

PROMPTS = ("pick up the red cube", "open the drawer", "put the cup in the sink", "", "stack blocks")


def _frame(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A camera-like frame: smooth random shapes plus sensor noise (uint8 RGB)."""
    coarse = rng.uniform(0, 255, size=(8, 8, 3))
    rows = np.linspace(0, 7, height).astype(int)
    cols = np.linspace(0, 7, width).astype(int)
    image = coarse[rows][:, cols] + rng.normal(0, 12, size=(height, width, 3))
    return np.clip(image, 0, 255).astype(np.uint8)


def _state_range(policy: Any) -> tuple[np.ndarray, np.ndarray]:
    stats = policy.artifact.normalization.get("state") or {}
    dim = policy.state_dim
    for low, high in (("q01", "q99"), ("min", "max")):
        if stats.get(low) is not None and stats.get(high) is not None:
            return np.asarray(stats[low], np.float32)[:dim], np.asarray(stats[high], np.float32)[
                :dim
            ]
    if stats.get("mean") is not None and stats.get("std") is not None:
        mean, std = np.asarray(stats["mean"], np.float32), np.asarray(stats["std"], np.float32)
        return (mean - 2 * std)[:dim], (mean + 2 * std)[:dim]
    return -np.ones(dim, np.float32), np.ones(dim, np.float32)


def generated_observations(policy: Any, count: int, seed: int) -> list[Any]:
    """``count`` seeded observations at the artifact's camera size, states over its range."""
    from reflex_core.wire.types import Observation

    low, high = _state_range(policy)
    height, width = policy.image_size
    out = []
    for i in range(count):
        rng = np.random.default_rng([seed, i])
        out.append(
            Observation(
                state=rng.uniform(low, high).astype(np.float32),
                images={name: _frame(rng, height, width) for name in policy.camera_names},
                prompt=PROMPTS[i % len(PROMPTS)],
            )
        )
    return out


def noises(policy: Any, count: int, seed: int) -> list[np.ndarray]:
    shape = (1, policy.chunk_size, policy.max_action_dim)
    return [
        np.random.default_rng([seed, i, 7]).standard_normal(shape, dtype=np.float32)
        for i in range(count)
    ]


def compare(reference: np.ndarray, candidate: np.ndarray) -> dict[str, float]:
    """max abs error and cosine over the flattened chunks, in float64."""
    ref = np.asarray(reference, np.float64).ravel()
    got = np.asarray(candidate, np.float64).ravel()
    if ref.shape != got.shape or not np.isfinite(got).all():
        return {"max_abs_error": float("inf"), "cosine": float("-inf"), "ref_max_abs": 0.0}
    denom = float(np.linalg.norm(ref) * np.linalg.norm(got))
    cosine = float(ref @ got / denom) if denom > 0 else float(np.array_equal(ref, got))
    return {
        "max_abs_error": float(np.max(np.abs(ref - got))) if ref.size else 0.0,
        "cosine": cosine,
        "ref_max_abs": float(np.max(np.abs(ref))) if ref.size else 0.0,
    }


def verdict(
    cases: list[dict[str, float]], *, min_cos: float, max_abs: float | None, max_rel: float
) -> dict[str, Any]:
    """Pass/fail over the cases; ``allowed_abs`` is ``max_abs`` or ``max_rel * max|ref|``."""
    scale = max((c["ref_max_abs"] for c in cases), default=0.0)
    allowed = max_abs if max_abs is not None else max_rel * scale
    judged = []
    for c in cases:
        ok = c["max_abs_error"] <= allowed and c["cosine"] >= min_cos
        judged.append({**c, "allowed_abs": allowed, "passed": bool(ok)})

    def score(c: dict[str, Any]) -> float:
        abs_part = c["max_abs_error"] / allowed if allowed > 0 else float("inf")
        return max(abs_part, (1 - c["cosine"]) / (1 - min_cos))

    worst = max(judged, key=score) if judged else {}
    return {
        "passed": bool(judged) and all(c["passed"] for c in judged),
        "thresholds": {"min_cos": min_cos, "max_abs": max_abs, "max_rel": max_rel},
        "allowed_abs": allowed,
        "cases": judged,
        "worst": worst,
    }


def _run(policy: Any, observations: list[Any], noise: list[np.ndarray]) -> tuple[list, list]:
    actions, times = [], []
    for obs, eps in zip(observations, noise, strict=True):
        start = time.perf_counter()
        actions.append(policy.infer([obs], noise=eps).actions)
        times.append((time.perf_counter() - start) * 1e3)
    return actions, times


def _backend_policy(artifact: Any, name: str, opener: Any, threads: int | None) -> Any:
    from reflex_core.plugin.registry import RuntimeBackend
    from reflex_core.runtime import load_policy

    spec = RuntimeBackend(name=name, probe=lambda: None, open_session=opener)
    return load_policy(artifact, providers=[name], runtime_backends={name: spec}, threads=threads)


def calibrate_int8(
    artifact: Any,
    observations: list[Any],
    noise: list[np.ndarray],
    *,
    threads: int | None,
    thin: int = 64,
) -> dict[str, Any]:
    """Calibrate activation ranges on ``observations`` and write the int8 graphs."""
    import openvino as ov

    from reflex_openvino import precision as prec

    out_dir = backend.gate_dir(artifact.directory, "int8")
    out_dir.mkdir(parents=True, exist_ok=True)
    core = backend._core()
    observers: dict[str, prec.RangeObserver] = {}

    def opener(art: Any, role: str, *, threads: int | None = None) -> Any:
        from reflex_openvino.session import OVSession, output_names

        model = core.read_model(str(art.graph_path(role)))
        names = output_names(model)
        observers[role] = prec.add_calibration_outputs(model, thin=thin)
        config = {"INFERENCE_NUM_THREADS": int(threads or 1), "INFERENCE_PRECISION_HINT": "f32"}
        compiled = core.compile_model(model, "CPU", config)
        return OVSession(compiled, "openvino-calibration", observers[role], names)

    policy = _backend_policy(artifact, "openvino-calibration", opener, threads)
    _run(policy, observations, noise)
    del policy
    gc.collect()
    summary: dict[str, Any] = {}
    for role, observer in observers.items():
        model = core.read_model(str(artifact.graph_path(role)))
        quantized = prec.quantize_int8(model, observer.absmax, thin=thin)
        ov.save_model(model, str(out_dir / f"{role}.xml"), compress_to_fp16=False)
        del model
        gc.collect()
        summary[role] = {
            "quantized_matmuls": len(quantized),
            "calibration_runs": observer.runs,
            "activation_ranges": len(observer.absmax),
        }
    return summary


def run_gate(
    artifact_dir: str | Path,
    precision: str,
    *,
    cases: int = 4,
    seed: int = 0,
    calibration: int = 8,
    threads: int | None = None,
    min_cos: float = 0.9999,
    max_abs: float | None = None,
    max_rel: float = 0.01,
    thin: int = 64,
) -> dict[str, Any]:
    """Gate ``precision`` on the artifact and write its report; returns the report.

    :param thin: int8 leaves linear layers with ``min(K, N) <= thin`` in fp32.
    """
    from reflex_core.artifact import Artifact
    from reflex_core.errors import ConfigError
    from reflex_core.runtime import load_policy

    if precision not in backend.GATED:
        raise ConfigError(
            f"--precision must be one of {backend.GATED}", slug="invalid-config-value"
        )
    why = backend.probe(precision)
    if why is not None:
        raise ConfigError(
            f"openvino-{precision}: {why}", slug="provider-unavailable", field="providers"
        )
    started = time.perf_counter()
    artifact = Artifact.load(artifact_dir, verify=True)
    out_dir = backend.gate_dir(artifact.directory, precision)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / backend.GATE_REPORT).unlink(missing_ok=True)  # no stale verdict while it runs

    reference = load_policy(artifact, providers=["cpu"], threads=threads)
    observations = generated_observations(reference, cases, seed)
    noise = noises(reference, cases, seed)
    calib_obs = generated_observations(reference, calibration, seed + 1000)
    calib_noise = noises(reference, calibration, seed + 1000)
    ref_actions, ref_ms = _run(reference, observations, noise)
    del reference
    gc.collect()

    calibration_summary = None
    if precision == "int8":
        calibration_summary = calibrate_int8(
            artifact, calib_obs, calib_noise, threads=threads, thin=thin
        )
        calibration_summary["thin"] = thin

    name = f"openvino-{precision}"
    opener = partial(backend.open_session, precision=precision, require_gate=False)
    candidate = _backend_policy(artifact, name, opener, threads)
    got_actions, got_ms = _run(candidate, observations, noise)
    del candidate
    gc.collect()

    results = [compare(r, g) for r, g in zip(ref_actions, got_actions, strict=True)]
    for i, r in enumerate(results):
        r["case"] = i
    report = {
        "schema_version": 1,
        "backend": name,
        "precision": precision,
        "reference": "the artifact's fp32 graphs on onnxruntime's CPU provider",
        "compared": "action chunk in robot units (artifact statistics, no embodiment)",
        "artifact_config_sha256": artifact.config_sha256,
        "openvino": backend.version(),
        "cpu": backend.cpu_name(),
        "capabilities": backend.capabilities(),
        "seed": seed,
        **verdict(results, min_cos=min_cos, max_abs=max_abs, max_rel=max_rel),
        "calibration": calibration_summary,
        "median_ms": {"reference": statistics.median(ref_ms), name: statistics.median(got_ms)},
        "seconds": round(time.perf_counter() - started, 1),
    }
    (out_dir / backend.GATE_REPORT).write_text(json.dumps(report, indent=2) + "\n")
    return report
