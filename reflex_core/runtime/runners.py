"""Runners: turn graph inputs plus noise into a normalized action chunk.

- :class:`MonolithicRunner` runs one ``policy`` graph (the Euler loop is inside it).
- :class:`DecomposedRunner` runs ``vlm_prefix`` once, then ``expert_denoise`` N times in an
  Euler loop here over the artifact's flow schedule: ``t_k = t_start + k dt``,
  ``dt = (t_end - t_start) / N``, ``x <- x + dt v(x, t_k)`` (e.g. from t=1 to t=0). The prefix
  outputs (per-layer KV) stay in the OrtValues onnxruntime produced and are bound once per call
  with IOBinding, so no step copies the KV (on a GPU they never leave the device). Optionally it
  stops early once the velocity stops changing (``adaptive_steps``) and reuses prefix outputs for
  bit-identical observations (:class:`PrefixCache`).

Runners see only numpy arrays and sessions; preprocessing and units live in
:mod:`reflex_core.runtime.preprocess` and :mod:`reflex_core.runtime.policy`.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import numpy as np
import onnxruntime as ort

from reflex_core.errors import ArtifactError
from reflex_core.runtime.io_spec import FlowIO
from reflex_core.runtime.prefix_cache import PrefixCache, prefix_key
from reflex_core.runtime.preprocess import ModelInputs
from reflex_core.runtime.sessions import declared_feeds, device_of, input_names, output_names

#: Expert inputs the runner produces itself; every other expert input must be a prefix output.
EXPERT_OWN_INPUTS = ("x_t", "t", "state")
KV_FEEDS = ("iobinding", "numpy")


def _ms(start_ns: int) -> float:
    return (time.perf_counter_ns() - start_ns) / 1e6


@attrs.frozen(eq=False)
class RunResult:
    """One runner call.

    :ivar actions: float32 (B, T, max_action_dim), normalized model units.
    :ivar features: float32 (B, F) pooled prefix features, or None if the graph has none.
    :ivar model_ms: wall time of all graph calls.
    :ivar prefix_ms: the prefix graph, or the cache lookup on a hit (None for a monolithic graph).
    :ivar expert_ms: all expert steps together (None for a monolithic graph).
    :ivar steps: denoising steps actually run.
    :ivar prefix_cache_hit: True / False with a prefix cache, None without one.
    """

    actions: np.ndarray
    features: np.ndarray | None
    model_ms: float
    prefix_ms: float | None
    expert_ms: float | None
    steps: int
    prefix_cache_hit: bool | None = None


def _outputs_with(session: Any, name: str, graph: str) -> list[str]:
    """The session's output names, refused (``artifact-graph-io``) without ``name``."""
    outputs = output_names(session)
    if name not in outputs:
        raise ArtifactError(
            f"the {graph} graph has no {name!r} output (outputs: {list(outputs)})",
            slug="artifact-graph-io",
        )
    return list(outputs)


class MonolithicRunner:
    """One graph: ``images, image_masks, tokens, token_masks, state, noise -> actions, features``."""

    mode = "monolithic"

    def __init__(self, session: Any, *, num_steps: int) -> None:
        self.session = session
        self.num_steps = int(num_steps)
        self._inputs = input_names(session)
        outputs = _outputs_with(session, "actions", "policy")
        self._outputs = ["actions"] + (["features"] if "features" in outputs else [])

    @property
    def sessions(self) -> dict[str, Any]:
        return {"policy": self.session}

    def run(self, inputs: ModelInputs, noise: np.ndarray) -> RunResult:
        feeds = {**inputs.feeds(), "noise": noise}
        start = time.perf_counter_ns()
        out = self.session.run(self._outputs, declared_feeds(self._inputs, feeds))
        elapsed = _ms(start)
        return RunResult(
            actions=out[0],
            features=out[1] if len(out) > 1 else None,
            model_ms=elapsed,
            prefix_ms=None,
            expert_ms=None,
            steps=self.num_steps,
        )


@attrs.frozen(eq=False)
class PrefixOutputs:
    """What the prefix graph produced for one batch.

    :ivar values: output name -> OrtValue (IOBinding) or numpy array, exactly as onnxruntime
        returned them; never copied afterwards.
    :ivar features: numpy (B, F) or None.
    """

    values: Mapping[str, Any]
    features: np.ndarray | None


