"""``load_policy_checkpoint``: a local dir, a Hub repo id or a built-in name -> LoadedPolicy."""

from __future__ import annotations

import json
import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from reflex_core.errors import CheckpointError
from reflex_core.models.builtin import BUILTIN_SPECS, ensure_builtin_checkpoint
from reflex_core.models.checkpoint import LoadReport, load_model_weights
from reflex_core.models.config import PiPolicyConfig, parse_policy_config
from reflex_core.models.modeling import PiFlowModel, build_model

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
PREPROCESSOR_FILE = "policy_preprocessor.json"
POSTPROCESSOR_FILE = "policy_postprocessor.json"
# What snapshot_download fetches from a Hub repo (no optimizer state, no training extras).
HUB_PATTERNS = [
    CONFIG_FILE,
    WEIGHTS_FILE,
    "policy_*.json",
    "policy_*.safetensors",
    "tokenizer.json",
    "tokenizer/*",
]
_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*/[A-Za-z0-9][A-Za-z0-9_.-]*$")
# The statistics each normalization mode needs (lerobot normalize_processor.py).
MODE_STATS = {
    "IDENTITY": (),
    "MEAN_STD": ("mean", "std"),
    "MIN_MAX": ("min", "max"),
    "QUANTILES": ("q01", "q99"),
    "QUANTILE10": ("q10", "q90"),
}


@attrs.frozen(eq=False)
class LoadedPolicy:
    """A checkpoint loaded for export: the fp32 eval model plus every fact the export needs.

    ``normalization`` is ``{"state": entry, "action": entry}`` where an entry is
    ``{"mode": "QUANTILES"|"MEAN_STD"|..., <stat>: np.ndarray (dim,) float32}`` with the stats
    the mode needs (``q01``/``q99``, ``mean``/``std``...), ``{"mode": "IDENTITY"}``, or None when
    the checkpoint has no statistics for that feature.
    """

    family: str
    model: PiFlowModel
    config: dict[str, Any]
    checkpoint_dir: Path
    chunk_size: int
    max_action_dim: int
    max_state_dim: int
    action_dim: int
    state_dim: int
    num_steps: int
    tokenizer_file: Path | None
    tokenizer_max_length: int
    image_size: tuple[int, int]
    camera_names: tuple[str, ...]
    normalization: dict[str, dict[str, Any] | None]
    num_layers: int
    num_kv_heads: int
    head_dim: int
    feature_dim: int
    policy_config: PiPolicyConfig
    load_report: LoadReport
    source: str


def _not_found(message: str) -> CheckpointError:
    return CheckpointError(message, slug="checkpoint-not-found", status=404)


def resolve_checkpoint_dir(source: str | Path) -> Path:
    """A local directory, a built-in name (written to the cache once) or a Hub repo id."""
    path = Path(source).expanduser()
    if path.is_dir():
        return path
    text = str(source)
    if text in BUILTIN_SPECS:
        return ensure_builtin_checkpoint(text)
    if path.exists():
        raise _not_found(f"{source} is a file; a checkpoint is a directory with {CONFIG_FILE}")
    if _REPO_ID.match(text) and not text.startswith((".", "/", "~")):
        return _hub_snapshot(text)
    raise _not_found(
        f"checkpoint {text!r} is neither a directory, a Hub repo id (owner/name) nor a "
        f"built-in ({', '.join(sorted(BUILTIN_SPECS))})"
    )


def _hub_snapshot(repo_id: str) -> Path:
    """snapshot_download with the normal Hub cache; HF_HUB_OFFLINE=1 means cache only."""
    from huggingface_hub import snapshot_download

    offline = os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}
    cache_dir = os.environ.get("HF_HUB_CACHE") or None
    try:
        snapshot = snapshot_download(
            repo_id,
            allow_patterns=HUB_PATTERNS,
            local_files_only=offline,
            cache_dir=cache_dir,
        )
    except Exception as exc:  # hub errors: offline cache miss, 404, gated repo, network
        hint = " (HF_HUB_OFFLINE is set: only the local cache is used)" if offline else ""
        raise _not_found(
            f"cannot get Hub checkpoint {repo_id!r}{hint}: {type(exc).__name__}: {exc}"
        ) from exc
    return Path(snapshot)


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(
            f"cannot read {path}: {exc}", slug="checkpoint-config-invalid", status=400
        ) from exc


def _processor_step(directory: Path, file_name: str, registry_name: str) -> dict[str, Any] | None:
    path = directory / file_name
    if not path.is_file():
        return None
    pipeline = _read_json(path)
    steps = pipeline.get("steps") if isinstance(pipeline, Mapping) else None
    for step in steps or []:
        if isinstance(step, Mapping) and step.get("registry_name") == registry_name:
            return dict(step)
    return None


def _load_stats(directory: Path, step: Mapping[str, Any] | None) -> dict[str, np.ndarray]:
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


