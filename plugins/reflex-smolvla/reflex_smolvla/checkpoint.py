"""Load a lerobot SmolVLA ``model.safetensors`` into a :class:`SmolVLAFlowModel` by name.

lerobot has written two on-disk layouts for SmolVLA policies, both with the policy wrapper's
``model.`` prefix on every weight:

- lerobot >= 0.4 (``lerobot/smolvla_base`` today): weights only; the normalization statistics
  live in the processor pipelines' stats files (``policy_preprocessor.json`` ...);
- lerobot <= 0.3: the statistics are buffers in the same file, outside ``model.``:
  ``normalize_inputs.buffer_observation_state.mean``, ``normalize_targets.buffer_action.*``,
  ``unnormalize_outputs.buffer_action.*`` (what lerobot's ``migrate_policy_normalization``
  converts from).

Everything else is strict (:mod:`reflex_core.models.weights`, shared by every family): a missing
key, an unexpected key or a wrong shape raises :class:`CheckpointError` (slug
``checkpoint-mismatch``) naming the keys. bf16 tensors (how real checkpoints may store the VLM)
are cast to fp32: we export fp32. Tensors are read one at a time from the memory-mapped file into
a model built on the meta device (about one copy in memory).
"""

from __future__ import annotations

import logging
from pathlib import Path

import attrs
import numpy as np
import torch
from torch import nn

from reflex_core.models.lerobot import LEROBOT_PREFIX
from reflex_core.models.weights import KeyPlan, expected_shapes, load_planned, open_safetensors

log = logging.getLogger(__name__)

#: lerobot <= 0.3 kept the normalizer buffers in the weights file under these prefixes.
LEGACY_STATS_PREFIXES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")


@attrs.frozen
class LoadReport:
    """What :func:`load_weights` did (the strict checks passed)."""

    loaded: int
    layout: str  # "lerobot" (stats in processor files) or "lerobot-legacy" (stats in weights)
    cast_from: tuple[str, ...] = ()


def checkpoint_keys(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The keys (and shapes) a lerobot checkpoint of ``model`` holds (works on meta)."""
    return {LEROBOT_PREFIX + name: shape for name, shape in expected_shapes(model).items()}


def legacy_stats(path: str | Path) -> dict[str, np.ndarray]:
    """The normalizer buffers of a lerobot <= 0.3 weights file as ``{"observation.state.mean":
    array, "action.std": ...}`` (empty for the current layout). Action stats come from
    ``unnormalize_outputs`` (what inference applies), else ``normalize_targets``."""
    stats: dict[str, np.ndarray] = {}
    with open_safetensors(path) as f:
        keys = [k for k in f.keys() if k.startswith(LEGACY_STATS_PREFIXES)]
        # Later prefixes win: unnormalize_outputs is the inference-time action normalizer.
        for prefix in LEGACY_STATS_PREFIXES:
            for key in keys:
                if not key.startswith(prefix + "buffer_"):
                    continue
                feature, _, stat = key[len(prefix + "buffer_") :].rpartition(".")
                name = feature.replace("_", ".") + "." + stat
                stats[name] = f.get_tensor(key).to(torch.float32).numpy()
    return stats


def load_weights(model: nn.Module, path: str | Path) -> LoadReport:
    """Load ``path`` into ``model`` (built on meta or CPU) as fp32, strictly.

    :raises CheckpointError: ``checkpoint-mismatch`` listing missing / unexpected keys and wrong
        shapes (all of them in ``details``), or ``checkpoint-unreadable``.
    """
    path = Path(path)
    expected = expected_shapes(model)
    with open_safetensors(path) as f:
        file_keys = list(f.keys())
        legacy = [k for k in file_keys if k.startswith(LEGACY_STATS_PREFIXES)]
        sources: dict[str, str] = {}
        unexpected: list[str] = []
        for key in file_keys:
            if key in legacy:
                continue
            name = key[len(LEROBOT_PREFIX) :] if key.startswith(LEROBOT_PREFIX) else None
            if name is None or name not in expected:
                unexpected.append(key)
                continue
            sources[name] = key
        plan = KeyPlan(sources=sources, unexpected=unexpected, missing_prefix=LEROBOT_PREFIX)
        cast = load_planned(model, f, path, plan, what="SmolVLA architecture in config.json")
    if cast:
        log.info("%s: cast %s weights to float32", path, sorted(cast))
    return LoadReport(
        loaded=len(sources),
        layout="lerobot-legacy" if legacy else "lerobot",
        cast_from=tuple(sorted(cast)),
    )
