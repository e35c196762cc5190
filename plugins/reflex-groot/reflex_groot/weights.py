"""Load a GR00T ``model.safetensors`` into :class:`~reflex_groot.modeling.GrootModel` by name.

Two layouts: a lerobot policy (every key under ``_groot_model.``) and a bare ``GR00TN15`` state
dict (no prefix). The Qwen3 embedding is tied to ``lm_head``; ``safetensors.save_model`` keeps
one of the twins (``lm_head.weight``, the first in sorted order), so the embedding is taken from
``language_model.lm_head.weight`` when ``model.embed_tokens.weight`` is absent. Everything else is
strict: a missing key, an unexpected key or a wrong shape raises ``checkpoint-mismatch`` naming
them. Tensors are read one at a time from the memory-mapped file into a model built on the meta
device (one copy of the weights in memory).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import attrs
import torch
from safetensors import safe_open
from torch import nn

from reflex_core.errors import CheckpointError
from reflex_groot.config import WEIGHTS_PREFIX
from reflex_groot.modeling import GrootModel

LM = "backbone.eagle_model.language_model."
EMBED_KEY = LM + "model.embed_tokens.weight"
LM_HEAD_KEY = LM + "lm_head.weight"
_SHOWN = 8


@attrs.frozen
class LoadReport:
    loaded: int
    layout: str  # "lerobot" (``_groot_model.``) or "gr00t" (bare)
    embed_tokens_from_lm_head: bool = False
    skipped: tuple[str, ...] = ()


def checkpoint_keys(model: nn.Module) -> dict[str, tuple[int, ...]]:
    """The keys and shapes a lerobot GR00T checkpoint of ``model`` holds (as
    ``safetensors.save_model`` writes it: the tied embedding stored as ``lm_head.weight``).
    Works on a meta-device model."""
    keys: dict[str, tuple[int, ...]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        keys[WEIGHTS_PREFIX + (LM_HEAD_KEY if name == EMBED_KEY else name)] = tuple(tensor.shape)
    return dict(sorted(keys.items()))


def _short(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    return ", ".join(keys[:_SHOWN]) + (
        f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else ""
    )


def _assign(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    if attr in module._parameters:
        module._parameters[attr] = nn.Parameter(tensor, requires_grad=False)
    else:
        module._buffers[attr] = tensor


def load_weights(model: GrootModel, path: str | Path) -> LoadReport:
    """Load ``path`` into ``model`` (built on meta or CPU) as fp32.

    :raises CheckpointError: ``checkpoint-mismatch`` (all offending keys in ``details``) or
        ``checkpoint-unreadable``.
    """
    path = Path(path)
    expected = {n: tuple(t.shape) for n, t in model.state_dict(keep_vars=True).items()}
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:
        raise CheckpointError(
            f"cannot read {path}: {exc}", slug="checkpoint-unreadable", status=400
        ) from exc
    with handle as f:
        file_keys = list(f.keys())
        layout = "lerobot" if any(k.startswith(WEIGHTS_PREFIX) for k in file_keys) else "gr00t"
        sources: dict[str, str] = {}
        unexpected: list[str] = []
        skipped: list[str] = []
        for key in file_keys:
            name = key[len(WEIGHTS_PREFIX) :] if key.startswith(WEIGHTS_PREFIX) else key
            if layout == "lerobot" and not key.startswith(WEIGHTS_PREFIX):
                unexpected.append(key)
            elif name == LM_HEAD_KEY:
                sources.setdefault("lm_head", key)
            elif name in expected and name not in sources:
                sources[name] = key
            else:
                unexpected.append(key)
        from_lm_head = EMBED_KEY not in sources and "lm_head" in sources
        if from_lm_head:
            sources[EMBED_KEY] = sources["lm_head"]
        elif "lm_head" in sources:
            skipped.append(sources["lm_head"])
        sources.pop("lm_head", None)
        prefix = WEIGHTS_PREFIX if layout == "lerobot" else ""
        missing = [prefix + n for n in expected if n not in sources]
        wrong = {}
        for name, key in sources.items():
            shape = tuple(f.get_slice(key).get_shape())
            if shape != expected[name]:
                wrong[key] = (expected[name], shape)
        if missing or unexpected or wrong:
            parts = []
            if missing:
                parts.append(f"missing {len(missing)} key(s): {_short(missing)}")
            if unexpected:
                parts.append(f"unexpected {len(unexpected)} key(s): {_short(unexpected)}")
            if wrong:
                parts.append(
                    "wrong shape: "
                    + ", ".join(
                        f"{k} expected {list(e)} got {list(g)}"
                        for k, (e, g) in sorted(wrong.items())[:_SHOWN]
                    )
                )
            raise CheckpointError(
                f"{path} does not match the GR00T architecture: " + "; ".join(parts),
                slug="checkpoint-mismatch",
                status=400,
                details={
                    "file": str(path),
                    "missing": sorted(missing),
                    "unexpected": sorted(unexpected),
                    "wrong_shape": {k: [list(e), list(g)] for k, (e, g) in sorted(wrong.items())},
                },
            )
        for name, key in sources.items():
            _assign(model, name, f.get_tensor(key).to(torch.float32))
    model.reset_nonpersistent_buffers()
    return LoadReport(
        loaded=len(sources),
        layout=layout,
        embed_tokens_from_lm_head=from_lm_head,
        skipped=tuple(skipped),
    )