def _normalization_entry(
    feature: str,
    mode: str,
    stats: Mapping[str, np.ndarray],
    dim: int,
) -> dict[str, Any] | None:
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
    directory: Path, policy_config: PiPolicyConfig
) -> dict[str, dict[str, Any] | None]:
    """State and action normalization from the processors' normalizer stats files (notes §3).

    The stats file name comes from each step's ``state_file`` (it moved between lerobot
    versions). Modes: the step's ``norm_map`` if saved, else ``normalization_mapping``.
    """
    pre_step = _processor_step(directory, PREPROCESSOR_FILE, "normalizer_processor")
    post_step = _processor_step(directory, POSTPROCESSOR_FILE, "unnormalizer_processor")
    pre_stats = _load_stats(directory, pre_step)
    post_stats = _load_stats(directory, post_step)
    if pre_step is None and post_step is None:
        log.warning("%s has no normalizer processors: no normalization stats", directory)

    def mode_for(kind: str, step: Mapping[str, Any] | None) -> str:
        norm_map = (step or {}).get("config", {}).get("norm_map") or {}
        mode = str(norm_map.get(kind, policy_config.normalization_mapping[kind]))
        if mode not in MODE_STATS:
            raise CheckpointError(
                f"unsupported normalization mode {mode!r} for {kind}",
                slug="checkpoint-stats-invalid",
                status=400,
            )
        return mode

    state = _normalization_entry(
        "observation.state", mode_for("STATE", pre_step), pre_stats, policy_config.state_dim
    )
    # The unnormalizer owns the action stats; fall back to the preprocessor's copy.
    action_stats = post_stats if any(k.startswith("action.") for k in post_stats) else pre_stats
    action = _normalization_entry(
        "action", mode_for("ACTION", post_step or pre_step), action_stats, policy_config.action_dim
    )
    return {"state": state, "action": action}


def _tokenizer_file(directory: Path) -> Path | None:
    for candidate in (directory / "tokenizer.json", directory / "tokenizer" / "tokenizer.json"):
        if candidate.is_file():
            return candidate
    return None


def load_policy_checkpoint(
    source: str | Path, *, tokenizer_file: str | Path | None = None
) -> LoadedPolicy:
    """Load a pi0 / pi0.5 checkpoint for export.

    :param source: a local checkpoint directory, a Hub repo id (``owner/name``, fetched with
        ``huggingface_hub.snapshot_download`` into the normal cache; ``HF_HUB_OFFLINE=1`` uses
        the cache only) or a built-in name (``tiny-pi0``, ``tiny-pi05``, ``tiny-pi05-heavy``),
        which is written once to ``~/.cache/reflex/checkpoints`` and loaded from there.
    :param tokenizer_file: a ``tokenizer.json`` to use when the checkpoint ships none (real
        lerobot checkpoints rely on the gated PaliGemma tokenizer).
    :raises CheckpointError: ``checkpoint-not-found``, ``checkpoint-config-invalid``,
        ``checkpoint-unsupported``, ``checkpoint-mismatch``, ``checkpoint-stats-invalid``.
    """
    directory = resolve_checkpoint_dir(source)
    config_path = directory / CONFIG_FILE
    weights_path = directory / WEIGHTS_FILE
    for required in (config_path, weights_path):
        if not required.is_file():
            raise _not_found(f"{directory} has no {required.name}")
    config = _read_json(config_path)
    policy_config = parse_policy_config(config)
    normalization = read_normalization(directory, policy_config)

    import torch

    arch = policy_config.architecture
    with torch.no_grad():
        model = build_model(arch, device="meta")
        report = load_model_weights(model, weights_path)
    model.eval()

    tokenizer = Path(tokenizer_file) if tokenizer_file is not None else _tokenizer_file(directory)
    if tokenizer is not None and not tokenizer.is_file():
        raise _not_found(f"tokenizer file {tokenizer} does not exist")
    return LoadedPolicy(
        family=policy_config.family,
        model=model,
        config=dict(config),
        checkpoint_dir=directory,
        chunk_size=policy_config.chunk_size,
        max_action_dim=policy_config.max_action_dim,
        max_state_dim=policy_config.max_state_dim,
        action_dim=policy_config.action_dim,
        state_dim=policy_config.state_dim,
        num_steps=policy_config.num_steps,
        tokenizer_file=tokenizer,
        tokenizer_max_length=policy_config.tokenizer_max_length,
        image_size=policy_config.image_size,
        camera_names=policy_config.camera_names,
        normalization=normalization,
        num_layers=arch.vlm.depth,
        num_kv_heads=arch.vlm.num_kv_heads,
        head_dim=arch.vlm.head_dim,
        feature_dim=arch.vlm.width,
        policy_config=policy_config,
        load_report=report,
        source=str(source),
    )
