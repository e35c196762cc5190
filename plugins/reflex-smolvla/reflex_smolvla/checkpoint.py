"""Load a lerobot SmolVLA ``model.safetensors`` into a :class:`SmolVLAFlowModel` by name.

lerobot has written two on-disk layouts for SmolVLA policies, both with the policy wrapper's
``model.`` prefix on every weight:

- lerobot >= 0.4 (``lerobot/smolvla_base`` today): weights only; the normalization statistics
  live in the processor pipelines' stats files (``policy_preprocessor.json`` ...);
- lerobot <= 0.3: the statistics are buffers in the same file, outside ``model.``:
  ``normalize_inputs.buffer_observation_state.mean``, ``normalize_targets.buffer_action.*``,
  ``unnormalize_outputs.buffer_action.*`` (what lerobot's ``migrate_policy_normalization``
  converts from).

Everything else is strict: a missing key, an unexpected key or a wrong shape raises
:class:`CheckpointError` (slug ``checkpoint-mismatch``) naming the keys. bf16 tensors (how real
checkpoints may store the VLM) are cast to fp32: we export fp32. Tensors are read one at a time
from the memory-mapped file into a model built on the meta device (about one copy in memory).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import attrs
import numpy as np
import torch
from safetensors import safe_open
from torch import nn

from reflex_core.errors import CheckpointError

log = logging.getLogger(__name__)

LEROBOT_PREFIX = "model."
#: lerobot <= 0.3 kept the normalizer buffers in the weights file under these prefixes.
LEGACY_STATS_PREFIXES = ("normalize_inputs.", "normalize_targets.", "unnormalize_outputs.")
_SHOWN = 8


@attrs.frozen
class LoadReport:
    """What :func:`load_weights` did (the strict checks passed)."""

    loaded: int
    layout: str  # "lerobot" (stats in processor files) or "lerobot-legacy" (stats in weights)
    cast_from: tuple[str, ...] = ()


def checkpoint_keys(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The keys (and shapes) a lerobot checkpoint of ``model`` holds (works on meta)."""
    return {
        LEROBOT_PREFIX + name: tuple(t.shape)
        for name, t in model.state_dict(keep_vars=True).items()
    }


def _short(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def _assign(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    if attr in module._parameters:
        module._parameters[attr] = nn.Parameter(tensor, requires_grad=False)
    else:
        module._buffers[attr] = tensor


def _open(path: Path):  # noqa: ANN202 - safetensors' handle type is private
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises its own error types for a corrupt header
        raise CheckpointError(
            f"cannot read {path}: {exc}", slug="checkpoint-unreadable", status=400
        ) from exc


def legacy_stats(path: str | Path) -> dict[str, np.ndarray]:
    """The normalizer buffers of a lerobot <= 0.3 weights file as ``{"observation.state.mean":
    array, "action.std": ...}`` (empty for the current layout). Action stats come from
    ``unnormalize_outputs`` (what inference applies), else ``normalize_targets``."""
    stats: dict[str, np.ndarray] = {}
    with _open(Path(path)) as f:
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
    expected = {name: tuple(t.shape) for name, t in model.state_dict(keep_vars=True).items()}
    with _open(path) as f:
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
        missing = [LEROBOT_PREFIX + n for n in expected if n not in sources]
        wrong_shape: dict[str, tuple[tuple[int, ...], tuple[int, ...]]] = {}
        for name, key in sources.items():
            shape = tuple(f.get_slice(key).get_shape())
            if shape != expected[name]:
                wrong_shape[key] = (expected[name], shape)
        if missing or unexpected or wrong_shape:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} key(s): {_short(missing)}")
            if unexpected:
                parts.append(f"unexpected {len(unexpected)} key(s): {_short(unexpected)}")
            if wrong_shape:
                parts.append(
                    "wrong shape: "
                    + ", ".join(
                        f"{k} expected {list(e)} got {list(g)}"
                        for k, (e, g) in sorted(wrong_shape.items())[:_SHOWN]
                    )
                )
            raise CheckpointError(
                f"{path} does not match the SmolVLA architecture in config.json: "
                + "; ".join(parts),
                slug="checkpoint-mismatch",
                status=400,
                details={
                    "file": str(path),
                    "missing": sorted(missing),
                    "unexpected": sorted(unexpected),
                    "wrong_shape": {k: [list(e), list(g)] for k, (e, g) in wrong_shape.items()},
                },
            )
        cast: set[str] = set()
        for name, key in sources.items():
            tensor = f.get_tensor(key)
            if tensor.dtype != torch.float32:
                cast.add(str(tensor.dtype).removeprefix("torch."))
                tensor = tensor.to(torch.float32)
            _assign(model, name, tensor)
    leftovers = [n for n, t in model.state_dict(keep_vars=True).items() if t.is_meta]
    leftovers += [n for n, t in model.named_buffers() if t.is_meta]
    if leftovers:  # a bug, not bad input: every expected key was checked above
        raise RuntimeError(f"tensors left on the meta device after loading: {leftovers[:5]}")
    if cast:
        log.info("%s: cast %s weights to float32", path, sorted(cast))
    return LoadReport(
        loaded=len(sources),
        layout="lerobot-legacy" if legacy else "lerobot",
        cast_from=tuple(sorted(cast)),
    )