class DecomposedRunner:
    """``vlm_prefix`` once, then the Euler loop over ``expert_denoise``.

    :param num_steps: N, the schedule the policy was trained and exported with.
    :param flow: the artifact's flow schedule (from ``t_start`` to ``t_end``).
    :param adaptive_steps: relative velocity-change tolerance; when set, stop after step k once
        ``max_b ||v_k - v_{k-1}|| / ||v_k|| < tol`` and finish with ``x += (t_end - t_k) v_k``
        (the last velocity over the remaining time). None runs all N steps.
    :param prefix_cache: reuse prefix outputs for bit-identical prefix inputs.
    :param kv_feed: ``"iobinding"`` binds the prefix OrtValues to the expert once per call
        (device-resident on a GPU); ``"numpy"`` passes the numpy arrays ``run()`` returned
        (zero-copy on the CPU). The benchmark compares them.
    """

    mode = "decomposed"

    def __init__(
        self,
        prefix_session: Any,
        expert_session: Any,
        *,
        num_steps: int,
        flow: FlowIO = FlowIO(),
        adaptive_steps: float | None = None,
        prefix_cache: PrefixCache | None = None,
        kv_feed: str = "iobinding",
    ) -> None:
        if num_steps < 1:
            raise ArtifactError(f"num_steps must be >= 1, got {num_steps}", slug="artifact-schema")
        if adaptive_steps is not None and not adaptive_steps > 0:
            raise ValueError("adaptive_steps must be a positive tolerance")
        if kv_feed not in KV_FEEDS:
            raise ValueError(f"kv_feed must be one of {KV_FEEDS}")
        self.prefix_session = prefix_session
        self.expert_session = expert_session
        self.num_steps = int(num_steps)
        self.flow = flow
        self.adaptive_steps = adaptive_steps
        self.prefix_cache = prefix_cache
        self.kv_feed = kv_feed
        self._prefix_inputs = input_names(prefix_session)
        self._prefix_outputs = output_names(prefix_session)
        self._expert_inputs = input_names(expert_session)
        _outputs_with(expert_session, "velocity", "expert")
        self._kv_names = tuple(n for n in self._expert_inputs if n not in EXPERT_OWN_INPUTS)
        missing = [n for n in self._kv_names if n not in self._prefix_outputs]
        if missing or "x_t" not in self._expert_inputs:
            raise ArtifactError(
                f"the expert graph needs {missing or ['x_t']} which the prefix graph does not "
                f"produce (prefix outputs: {list(self._prefix_outputs)})",
                slug="artifact-graph-io",
            )
        self._device = device_of(expert_session.get_providers())

    @property
    def sessions(self) -> dict[str, Any]:
        return {"vlm_prefix": self.prefix_session, "expert_denoise": self.expert_session}

    # -- prefix ---------------------------------------------------------------------------

    def prefix(self, inputs: ModelInputs) -> PrefixOutputs:
        """Run the prefix graph (no cache)."""
        feeds = declared_feeds(self._prefix_inputs, inputs.feeds())
        if self.kv_feed == "numpy":
            arrays = self.prefix_session.run(list(self._prefix_outputs), feeds)
            values = dict(zip(self._prefix_outputs, arrays, strict=True))
            features = values.get("features")
            return PrefixOutputs(values, features)
        binding = self.prefix_session.io_binding()
        for name, arr in feeds.items():
            binding.bind_cpu_input(name, np.ascontiguousarray(arr))
        for name in self._prefix_outputs:
            # features go back to the host for the caller; everything else stays where it is
            binding.bind_output(name, "cpu" if name == "features" else self._device)
        self.prefix_session.run_with_iobinding(binding)
        values = dict(zip(self._prefix_outputs, binding.get_outputs(), strict=True))
        features = values["features"].numpy() if "features" in values else None
        return PrefixOutputs(values, features)

    def cached_prefix(self, inputs: ModelInputs) -> tuple[PrefixOutputs, bool | None]:
        """The prefix outputs and whether they came from the cache (None: no cache)."""
        if self.prefix_cache is None:
            return self.prefix(inputs), None
        key = prefix_key(declared_feeds(self._prefix_inputs, inputs.feeds()))
        hit = self.prefix_cache.get(key)
        if hit is not None:
            return hit, True
        out = self.prefix(inputs)
        for value in [*out.values.values(), out.features]:
            if isinstance(value, np.ndarray):
                value.flags.writeable = False  # shared by every later hit
        self.prefix_cache.put(key, out)
        return out, False

    # -- expert ---------------------------------------------------------------------------

    def stepper(
        self, prefix: PrefixOutputs, state: np.ndarray
    ) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
        """A function ``(x, t) -> velocity`` with the KV bound once."""
        session = self.expert_session
        wants_state = "state" in self._expert_inputs
        wants_t = "t" in self._expert_inputs
        if self.kv_feed == "numpy":
            base = {n: prefix.values[n] for n in self._kv_names}
            if wants_state:
                base["state"] = state

            def step_numpy(x: np.ndarray, t: np.ndarray) -> np.ndarray:
                feeds = dict(base)
                feeds["x_t"] = x
                if wants_t:
                    feeds["t"] = t
                return session.run(["velocity"], feeds)[0]

            return step_numpy

        binding = session.io_binding()
        for name in self._kv_names:
            value = prefix.values[name]
            if isinstance(value, np.ndarray):
                binding.bind_cpu_input(name, value)
            else:
                binding.bind_ortvalue_input(name, value)
        if wants_state:
            binding.bind_cpu_input("state", np.ascontiguousarray(state, dtype=np.float32))

        # x_t, t and velocity live in host buffers bound once (on the first step, when the
        # batch shape is known); a step only copies x and t in and the velocity out, with no
        # rebinding and no allocation inside onnxruntime (~50 us per step on a CPU).
        buffers: dict[str, np.ndarray] = {}

        def step_bound(x: np.ndarray, t: np.ndarray) -> np.ndarray:
            if not buffers:
                buffers["x"] = np.empty(x.shape, np.float32)
                buffers["t"] = np.empty(t.shape, np.float32)
                buffers["v"] = np.empty(x.shape, np.float32)  # velocity has x_t's shape
                binding.bind_ortvalue_input("x_t", ort.OrtValue.ortvalue_from_numpy(buffers["x"]))
                if wants_t:
                    binding.bind_ortvalue_input("t", ort.OrtValue.ortvalue_from_numpy(buffers["t"]))
                binding.bind_ortvalue_output(
                    "velocity", ort.OrtValue.ortvalue_from_numpy(buffers["v"])
                )
            np.copyto(buffers["x"], x)
            np.copyto(buffers["t"], t)
            session.run_with_iobinding(binding)
            return buffers["v"].copy()

        return step_bound

    def denoise(
        self, prefix: PrefixOutputs, state: np.ndarray, noise: np.ndarray
    ) -> tuple[np.ndarray, int]:
        """The Euler loop from ``t_start`` (noise) to ``t_end`` (actions).

        :returns: (actions float32 (B, T, A), steps run).
        """
        step = self.stepper(prefix, state)
        n = self.num_steps
        dt = self.flow.dt(n)
        x = np.ascontiguousarray(noise, dtype=np.float32)
        batch = x.shape[0]
        prev_v: np.ndarray | None = None
        for k, t_k in enumerate(self.flow.times(n)):
            t = np.full((batch,), t_k, dtype=np.float32)
            v = step(x, t)
            if self.adaptive_steps is not None and prev_v is not None and k < n - 1:
                if _relative_change(v, prev_v) < self.adaptive_steps:
                    # finish with the last velocity over the remaining time [t_k -> t_end]
                    return x + np.float32(self.flow.t_end - t_k) * v, k + 1
            x = x + np.float32(dt) * v
            prev_v = v
        return x, n

    def run(self, inputs: ModelInputs, noise: np.ndarray) -> RunResult:
        start = time.perf_counter_ns()
        prefix, hit = self.cached_prefix(inputs)
        prefix_ms = _ms(start)  # on a hit: the hash and lookup only
        expert_start = time.perf_counter_ns()
        actions, steps = self.denoise(prefix, inputs.state, noise)
        expert_ms = _ms(expert_start)
        return RunResult(
            actions=actions,
            # a copy: the prefix outputs may be cached and shared with later calls
            features=None if prefix.features is None else np.array(prefix.features),
            model_ms=_ms(start),
            prefix_ms=prefix_ms,
            expert_ms=expert_ms,
            steps=steps,
            prefix_cache_hit=hit,
        )


def _relative_change(v: np.ndarray, prev: np.ndarray) -> float:
    """``max_b ||v_b - prev_b|| / ||v_b||`` over each batch item's whole chunk."""
    b = v.shape[0]
    diff = np.linalg.norm((v - prev).reshape(b, -1), axis=1)
    norm = np.linalg.norm(v.reshape(b, -1), axis=1)
    rel = np.where(norm > 0, diff / np.maximum(norm, 1e-30), np.where(diff > 0, np.inf, 0.0))
    return float(rel.max()) if b else 0.0
