"""What every lerobot-format checkpoint shares, whichever family it holds.

A lerobot checkpoint directory has ``config.json`` (draccus: ``"type"`` names the policy),
``model.safetensors``, and the processor pipelines ``policy_preprocessor.json`` /
``policy_postprocessor.json`` whose normalizer steps name a stats safetensors file
(``<feature>.<stat>`` keys; notes/lerobot-pi-checkpoints.md §3). Family loaders use these helpers
so no two plugins parse the same files twice. torch-free except :func:`load_stats` (bf16 stats).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from reflex_core.errors import CheckpointError

log = logging.getLogger(__name__)

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
PREPROCESSOR_FILE = "policy_preprocessor.json"
POSTPROCESSOR_FILE = "policy_postprocessor.json"
STATE_FEATURE = "observation.state"
ACTION_FEATURE = "action"
IMAGE_FEATURE_PREFIX = "observation.images."
#: The key prefix of a lerobot-saved policy state dict (the policy wrapper's ``model``).
LEROBOT_PREFIX = "model."
#: The statistics each normalization mode needs (lerobot normalize_processor.py).
MODE_STATS: dict[str, tuple[str, ...]] = {
    "IDENTITY": (),
    "MEAN_STD": ("mean", "std"),
    "MIN_MAX": ("min", "max"),
    "QUANTILES": ("q01", "q99"),
    "QUANTILE10": ("q10", "q90"),
}


def read_json(path: Path) -> Any:
    """:raises CheckpointError: ``checkpoint-config-invalid`` when unreadable."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read {path}: {exc}", slug="checkpoint-config-invalid", status=400
        ) from exc


def claims_type(policy_type: str) -> Callable[[Any], bool]:
    """A loader's ``matches``: the checkpoint's ``config.json`` says ``"type": policy_type``."""

    def matches(config: Any) -> bool:
        return isinstance(config, Mapping) and config.get("type") == policy_type

    return matches


def read_checkpoint(directory: Path) -> tuple[Path, Any]:
    """A checkpoint directory's weights file (which must exist) and parsed ``config.json``.

    :raises CheckpointError: ``checkpoint-not-found`` without ``model.safetensors``,
        ``checkpoint-config-invalid`` for an unreadable config.
    """
    weights = directory / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(
            f"{directory} has no {WEIGHTS_FILE}", slug="checkpoint-not-found", status=404
        )
    return weights, read_json(directory / CONFIG_FILE)


def processor_step(directory: Path, file_name: str, registry_name: str) -> dict[str, Any] | None:
    """The first step named ``registry_name`` of a saved processor pipeline, or None."""
    path = directory / file_name
    if not path.is_file():
        return None
    pipeline = read_json(path)
    steps = pipeline.get("steps") if isinstance(pipeline, Mapping) else None
    for step in steps or []:
        if isinstance(step, Mapping) and step.get("registry_name") == registry_name:
            return dict(step)
    return None


