"""Writing a lerobot-format checkpoint directory: what every family's built-in writer shares.

:mod:`reflex_core.models.lerobot` reads these directories; this module writes them, for the
seeded tiny checkpoints the tests and the demo use and for random-weight checkpoints at a real
size (benchmarks). A family writer supplies its own ``config.json`` body, model and processor
steps; the pieces below are the same for every family:

- :func:`lerobot_policy_fields`: the head of every lerobot policy ``config.json`` (type,
  features, the ``PreTrainedConfig`` fields);
- :func:`franka_stats`: Franka-like normalizer statistics (7 joints in rad + one finger opening
  in m) cycled to any dimension, and :func:`save_stats` for the processors' stats files;
- :func:`normalizer_step`: a saved (un)normalizer processor step, and :func:`write_processors`
  for the two processor JSONs with their stats files;
- :func:`save_weights`: ``model.safetensors`` with the policy wrapper's key prefix;
- :class:`BuiltinSpecBase`: the fields every built-in checkpoint's spec has (Franka-sized I/O,
  seed) and its cache key (:func:`spec_digest`); :func:`lookup_spec` finds one by name and
  :func:`builtin_writer` is the lazy ``write`` a plugin registers for it.

torch-free at import (the plugins list their built-ins at startup); writing weights imports
torch.
"""

from __future__ import annotations

import hashlib
import importlib
import json
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import attrs

from reflex_core.errors import CheckpointError
from reflex_core.models.lerobot import (
    ACTION_FEATURE,
    IMAGE_FEATURE_PREFIX,
    POSTPROCESSOR_FILE,
    PREPROCESSOR_FILE,
    STATE_FEATURE,
)

FRANKA_CAMERAS = ("front", "wrist")
# Franka-like statistics (7 joints in rad + one finger opening in m) for the normalizer files.
FRANKA_STATE_MEAN = [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02]
FRANKA_STATE_STD = [1.44865, 0.8814, 1.44865, 0.7505, 1.44865, 0.9425, 1.44865, 0.01]
FRANKA_LOW = [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973, 0.0]
FRANKA_HIGH = [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973, 0.04]

Spec = TypeVar("Spec")


