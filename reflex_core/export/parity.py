"""The parity gate: PyTorch eager vs onnxruntime on seeded cases.

For each case (random camera frames of random sizes, a missing camera, random prompts, states
and noise) the raw observation goes through :func:`reflex_core.runtime.preprocess.prepare_inputs`
once; the torch reference and onnxruntime then receive exactly those arrays, so the gate compares
the graphs, never two preprocessing implementations.

Compared, per case:

- every graph on its own (``vlm_prefix``, ``expert_denoise`` or ``policy``), each output by
  name. An input the case does not provide (the expert's KV cache, ``x_t``, ``t``) comes from the
  torch reference prefix and the case's generator, so an expert error is never blamed on the
  prefix;
- end to end, twice: the runtime's own runner (:mod:`reflex_core.runtime.runners`, the sessions
  ``reflex serve`` opens) against the family's ``sample_actions`` on the same preprocessed
  arrays (``actions``, model units, and ``features``); and the whole served path in robot units
  (``actions_robot``): the raw observation through ``Policy.infer`` (the artifact's manifest:
  its preprocessing contract, tokenizer and normalization statistics) against the torch
  reference unnormalized with the checkpoint's own statistics. A manifest that does not say
  what the checkpoint was trained with (a stat, a pad value, a prompt template) fails here.

The gate runs in two halves so the torch model and onnxruntime's copy of the graphs never
coexist: :func:`compute_references` computes every torch output above into numpy arrays, the
caller releases the model, then :func:`compare_with_onnx` opens the sessions and compares.

Metrics per output: ``max_abs_error``, ``max_rel_error`` (``max_abs_error / max |reference|``,
relative to the output's scale) and ``cosine`` similarity (float64, flattened). An output passes
when ``max_abs_error <= allowed_abs`` and ``cosine >= min_cos``; ``allowed_abs`` is ``max_abs``,
except for outputs whose scale grows with the model (the KV cache, pooled features) or is the
robot's (actions in robot units: radians, metres, millimetres...), where it is
``max(max_abs, kv_max_rel * max |reference|)`` (notes/onnx-export-facts.md: the KV cache of a
larger model differs by 7.7e-5 abs at fp32, 2.9e-5 of its scale). Booleans must match exactly.
"""

from __future__ import annotations

import fnmatch
import platform
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from reflex_core.export.progress import SILENT, Progress
from reflex_core.models.family import OBSERVATION_INPUTS

#: Output names judged relative to their scale (see the module doc).
RELATIVE_OUTPUTS = ("past_k_*", "past_v_*", "features", "actions_robot")
END_TO_END = "end_to_end"
REPORT_SCHEMA_VERSION = 1

_WORDS = (
    "pick up the red cube and place it in bowl open drawer close gripper move left right "
    "stack blocks fold towel push button slowly green sponge"
).split()


