"""A loaded, verified artifact ready to act: :func:`load_policy` -> :class:`Policy`.

``Policy.infer`` takes parsed observations (robot units) and returns action chunks (robot
units): validate -> preprocess (:mod:`~reflex_core.runtime.preprocess`) -> runner (ORT) ->
unnormalize -> truncate to the robot's action_dim -> gripper block. No torch anywhere.

Units. The state is normalized with the artifact's statistics (the checkpoint's own), else the
embodiment's mean/std, else not at all; actions are unnormalized the same way. Without an
embodiment there is no robot to map onto: the gripper block is skipped and
``info["raw_actions"]`` is True (the server says so in /health).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from reflex_core.embodiments.color import CameraColors
from reflex_core.errors import ArtifactError, ConfigError, ValidationError
from reflex_core.runtime.prefix_cache import PrefixCache
from reflex_core.runtime.preprocess import (
    NormStats,
    check_image,
    match_cameras,
    prepare_inputs,
    unnormalize_actions,
)
from reflex_core.runtime.providers import choose_providers
from reflex_core.runtime.runners import DecomposedRunner, MonolithicRunner, RunResult
from reflex_core.runtime.sessions import SessionFactory, open_session
from reflex_core.runtime.tokenizer import PromptTokenizer
from reflex_core.wire.types import Observation

log = logging.getLogger(__name__)


@attrs.frozen(eq=False)
class PolicyOutput:
    """One batched inference.

    :ivar actions: float32 (B, chunk_size, action_dim) in robot units (see the module doc).
    :ivar features: float32 (B, feature_dim) pooled prefix features, or None.
    :ivar timings: ``preprocess_ms``, ``prefix_ms``, ``expert_ms`` (None for a monolithic
        graph), ``model_ms``, ``postprocess_ms``, ``total_ms``, ``steps``, ``batch_size``,
        ``prefix_cache`` ("hit" / "miss" / None).
    """

    actions: np.ndarray
    features: np.ndarray | None
    timings: dict[str, Any]


@attrs.frozen(eq=False)
class CheckedObservation:
    """An observation one policy's :meth:`Policy.validate` accepted: its images in that
    policy's camera order (None for a camera it lacks). :meth:`Policy.infer` runs it without
    checking again; another policy checks it afresh."""

    observation: Observation
    images: tuple[np.ndarray | None, ...]
    policy: Policy


NoiseArg = np.ndarray | Sequence[np.ndarray | None] | None


def _stats_source(
    artifact_stats: dict[str, Any] | None, mean: np.ndarray | None, std: np.ndarray | None
) -> tuple[NormStats | None, str]:
    if artifact_stats is not None:
        stats = NormStats.from_dict(artifact_stats)
        return stats, "artifact" if stats is not None and stats.mode != "IDENTITY" else "none"
    if mean is not None and std is not None:
        return NormStats.mean_std(mean, std), "embodiment"
    return None, "none"


class Policy:
    """An artifact's graphs in onnxruntime sessions plus everything around them.

    Build with :func:`load_policy`. Thread-safe: the server calls :meth:`infer` from a pool.
    """

    def __init__(
        self,
        *,
        artifact: Any,
        runner: MonolithicRunner | DecomposedRunner,
        tokenizer: PromptTokenizer,
        slot: str = "default",
        embodiment: Any = None,
        warnings: Sequence[str] = (),
        seed: int | None = None,
    ) -> None:
        self.slot = slot
        self.artifact = artifact
        self.runner = runner
        self.tokenizer = tokenizer
        self.embodiment = embodiment
        self.warnings = list(warnings)
        self._rng = np.random.default_rng(seed)
        self._rng_lock = threading.Lock()
        self.action_dim = int(artifact.action_dim)
        self.chunk_size = int(artifact.chunk_size)
        self.max_action_dim = int(artifact.max_action_dim)
        self.max_state_dim = int(artifact.max_state_dim)
        self.io = artifact.io
        self.camera_names: list[str] = list(artifact.cameras)
        # cameras[].color_space: frames converted to RGB once checked (refused at load when it
        # names a camera this policy does not have)
        self.colors = CameraColors.for_policy(embodiment, self.camera_names)
        self.image_size = (int(artifact.image.height), int(artifact.image.width))
        self.state_dim = int(embodiment.state_dim if embodiment is not None else artifact.state_dim)
        norm = artifact.normalization
        emb_norm = embodiment.normalization if embodiment is not None else None
        self.state_stats, state_src = _stats_source(
            norm.get("state"),
            None if emb_norm is None else emb_norm.mean_state,
            None if emb_norm is None else emb_norm.std_state,
        )
        self.action_stats, action_src = _stats_source(
            norm.get("action"),
            None if emb_norm is None else emb_norm.mean_action,
            None if emb_norm is None else emb_norm.std_action,
        )
        self._check_compatibility()
        self.info: dict[str, Any] = {
            "slot": slot,
            "family": artifact.family,
            "model": artifact.model.get("name"),
            "mode": artifact.mode,
            "precision": artifact.precision,
            "model_version": artifact.config_sha256[:12],
            "chunk_size": self.chunk_size,
            "action_dim": self.action_dim,
            "state_dim": self.state_dim,
            "num_steps": int(artifact.num_steps),
            "adaptive_steps": getattr(runner, "adaptive_steps", None),
            "prefix_cache_size": (
                runner.prefix_cache.max_entries
                if isinstance(runner, DecomposedRunner) and runner.prefix_cache is not None
                else 0
            ),
            "cameras": list(self.camera_names),
            "providers": {name: list(s.get_providers()) for name, s in runner.sessions.items()},
            "embodiment": None if embodiment is None else embodiment.name,
            "raw_actions": embodiment is None,
            "state_normalization": state_src,
            "action_normalization": action_src,
            "warnings": list(self.warnings),
        }

    # -- load-time checks -------------------------------------------------------------------

    def _check_compatibility(self) -> None:
        a, e = self.artifact, self.embodiment
        if e is not None:
            if int(e.action_dim) != self.action_dim:
                raise ConfigError(
                    f"embodiment {e.name!r} has action_dim {e.action_dim} but the artifact's "
                    f"model outputs {self.action_dim} action dims; export the model for this "
                    "robot (reflex export --embodiment ...) or pick the matching embodiment",
                    slug="embodiment-mismatch",
                    field="embodiment",
                    details={
                        "embodiment_action_dim": e.action_dim,
                        "artifact_action_dim": self.action_dim,
                    },
                )
            if self.state_dim > self.max_state_dim:
                raise ConfigError(
                    f"embodiment {e.name!r} has state_dim {self.state_dim} but the model takes at "
                    f"most {self.max_state_dim} state values",
                    slug="embodiment-mismatch",
                    field="embodiment",
                )
            if e.control.chunk_size != self.chunk_size:
                self.warnings.append(
                    f"embodiment control.chunk_size {e.control.chunk_size} differs from the "
                    f"model's chunk_size {self.chunk_size}; chunks have {self.chunk_size} steps"
                )
        if self.state_stats is not None and self.state_stats.dim not in (None, self.state_dim):
            raise ConfigError(
                f"the state normalization statistics have {self.state_stats.dim} values but the "
                f"policy expects a state of {self.state_dim}"
                + (f" (embodiment {e.name!r})" if e is not None else ""),
                slug="embodiment-mismatch",
                field="embodiment",
            )
        if self.action_stats is not None and self.action_stats.dim not in (None, self.action_dim):
            raise ArtifactError(
                f"the action normalization statistics have {self.action_stats.dim} values but "
                f"the model has action_dim {self.action_dim}",
                slug="artifact-schema",
            )
        if self.action_dim > self.max_action_dim or a.state_dim > self.max_state_dim:
            raise ArtifactError(
                "artifact dims exceed the model's padded dims", slug="artifact-schema"
            )
        for w in self.warnings:
            log.warning("policy %s: %s", self.slot, w)

    # -- request path -----------------------------------------------------------------------

    def validate(self, observation: Observation) -> CheckedObservation:
        """Check one observation against this policy, once: what :meth:`infer` then trusts.

        What holds for every observation (a finite float32 state, decoded images) is the
        :class:`~reflex_core.wire.types.Observation`'s own check when it is built; this is
        what depends on the policy. The server calls it at its boundary (``prepare``) and hands
        the result to :meth:`infer`, which does not check it again.

        :returns: the observation with its images in this policy's camera order.
        :raises ValidationError: ``state-length-mismatch``, ``unknown-camera``,
            ``conflicting-fields`` (the ``image`` shorthand and the camera it stands for both
            given), ``image-invalid`` (an image array that is not (H, W, 3); only a library
            caller can send one, the wire parser decodes to RGB) — all 422.
        """
        state = observation.state
        if state.ndim != 1 or state.shape[0] != self.state_dim:
            raise ValidationError(
                f"state has {state.size} values; "
                + (
                    f"embodiment {self.embodiment.name!r}"
                    if self.embodiment is not None
                    else "this policy"
                )
                + f" expects {self.state_dim}",
                slug="state-length-mismatch",
                field="state",
                details={"expected": self.state_dim, "got": int(state.size)},
            )
        images = match_cameras(observation.images, self.camera_names)
        for name, image in zip(self.camera_names, images, strict=True):
            if image is not None:
                check_image(name, image)
        if self.colors:
            images = self.colors.convert_ordered(self.camera_names, images)
        return CheckedObservation(observation, tuple(images), self)

    def _checked(self, item: Observation | CheckedObservation) -> CheckedObservation:
        # Trust only what this very policy checked: another slot (the router's B) may have
        # other cameras or another state length, and checks again.
        if isinstance(item, CheckedObservation):
            return item if item.policy is self else self.validate(item.observation)
        return self.validate(item)

    def draw_noise(self, batch: int) -> np.ndarray:
        """(batch, chunk_size, max_action_dim) standard normal from this policy's generator
        (seeded by ``load_policy(seed=...)``); rows are drawn in order, so B rows drawn at once
        are the rows B calls of one would draw."""
        with self._rng_lock:
            return self._rng.standard_normal(
                (batch, self.chunk_size, self.max_action_dim), dtype=np.float32
            )

    def _noise(self, batch: int, noise: NoiseArg) -> np.ndarray:
        if noise is None:
            return self.draw_noise(batch)
        shape = (self.chunk_size, self.max_action_dim)
        if isinstance(noise, np.ndarray):
            arr = np.asarray(noise, dtype=np.float32)
            if arr.shape != (batch, *shape):
                raise ValidationError(
                    f"noise must have shape {(batch, *shape)}, got {arr.shape}",
                    slug="noise-shape-mismatch",
                    field="noise",
                )
            return np.ascontiguousarray(arr)
        rows = list(noise)
        if len(rows) != batch:
            raise ValidationError(
                f"noise has {len(rows)} rows for {batch} observations",
                slug="noise-shape-mismatch",
                field="noise",
            )
        # rows without noise of their own draw from the generator, in order, exactly as the
        # same requests one at a time would: a mixed batch is no different from unbatched calls
        missing = [i for i, row in enumerate(rows) if row is None]
        drawn = self.draw_noise(len(missing)) if missing else None
        out = np.empty((batch, *shape), dtype=np.float32)
        for i, row in enumerate(rows):
            if row is None:
                continue
            arr = np.asarray(row, dtype=np.float32)
            if arr.shape != shape:
                raise ValidationError(
                    f"noise[{i}] must have shape {shape}, got {arr.shape}",
                    slug="noise-shape-mismatch",
                    field=f"noise[{i}]",
                )
            out[i] = arr
        if drawn is not None:
            out[missing] = drawn
        return out

    def infer(
        self,
        observations: Sequence[Observation | CheckedObservation] | Observation,
        noise: NoiseArg = None,
    ) -> PolicyOutput:
        """Run a batch.

        :param observations: one or more observations (batched into one graph call). A
            :class:`CheckedObservation` this policy's :meth:`validate` returned is trusted
            as it is (the server's path); a plain ``Observation`` is validated first (a
            library caller's).
        :param noise: the flow-matching noise: an array (B, chunk_size, max_action_dim), or
            one (chunk_size, max_action_dim) row or None per observation; None rows (or
            ``noise=None``) are drawn from this policy's generator (:meth:`draw_noise`).
        :raises ValidationError: see :meth:`validate`, and ``noise-shape-mismatch``.
        """
        items = [observations] if isinstance(observations, Observation) else list(observations)
        if not items:
            raise ValueError("infer needs at least one observation")
        start = time.perf_counter_ns()
        checked = [self._checked(o) for o in items]
        eps = self._noise(len(checked), noise)
        inputs = prepare_inputs(
            images=[c.images for c in checked],
            states=[c.observation.state for c in checked],
            prompts=[c.observation.prompt for c in checked],
            io=self.io,
            max_state_dim=self.max_state_dim,
            state_stats=self.state_stats,
            tokenizer=self.tokenizer,
        )
        preprocess_ms = (time.perf_counter_ns() - start) / 1e6
        result = self.runner.run(inputs, eps)
        post_start = time.perf_counter_ns()
        actions = self.postprocess(result.actions)
        end = time.perf_counter_ns()
        return PolicyOutput(
            actions=actions,
            features=result.features,
            timings=self._timings(
                result, preprocess_ms, (end - post_start) / 1e6, (end - start) / 1e6, len(items)
            ),
        )

    def postprocess(self, model_actions: np.ndarray) -> np.ndarray:
        """(B, T, max_action_dim) model units -> (B, T, action_dim) robot units + gripper block."""
        actions = unnormalize_actions(model_actions, self.action_dim, self.action_stats)
        if self.embodiment is not None and self.embodiment.gripper is not None:
            from reflex_core.embodiments import apply_gripper

            actions = apply_gripper(actions, self.embodiment)
        return np.ascontiguousarray(actions, dtype=np.float32)

    @staticmethod
    def _timings(
        result: RunResult, preprocess_ms: float, postprocess_ms: float, total_ms: float, batch: int
    ) -> dict[str, Any]:
        hit = result.prefix_cache_hit
        return {
            "preprocess_ms": round(preprocess_ms, 3),
            "prefix_ms": None if result.prefix_ms is None else round(result.prefix_ms, 3),
            "expert_ms": None if result.expert_ms is None else round(result.expert_ms, 3),
            "model_ms": round(result.model_ms, 3),
            "postprocess_ms": round(postprocess_ms, 3),
            "total_ms": round(total_ms, 3),
            "steps": result.steps,
            "batch_size": batch,
            "prefix_cache": None if hit is None else ("hit" if hit else "miss"),
        }

    def dummy_observation(self) -> Observation:
        """A valid observation (zero state, mid-gray frames, empty task) for warm-up and checks."""
        h, w = self.image_size
        return Observation(
            state=np.zeros(self.state_dim, dtype=np.float32),
            images={name: np.full((h, w, 3), 128, dtype=np.uint8) for name in self.camera_names},
            prompt="",
        )

    def warmup(self) -> PolicyOutput:
        """One dummy batch through every graph (first runs allocate and pick kernels)."""
        return self.infer([self.dummy_observation()])

    @property
    def prefix_cache(self) -> PrefixCache | None:
        return self.runner.prefix_cache if isinstance(self.runner, DecomposedRunner) else None


def _resolve_embodiment(embodiment: Any) -> Any:
    if embodiment is None or not isinstance(embodiment, (str, Path)):
        return embodiment
    from reflex_core.embodiments import load_embodiment

    text = str(embodiment)
    if text.endswith(".json") or Path(text).is_file():
        return load_embodiment(path=text)
    return load_embodiment(name=text)


def load_policy(
    artifact_dir: str | Path | Any,
    *,
    slot: str = "default",
    embodiment: Any = None,
    providers: Sequence[str] | None = None,
    allow_cpu_fallback: bool = False,
    adaptive_steps: float | None = None,
    prefix_cache_size: int = 0,
    threads: int | None = None,
    seed: int | None = None,
    kv_feed: str = "iobinding",
    verify: bool = True,
    trusted_keys: str | Path | None = None,
    session_factory: SessionFactory | None = None,
    runtime_backends: Mapping[str, Any] | None = None,
    memory_arena: bool = True,
) -> Policy:
    """Load and verify an artifact and open its onnxruntime sessions.

    :param artifact_dir: the directory ``reflex export`` wrote (or an already loaded Artifact).
    :param embodiment: an EmbodimentConfig, a preset name, a JSON path, or None (raw actions).
    :param providers: ``--providers`` (names or aliases ``cuda``/``trt``/``cpu``); None picks
        TensorRT -> CUDA -> CPU from what this onnxruntime offers. A runtime backend a plugin
        registered (``openvino-bf16``) is named alone and runs every graph instead of onnxruntime.
    :param allow_cpu_fallback: accept the CPU when an asked-for GPU provider does not load.
    :param adaptive_steps: early-stop tolerance for the Euler loop (decomposed only).
    :param prefix_cache_size: entries of the exact-match prefix cache (decomposed only; 0 = off).
    :param threads: intra-op threads per session (default OMP_NUM_THREADS or the core count).
    :param seed: seed of the noise drawn when a request brings none.
    :param kv_feed: ``iobinding`` or ``numpy`` (how the KV reaches the expert; see runners).
    :param verify: check the manifest digest, hashes and the parity verdict (always on when
        serving).
    :param trusted_keys: a directory of ed25519 public keys; the artifact must be signed by
        one of them (``reflex serve --trusted-keys``).
    :param runtime_backends: name -> :class:`~reflex_core.plugin.registry.RuntimeBackend`; None reads
        the installed plugins' (only when ``providers`` names something onnxruntime does not know).
    :param memory_arena: onnxruntime's CPU memory arena (on: fastest for repeated calls; the
        parity gate turns it off, see :func:`~reflex_core.runtime.sessions.make_session_options`).
    :raises ArtifactError: missing / corrupted / unverified artifact, graphs not loadable.
    :raises ConfigError: provider or embodiment problems, options the mode does not support.
    """
    import onnxruntime as ort

    from reflex_core.artifact import Artifact

    artifact = (
        artifact_dir
        if isinstance(artifact_dir, Artifact)
        else Artifact.load(artifact_dir, verify=verify, trusted_keys=trusted_keys)
    )
    if isinstance(artifact_dir, Artifact) and trusted_keys is not None:
        artifact.require_signature(trusted_keys)
    emb = _resolve_embodiment(embodiment)
    backend, warnings = _runtime_backend(
        providers, runtime_backends, allow_cpu_fallback, known=ort.get_all_providers()
    )
    if warnings:  # the named backend cannot run here and the CPU fallback was allowed
        providers = ["cpu"]
    if backend is not None:
        providers = ["cpu"]  # the backend runs every graph: no onnxruntime session is opened
    plan = choose_providers(
        ort.get_available_providers(),
        providers,
        allow_cpu_fallback=allow_cpu_fallback,
        known=ort.get_all_providers(),
    )
    cache_dir = _trt_cache_dir(artifact) if "TensorrtExecutionProvider" in plan.providers else None

    def session(name: str) -> Any:
        if backend is not None:
            return backend.open_session(artifact, name, threads=threads)
        sess, w = open_session(
            artifact.graph_path(name),
            plan,
            role=name,
            threads=threads,
            memory_arena=memory_arena,
            cache_dir=cache_dir,
            factory=session_factory,
        )
        warnings.extend(w)
        return sess

    runner: MonolithicRunner | DecomposedRunner
    if artifact.mode == "decomposed":
        cache = PrefixCache(prefix_cache_size) if prefix_cache_size > 0 else None
        runner = DecomposedRunner(
            session("vlm_prefix"),
            session("expert_denoise"),
            num_steps=artifact.num_steps,
            flow=artifact.flow,
            adaptive_steps=adaptive_steps,
            prefix_cache=cache,
            # a backend's sessions take and return numpy arrays (no onnxruntime IOBinding)
            kv_feed="numpy" if backend is not None else kv_feed,
        )
    elif artifact.mode == "monolithic":
        for option, value in (
            ("adaptive_steps", adaptive_steps),
            ("prefix_cache_size", prefix_cache_size),
        ):
            if value:
                raise ConfigError(
                    f"{option} needs a decomposed artifact (the monolithic graph runs its Euler "
                    "loop inside ONNX); export with --mode decomposed",
                    slug="option-unsupported",
                    field=option,
                )
        runner = MonolithicRunner(session("policy"), num_steps=artifact.num_steps)
    else:
        raise ArtifactError(
            f"this runtime cannot run artifact mode {artifact.mode!r} (known: decomposed, monolithic)",
            slug="artifact-schema",
        )
    tokenizer = PromptTokenizer.for_artifact(artifact)
    return Policy(
        artifact=artifact,
        runner=runner,
        tokenizer=tokenizer,
        slot=slot,
        embodiment=emb,
        warnings=warnings,
        seed=seed,
    )


def _runtime_backend(
    providers: Sequence[str] | None,
    backends: Mapping[str, Any] | None,
    allow_cpu_fallback: bool,
    *,
    known: Sequence[str],
) -> tuple[Any, list[str]]:
    """The plugin runtime backend ``providers`` names (or None) and the fallback warnings.

    The installed plugins are read only when a requested name is no onnxruntime provider.
    """
    from reflex_core.runtime.providers import ALIASES, choose_backend

    names = [n.strip() for n in providers or () if n.strip()]
    if backends is None:
        if all(n.lower() in ALIASES or n in known for n in names):
            return None, []
        from reflex_core.plugin.manager import make_plugin_manager

        backends = make_plugin_manager().registry.runtime_backends
    lower = {n.lower() for n in names}
    unavailable = {
        name: why
        for name, spec in backends.items()
        if name.lower() in lower and (why := spec.probe()) is not None
    }
    chosen, warnings = choose_backend(
        names, list(backends), unavailable=unavailable, allow_cpu_fallback=allow_cpu_fallback
    )
    for w in warnings:
        log.warning("%s", w)
    return (None if chosen is None else backends[chosen]), warnings


def _trt_cache_dir(artifact: Any) -> Path:
    import os

    base = Path(os.environ.get("REFLEX_CACHE_DIR") or Path.home() / ".cache" / "reflex")
    path = base / "tensorrt" / artifact.config_sha256[:16]
    path.mkdir(parents=True, exist_ok=True)
    return path