def spec_digest(writer_version: int, spec: Any) -> str:
    """A short hash of an attrs spec and its writer's version: the built-in's cache key (a
    changed spec or writer writes a new cache directory)."""
    text = json.dumps([writer_version, attrs.asdict(spec)], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


@attrs.frozen(kw_only=True)
class BuiltinSpecBase:
    """What every family's built-in checkpoint spec has: a name, a description, the square image
    size, chunk and prompt lengths, Franka-sized state and action (8 dims, padded to 32), the flow
    steps and the weights' seed. A family's spec adds its model sizes and sets
    ``writer_version``."""

    #: The family writer's version: bump it when the output changes for the same spec.
    writer_version: ClassVar[int]

    name: str
    description: str
    image_size: int
    chunk_size: int
    tokenizer_max_length: int
    cameras: tuple[str, ...] = FRANKA_CAMERAS
    state_dim: int = 8
    action_dim: int = 8
    max_state_dim: int = 32
    max_action_dim: int = 32
    num_steps: int = 10
    seed: int = 0

    def digest(self) -> str:
        """A short hash of the spec and writer version: the cache directory's suffix."""
        return spec_digest(self.writer_version, self)


def builtin_writer(module: str, name: str) -> Callable[[Path], None]:
    """A :class:`~reflex_core.plugin.registry.BuiltinCheckpoint` ``write``: imports ``module``
    only when called (a plugin registers its built-ins at startup, torch-free) and runs its
    ``write_builtin_checkpoint(name, directory)``."""

    def write(directory: Path) -> None:
        importlib.import_module(module).write_builtin_checkpoint(name, directory)

    return write


def lookup_spec(specs: Mapping[str, Spec], name: str) -> Spec:
    """:raises CheckpointError: ``checkpoint-not-found`` for a name not in ``specs``."""
    spec = specs.get(name)
    if spec is None:
        raise CheckpointError(
            f"unknown built-in checkpoint {name!r}; built-ins: {sorted(specs)}",
            slug="checkpoint-not-found",
            status=404,
        )
    return spec


def cycle(values: list[float], dim: int) -> list[float]:
    """``values`` repeated to length ``dim``."""
    return [values[i % len(values)] for i in range(dim)]


def franka_stats(dim: int) -> dict[str, list[float]]:
    """mean, std, min, max and the quantiles lerobot's modes read (q01, q10, q50, q90, q99,
    spread over [min, max]) of a Franka-like feature, cycled to ``dim``."""
    mean, std = cycle(FRANKA_STATE_MEAN, dim), cycle(FRANKA_STATE_STD, dim)
    low, high = cycle(FRANKA_LOW, dim), cycle(FRANKA_HIGH, dim)
    span = [h - lo for lo, h in zip(low, high, strict=True)]
    return {
        "mean": mean,
        "std": std,
        "min": low,
        "max": high,
        "q01": [lo + 0.02 * s for lo, s in zip(low, span, strict=True)],
        "q10": [lo + 0.1 * s for lo, s in zip(low, span, strict=True)],
        "q50": [lo + 0.5 * s for lo, s in zip(low, span, strict=True)],
        "q90": [lo + 0.9 * s for lo, s in zip(low, span, strict=True)],
        "q99": [lo + 0.98 * s for lo, s in zip(low, span, strict=True)],
    }


def lerobot_policy_fields(
    policy_type: str,
    *,
    cameras: Iterable[str],
    image_size: int,
    state_dim: int,
    action_dim: int,
) -> dict[str, Any]:
    """The head of a lerobot policy ``config.json``: ``type``, the square camera, state and
    action features, and the ``PreTrainedConfig`` fields every policy has (CPU, no hub push).
    A family adds its own fields after these."""
    input_features: dict[str, Any] = {
        f"{IMAGE_FEATURE_PREFIX}{camera}": {"type": "VISUAL", "shape": [3, image_size, image_size]}
        for camera in cameras
    }
    input_features[STATE_FEATURE] = {"type": "STATE", "shape": [state_dim]}
    return {
        "type": policy_type,
        "n_obs_steps": 1,
        "input_features": input_features,
        "output_features": {ACTION_FEATURE: {"type": "ACTION", "shape": [action_dim]}},
        "device": "cpu",
        "use_amp": False,
        "push_to_hub": False,
        "repo_id": None,
        "private": None,
        "tags": None,
        "license": None,
        "pretrained_path": None,
    }


def normalizer_step(
    registry_name: str,
    features: Mapping[str, Any],
    norm_map: Mapping[str, str],
    state_file: str,
) -> dict[str, Any]:
    """A saved ``normalizer_processor`` / ``unnormalizer_processor`` step (lerobot 0.4.x)."""
    return {
        "registry_name": registry_name,
        "config": {"eps": 1e-8, "features": dict(features), "norm_map": dict(norm_map)},
        "state_file": state_file,
    }


def save_stats(
    directory: Path, file_names: Iterable[str], features: Mapping[str, Mapping[str, list[float]]]
) -> None:
    """Write ``{"<feature>.<stat>": float32 array}`` (lerobot's stats-file keys) into each of
    ``file_names`` in ``directory``."""
    import numpy as np
    from safetensors.numpy import save_file

    stats = {
        f"{feature}.{stat}": np.asarray(values, dtype=np.float32)
        for feature, per_stat in features.items()
        for stat, values in per_stat.items()
    }
    for name in file_names:
        save_file(stats, str(directory / name))


def write_processors(
    directory: Path,
    files: Mapping[str, Any],
    features: Mapping[str, Mapping[str, list[float]]],
) -> None:
    """The processor JSONs and their normalizer stats files. ``files``: ``pre`` / ``post`` (the
    pre/post processor JSONs) and ``pre_state`` / ``post_state`` (the stats-file names their
    normalizer steps name); ``features``: the statistics, as :func:`save_stats` takes them."""
    save_stats(directory, (files["pre_state"], files["post_state"]), features)
    write_json(directory / PREPROCESSOR_FILE, files["pre"])
    write_json(directory / POSTPROCESSOR_FILE, files["post"])


def save_weights(tensors: Mapping[str, Any], path: Path, prefix: str = "model.") -> None:
    """``model.safetensors`` (``{"format": "pt"}`` metadata) of a state dict, every key under
    ``prefix`` (the policy wrapper's attribute: ``model.`` for lerobot's pi and SmolVLA)."""
    from safetensors.torch import save_file

    prefixed = {prefix + key: value.detach().contiguous() for key, value in tensors.items()}
    save_file(prefixed, str(path), metadata={"format": "pt"})


def write_json(path: Path, value: Any) -> None:
    """Indented JSON with a trailing newline."""
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")