@attrs.frozen
class ParitySettings:
    """Thresholds and cases of the gate.

    :ivar max_abs: max absolute error per output (defaults: 1e-4 fp32, 5e-3 fp16).
    :ivar min_cos: minimum cosine similarity (0.9999 fp32, 0.999 fp16).
    :ivar kv_max_rel: allowed error relative to the output's scale for ``relative_outputs``
        (:data:`RELATIVE_OUTPUTS` at fp32; every output at fp16).
    :ivar cases: number of seeded cases (batch sizes cycle 1, 2, 3).
    :ivar seed: base seed; case i uses ``numpy.random.default_rng([seed, i])``.
    :ivar threads: intra-op threads of the onnxruntime sessions (None: runtime default).
    """

    max_abs: float = 1e-4
    min_cos: float = 0.9999
    kv_max_rel: float = 1e-4
    cases: int = 4
    seed: int = 0
    threads: int | None = None
    relative_outputs: tuple[str, ...] = attrs.field(default=RELATIVE_OUTPUTS, converter=tuple)

    @classmethod
    def for_precision(cls, precision: str, **overrides: Any) -> ParitySettings:
        """Defaults per precision; ``None`` values in ``overrides`` keep the default."""
        if precision == "fp16":
            # fp16 keeps 11 significant bits: its error grows with the value, so at fp16 every
            # output is judged relative to its own scale (an action-expert velocity of scale 3
            # is off by ~5e-3 after ten layers of fp16 rounding, 1.6e-3 of its scale).
            base = cls(max_abs=5e-3, min_cos=0.999, kv_max_rel=5e-3, relative_outputs=("*",))
        else:
            base = cls()
        return attrs.evolve(base, **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict[str, Any]:
        return {
            "max_abs": self.max_abs,
            "min_cos": self.min_cos,
            "kv_max_rel": self.kv_max_rel,
            "relative_outputs": list(self.relative_outputs),
        }


@attrs.frozen(eq=False)
class ParityCase:
    """One seeded case: preprocessed inputs, noise and what they were made from."""

    index: int
    seed: list[int]
    inputs: Any  # reflex_core.runtime.preprocess.ModelInputs
    noise: np.ndarray
    description: dict[str, Any]
    observations: tuple[Any, ...] = ()  # the raw reflex_core.wire.types.Observation objects


# ----------------------------------------------------------------------------------------------
# Metrics
# ----------------------------------------------------------------------------------------------


def compare_arrays(reference: np.ndarray, actual: np.ndarray) -> dict[str, float]:
    """max abs error, scale-relative error and cosine similarity of two same-shape arrays."""
    ref = np.asarray(reference)
    got = np.asarray(actual)
    if ref.shape != got.shape:
        return {
            "max_abs_error": float("inf"),
            "max_rel_error": float("inf"),
            "cosine": 0.0,
            "ref_max_abs": float("nan"),
            "shape_mismatch": 1.0,
        }
    r = ref.astype(np.float64).reshape(-1)
    g = got.astype(np.float64).reshape(-1)
    if r.size == 0:
        return {"max_abs_error": 0.0, "max_rel_error": 0.0, "cosine": 1.0, "ref_max_abs": 0.0}
    if not (np.all(np.isfinite(r)) and np.all(np.isfinite(g))):
        same = bool(np.array_equal(r, g, equal_nan=True))
        return {
            "max_abs_error": 0.0 if same else float("inf"),
            "max_rel_error": 0.0 if same else float("inf"),
            "cosine": 1.0 if same else 0.0,
            "ref_max_abs": float(np.nanmax(np.abs(r))) if np.any(np.isfinite(r)) else float("nan"),
            "non_finite": 1.0,
        }
    diff = float(np.max(np.abs(r - g)))
    scale = float(np.max(np.abs(r)))
    nr, ng = float(np.linalg.norm(r)), float(np.linalg.norm(g))
    if nr == 0.0 and ng == 0.0:
        cosine = 1.0
    elif nr == 0.0 or ng == 0.0:
        cosine = 0.0
    else:
        cosine = float(np.dot(r, g) / (nr * ng))
    return {
        "max_abs_error": diff,
        "max_rel_error": diff / scale if scale > 0 else (0.0 if diff == 0 else float("inf")),
        "cosine": cosine,
        "ref_max_abs": scale,
    }


def is_relative(name: str, patterns: Sequence[str] = RELATIVE_OUTPUTS) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns)


def judge(name: str, metrics: dict[str, float], settings: ParitySettings) -> dict[str, Any]:
    """Add ``allowed_abs``, ``passed`` and ``score`` (1.0 = exactly at the threshold)."""
    allowed = settings.max_abs
    if is_relative(name, settings.relative_outputs) and np.isfinite(metrics["ref_max_abs"]):
        allowed = max(allowed, settings.kv_max_rel * metrics["ref_max_abs"])
    abs_score = metrics["max_abs_error"] / allowed if allowed > 0 else float("inf")
    cos_gap = 1.0 - settings.min_cos
    cos_score = (1.0 - metrics["cosine"]) / cos_gap if cos_gap > 0 else 0.0
    passed = (
        metrics["max_abs_error"] <= allowed
        and metrics["cosine"] >= settings.min_cos
        and "shape_mismatch" not in metrics
    )
    return {
        **metrics,
        "allowed_abs": allowed,
        "passed": bool(passed),
        "score": max(abs_score, cos_score),
    }