def load_stats(directory: Path, step: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
    """The stats safetensors a processor step names in ``state_file`` (float32 numpy)."""
    if step is None or not step.get("state_file"):
        return {}
    path = directory / str(step["state_file"])
    if not path.is_file():
        raise CheckpointError(
            f"{path.name} (named by a processor's state_file) is missing from {directory}",
            slug="checkpoint-stats-invalid",
            status=400,
        )
    # Stats may be bf16 in some checkpoints, which numpy cannot read: go through torch.
    from safetensors.torch import load_file

    return {k: v.float().numpy() for k, v in load_file(str(path)).items()}


def normalization_entry(
    feature: str, mode: str, stats: Mapping[str, np.ndarray], dim: int
) -> dict[str, Any] | None:
    """``{"mode", <stat>: (dim,) float32}`` for one feature, or None without its stats."""
    if mode not in MODE_STATS:
        raise CheckpointError(
            f"unsupported normalization mode {mode!r} for {feature}; supported: "
            f"{sorted(MODE_STATS)}",
            slug="checkpoint-stats-invalid",
            status=400,
        )
    if mode == "IDENTITY":
        return {"mode": "IDENTITY"}
    needed = MODE_STATS[mode]
    if not all(f"{feature}.{stat}" in stats for stat in needed):
        return None
    entry: dict[str, Any] = {"mode": mode}
    for stat in needed:
        values = np.asarray(stats[f"{feature}.{stat}"], dtype=np.float32).reshape(-1)
        if values.shape[0] != dim:
            raise CheckpointError(
                f"normalizer stat {feature}.{stat} has {values.shape[0]} values, "
                f"the feature has {dim}",
                slug="checkpoint-stats-invalid",
                status=400,
            )
        entry[stat] = values
    return entry


def read_normalization(
    directory: Path, modes: Mapping[str, str], state_dim: int, action_dim: int
) -> dict[str, dict[str, Any] | None]:
    """State and action normalization from the processors' normalizer stats files.

    :param modes: ``{"STATE": mode, "ACTION": mode}`` from the config's
        ``normalization_mapping``; a step's saved ``norm_map`` overrides it.
    The stats file name comes from each step's ``state_file`` (it moved between lerobot
    versions). The unnormalizer owns the action stats; the preprocessor's copy is the fallback.
    """
    pre_step = processor_step(directory, PREPROCESSOR_FILE, "normalizer_processor")
    post_step = processor_step(directory, POSTPROCESSOR_FILE, "unnormalizer_processor")
    pre_stats = load_stats(directory, pre_step)
    post_stats = load_stats(directory, post_step)
    if pre_step is None and post_step is None:
        log.warning("%s has no normalizer processors: no normalization stats", directory)

    def mode_for(kind: str, step: Mapping[str, Any] | None) -> str:
        norm_map = (step or {}).get("config", {}).get("norm_map") or {}
        return str(norm_map.get(kind, modes[kind]))

    state = normalization_entry(STATE_FEATURE, mode_for("STATE", pre_step), pre_stats, state_dim)
    action_stats = post_stats if any(k.startswith("action.") for k in post_stats) else pre_stats
    action = normalization_entry(
        ACTION_FEATURE, mode_for("ACTION", post_step or pre_step), action_stats, action_dim
    )
    return {"state": state, "action": action}


def find_tokenizer(directory: Path) -> Path | None:
    """``tokenizer.json`` in the checkpoint or its ``tokenizer/`` folder (lerobot > 0.6.1)."""
    for candidate in (directory / "tokenizer.json", directory / "tokenizer" / "tokenizer.json"):
        if candidate.is_file():
            return candidate
    return None


def resolve_tokenizer(explicit: Path | None, *directories: Path | None) -> Path | None:
    """The ``tokenizer.json`` to use: ``explicit`` (``--tokenizer``), else the first one
    :func:`find_tokenizer` finds in ``directories`` (the checkpoint, then e.g. its backbone's
    folder), else None (export then fails with ``tokenizer-missing`` and the family's hint).

    :raises CheckpointError: ``checkpoint-not-found`` when ``explicit`` does not exist.
    """
    tokenizer = explicit
    for directory in directories:
        if tokenizer is None and directory is not None:
            tokenizer = find_tokenizer(directory)
    if tokenizer is not None and not Path(tokenizer).is_file():
        raise CheckpointError(
            f"tokenizer file {tokenizer} does not exist", slug="checkpoint-not-found", status=404
        )
    return Path(tokenizer) if tokenizer is not None else None


def weight_keys(path: Path) -> list[str]:
    """The tensor names of a safetensors file, read from its header only."""
    from safetensors import safe_open

    with safe_open(str(path), framework="numpy") as handle:
        return list(handle.keys())


def camera_names(config: Mapping[str, Any]) -> list[str]:
    """The cameras of a lerobot config's ``input_features``, in order, plus
    ``empty_camera_{i}`` for ``empty_cameras`` (lerobot's ``validate_features`` adds them)."""
    features = config.get("input_features") or {}
    cameras = [
        key[len(IMAGE_FEATURE_PREFIX) :] for key in features if key.startswith(IMAGE_FEATURE_PREFIX)
    ]
    for i in range(int(config.get("empty_cameras", 0) or 0)):
        if f"empty_camera_{i}" not in cameras:
            cameras.append(f"empty_camera_{i}")
    return cameras