def summarize(case_index: int, outputs: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One graph on one case: the worst numbers over its outputs."""
    worst = max(outputs, key=lambda n: outputs[n]["score"])
    return {
        "case": case_index,
        "passed": all(o["passed"] for o in outputs.values()),
        "max_abs_error": max(o["max_abs_error"] for o in outputs.values()),
        "max_rel_error": max(o["max_rel_error"] for o in outputs.values()),
        "cosine": min(o["cosine"] for o in outputs.values()),
        "worst_output": worst,
        "outputs": outputs,
    }


# ----------------------------------------------------------------------------------------------
# Cases
# ----------------------------------------------------------------------------------------------


def _random_state(
    rng: np.random.Generator, dim: int, stats: Mapping[str, Any] | None
) -> np.ndarray:
    """A state in robot units, spread over (and a little beyond) the checkpoint's range."""
    mode = None if stats is None else stats.get("mode")
    if mode == "QUANTILES":
        low = np.asarray(stats["q01"], dtype=np.float64)  # type: ignore[index]
        high = np.asarray(stats["q99"], dtype=np.float64)  # type: ignore[index]
        span = high - low
        return rng.uniform(low - 0.1 * span, high + 0.1 * span).astype(np.float32)
    if mode == "MEAN_STD":
        mean = np.asarray(stats["mean"], dtype=np.float64)  # type: ignore[index]
        std = np.asarray(stats["std"], dtype=np.float64)  # type: ignore[index]
        return (mean + std * rng.standard_normal(dim)).astype(np.float32)
    return rng.standard_normal(dim).astype(np.float32)


def make_cases(policy: Any, tokenizer: Any, settings: ParitySettings) -> list[ParityCase]:
    """Seeded cases built from raw observations through the runtime's preprocessing."""
    from reflex_core.runtime.preprocess import prepare_inputs
    from reflex_core.wire.types import Observation

    cameras = list(policy.camera_names)
    height, width = (int(v) for v in policy.image_size)
    state_stats = (policy.normalization or {}).get("state")
    cases = []
    for index in range(settings.cases):
        seed = [int(settings.seed), index]
        rng = np.random.default_rng(seed)
        batch = 1 + index % 3
        images: list[dict[str, np.ndarray]] = []
        states, prompts, sizes, missing = [], [], [], []
        for b in range(batch):
            frames = {}
            for c, name in enumerate(cameras):
                # Case 1 (and every third after it) drops the last camera of its first sample.
                if len(cameras) > 1 and index % 3 == 1 and b == 0 and c == len(cameras) - 1:
                    missing.append([b, name])
                    continue
                h = int(rng.integers(max(4, height // 2), 2 * height + 1))
                w = int(rng.integers(max(4, width // 2), 2 * width + 1))
                frames[name] = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                sizes.append([b, name, h, w])
            images.append(frames)
            states.append(_random_state(rng, int(policy.state_dim), state_stats))
            words = rng.choice(_WORDS, size=int(rng.integers(0, 9)))
            prompts.append(" ".join(str(w) for w in words))
        inputs = prepare_inputs(
            images=images,
            states=states,
            prompts=prompts,
            io=policy.io,
            max_state_dim=int(policy.max_state_dim),
            state_stats=state_stats,
            tokenizer=tokenizer,
        )
        noise = rng.standard_normal(
            (batch, int(policy.chunk_size), int(policy.max_action_dim))
        ).astype(np.float32)
        cases.append(
            ParityCase(
                index=index,
                seed=seed,
                inputs=inputs,
                noise=noise,
                observations=tuple(
                    Observation(state=s, images=i, prompt=p)
                    for s, i, p in zip(states, images, prompts, strict=True)
                ),
                description={
                    "case": index,
                    "seed": seed,
                    "batch": batch,
                    "prompts": list(inputs.prompts),
                    "image_sizes": sizes,
                    "missing_cameras": missing,
                    "valid_tokens": [int(n) for n in inputs.token_masks.sum(axis=1)],
                },
            )
        )
    return cases


# ----------------------------------------------------------------------------------------------
# The gate
# ----------------------------------------------------------------------------------------------


def _to_torch(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(np.ascontiguousarray(array))


def _torch_outputs(
    module: Any, names: Sequence[str], feeds: Mapping[str, np.ndarray], output_names: Sequence[str]
) -> dict[str, np.ndarray]:
    import torch

    with torch.no_grad():
        out = module(*[_to_torch(feeds[n]) for n in names])
    if isinstance(out, torch.Tensor):
        out = (out,)
    if len(out) != len(output_names):
        raise RuntimeError(
            f"reference returned {len(out)} outputs, the graph declares {len(output_names)}"
        )
    return {
        n: t.detach().float().numpy() if t.is_floating_point() else t.numpy()
        for n, t in zip(output_names, out, strict=True)
    }


def _reference_pool(policy: Any, case: ParityCase, graphs: Sequence[Any]) -> dict[str, np.ndarray]:
    """Every array a graph may take, for one case."""
    inputs = case.inputs
    pool: dict[str, np.ndarray] = {**inputs.feeds(), "noise": case.noise}
    needed = {n for g in graphs for n in g.torch_inputs} | {
        i.name for g in graphs for i in g.inputs
    }
    if needed - set(pool):
        pool.update(_prefix_reference(policy, pool))
        rng = np.random.default_rng([*case.seed, 1])
        batch = inputs.batch_size
        # A point on the way from noise to actions, at a random flow time.
        pool["x_t"] = rng.standard_normal(case.noise.shape).astype(np.float32)
        pool["t"] = rng.uniform(0.05, 1.0, size=(batch,)).astype(np.float32)
    return pool


def _prefix_reference(policy: Any, pool: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The family's torch prefix on the case's observation inputs."""
    flow = policy.graphs
    return _torch_outputs(flow.prefix, flow.prefix_inputs, pool, flow.prefix_outputs)


def library_versions() -> dict[str, str | None]:
    from importlib import metadata

    import reflex_core

    versions: dict[str, str | None] = {
        "reflex": reflex_core.__version__,
        "python": platform.python_version(),
    }
    for dist in (
        "torch",
        "onnx",
        "onnxscript",
        "onnx-ir",
        "onnxruntime",
        "onnxruntime-gpu",
        "transformers",
        "numpy",
        "tokenizers",
    ):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            if dist != "onnxruntime-gpu":
                versions[dist] = None
    return versions


def _cpu_plan() -> Any:
    import onnxruntime as ort

    from reflex_core.runtime.providers import choose_providers

    return choose_providers(ort.get_available_providers(), ["cpu"])


@attrs.frozen(eq=False)
class TorchReferences:
    """Everything the gate needs from PyTorch, as numpy arrays.

    Computed before any onnxruntime session opens, so the caller can release the torch model
    first: the model and onnxruntime's copy of the graphs never share the process (issue 3:
    an export needs about 2x the model's size, not 2x plus the sessions).

    :ivar cases: the seeded cases.
    :ivar feeds: per case, every array a graph may take (the prefix graph's outputs, computed
        by torch, feed the expert on both sides).
    :ivar graph_outputs: graph name -> per case -> output name -> the reference's output.
    :ivar actions: per case, ``model.sample_actions`` on the case's inputs and noise.
    :ivar actions_robot: the same in robot units (the checkpoint's own action statistics).
    :ivar features: per case, the reference prefix's pooled features (None without them).
    :ivar started: ``time.perf_counter()`` when the gate started (the report's ``seconds``).
    """

    cases: list[ParityCase]
    feeds: list[dict[str, np.ndarray]]
    graph_outputs: dict[str, list[dict[str, np.ndarray]]]
    actions: list[np.ndarray]
    actions_robot: list[np.ndarray]
    features: list[np.ndarray | None]
    num_steps: int
    started: float


def _share_equal(outputs: dict[str, np.ndarray], feeds: Mapping[str, np.ndarray]) -> None:
    """Point outputs equal to a feed at the feed's array: the prefix reference recomputes the
    KV cache already in the feeds, and for a real model that is tens of MB per case."""
    for name, array in outputs.items():
        feed = feeds.get(name)
        if feed is not None and feed.shape == array.shape and np.array_equal(feed, array):
            outputs[name] = feed


def compute_references(
    policy: Any,
    artifact_dir: Path,
    graphs: Sequence[Any],
    settings: ParitySettings,
    *,
    num_steps: int,
    progress: Progress = SILENT,
) -> TorchReferences:
    """The torch half of the gate: cases and every reference output, with no ORT session open.

    :param graphs: the exporter's :class:`reflex_core.export.exporters.ExportedGraph` list (their
        ``reference`` modules are run here and not needed afterwards).
    """
    import torch

    from reflex_core.artifact import Artifact
    from reflex_core.runtime.tokenizer import PromptTokenizer

    started = time.perf_counter()
    artifact = Artifact.load(artifact_dir, verify=False)
    tokenizer = PromptTokenizer.for_artifact(artifact)
    with progress.step(f"parity: building {settings.cases} seeded cases"):
        cases = make_cases(policy, tokenizer, settings)
        feeds = [_reference_pool(policy, case, graphs) for case in cases]
    graph_outputs: dict[str, list[dict[str, np.ndarray]]] = {}
    actions: list[np.ndarray] = []
    features: list[np.ndarray | None] = []
    with progress.step(f"parity: torch references on {len(cases)} cases"):
        for graph in graphs:
            output_names = [o.name for o in graph.outputs]
            per_case = []
            for pool in feeds:
                expected = _torch_outputs(graph.reference, graph.torch_inputs, pool, output_names)
                _share_equal(expected, pool)
                per_case.append(expected)
            graph_outputs[graph.name] = per_case
        has_features = "features" in policy.graphs.prefix_outputs
        for case, pool in zip(cases, feeds, strict=True):
            observation = {n: _to_torch(pool[n]) for n in OBSERVATION_INPUTS}
            with torch.no_grad():
                actions.append(
                    policy.graphs.sample_actions(observation, _to_torch(case.noise), num_steps)
                    .float()
                    .numpy()
                )
            pooled = pool.get("features")
            if pooled is None and has_features:
                pooled = _prefix_reference(policy, pool)["features"]
            features.append(pooled)
    from reflex_core.runtime.preprocess import unnormalize_actions

    action_stats = (policy.normalization or {}).get("action")
    return TorchReferences(
        cases=cases,
        feeds=feeds,
        graph_outputs=graph_outputs,
        actions=actions,
        actions_robot=[
            unnormalize_actions(a, int(policy.action_dim), action_stats) for a in actions
        ],
        features=features,
        num_steps=num_steps,
        started=started,
    )


def compare_with_onnx(
    references: TorchReferences,
    artifact_dir: Path,
    graphs: Sequence[Any],
    settings: ParitySettings,
    *,
    precision: str = "fp32",
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """The onnxruntime half of the gate: run the artifact's graphs on the stored feeds.

    Needs no torch: ``graphs`` may have their ``reference`` released.

    :returns: the parity report (``passed``, ``worst``, per-graph and end-to-end results).
    """
    from reflex_core.artifact import Artifact
    from reflex_core.runtime.policy import load_policy
    from reflex_core.runtime.sessions import open_session

    cases, feeds = references.cases, references.feeds
    num_steps = references.num_steps
    artifact = Artifact.load(artifact_dir, verify=False)
    # The runtime's own sessions (what `reflex serve` opens) serve both the per-graph checks
    # and the end-to-end one: each graph is loaded once. Without the CPU memory arena: the
    # cases' different batch sizes would leave it ~1 GB above their need at real size, and
    # the allocator changes no output.
    with progress.step("parity: opening the runtime's sessions"):
        runtime = load_policy(
            artifact,
            verify=False,
            providers=["cpu"],
            threads=settings.threads,
            memory_arena=False,
        )
    runner_sessions = runtime.runner.sessions
    plan = _cpu_plan()
    results: dict[str, dict[str, Any]] = {}

    for graph in graphs:
        per_case = []
        with progress.step(f"parity: {graph.name} on {len(cases)} cases"):
            session = runner_sessions.get(graph.name)
            if session is None:  # a graph the runtime does not run itself
                session, _ = open_session(
                    artifact_dir / graph.file,
                    plan,
                    role=graph.name,
                    threads=settings.threads,
                    memory_arena=False,
                )
            session_inputs = [i.name for i in session.get_inputs()]
            output_names = [o.name for o in graph.outputs]
            for case, pool, expected in zip(
                cases, feeds, references.graph_outputs[graph.name], strict=True
            ):
                actual = dict(
                    zip(
                        output_names,
                        session.run(output_names, {n: pool[n] for n in session_inputs}),
                        strict=True,
                    )
                )
                outputs = {
                    name: judge(name, compare_arrays(expected[name], actual[name]), settings)
                    for name in output_names
                }
                per_case.append(summarize(case.index, outputs))
            del session
        results[graph.name] = {
            "file": graph.file,
            "passed": all(c["passed"] for c in per_case),
            "cases": per_case,
        }
        _note_worst(progress, graph.name, per_case)

    per_case = []
    runner_name = type(runtime.runner).__name__
    with progress.step(
        f"parity: end to end ({runner_name}, {num_steps} steps) on {len(cases)} cases"
    ):
        for i, case in enumerate(cases):
            run = runtime.runner.run(case.inputs, case.noise)
            outputs = {
                "actions": judge(
                    "actions", compare_arrays(references.actions[i], run.actions), settings
                )
            }
            if run.features is not None and references.features[i] is not None:
                outputs["features"] = judge(
                    "features", compare_arrays(references.features[i], run.features), settings
                )
            if case.observations:
                served = runtime.infer(list(case.observations), case.noise)
                outputs["actions_robot"] = judge(
                    "actions_robot",
                    compare_arrays(references.actions_robot[i], served.actions),
                    settings,
                )
            per_case.append(summarize(case.index, outputs))
    del runtime, runner_sessions
    results[END_TO_END] = {
        "runner": runner_name,
        "num_steps": num_steps,
        "passed": all(c["passed"] for c in per_case),
        "cases": per_case,
    }
    _note_worst(progress, END_TO_END, per_case)

    worst = _worst(results)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "passed": all(r["passed"] for r in results.values()),
        "precision": precision,
        "thresholds": settings.to_dict(),
        "seed": settings.seed,
        "seeds": [c.seed for c in cases],
        "cases": [c.description for c in cases],
        "providers": list(plan.providers),
        "graphs": {k: v for k, v in results.items() if k != END_TO_END},
        "end_to_end": results[END_TO_END],
        "worst": worst,
        "versions": library_versions(),
        "seconds": round(time.perf_counter() - references.started, 3),
    }


def run_parity(
    policy: Any,
    artifact_dir: Path,
    graphs: Sequence[Any],
    settings: ParitySettings,
    *,
    num_steps: int,
    precision: str = "fp32",
    progress: Progress = SILENT,
) -> dict[str, Any]:
    """Run the whole gate over an artifact directory whose manifest is written (parity pending).

    The caller keeps ``policy``, so the model stays in memory while the sessions run; the export
    pipeline calls :func:`compute_references` and :func:`compare_with_onnx` itself and releases
    the model in between.

    :param graphs: the exporter's :class:`reflex_core.export.exporters.ExportedGraph` list.
    :returns: the parity report (``passed``, ``worst``, per-graph and end-to-end results).
    """
    references = compute_references(
        policy, artifact_dir, graphs, settings, num_steps=num_steps, progress=progress
    )
    return compare_with_onnx(
        references, artifact_dir, graphs, settings, precision=precision, progress=progress
    )


def _worst(results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The (graph, case, output) furthest from its threshold."""
    best: dict[str, Any] | None = None
    for graph, result in results.items():
        for case in result["cases"]:
            output = case["worst_output"]
            metrics = case["outputs"][output]
            if best is None or metrics["score"] > best["score"]:
                best = {
                    "graph": graph,
                    "case": case["case"],
                    "output": output,
                    "max_abs_error": metrics["max_abs_error"],
                    "max_rel_error": metrics["max_rel_error"],
                    "cosine": metrics["cosine"],
                    "allowed_abs": metrics["allowed_abs"],
                    "score": metrics["score"],
                    "passed": metrics["passed"],
                }
    assert best is not None
    return best


def _note_worst(progress: Progress, name: str, per_case: Sequence[Mapping[str, Any]]) -> None:
    worst = max(per_case, key=lambda c: c["outputs"][c["worst_output"]]["score"])
    status = "ok" if all(c["passed"] for c in per_case) else "FAILED"
    progress.note(
        f"{name}: {status}; worst case {worst['case']} output {worst['worst_output']}: "
        f"max abs {worst['max_abs_error']:.3g}, max rel {worst['max_rel_error']:.3g}, "
        f"cos {worst['cosine']:.9f}"
    )
