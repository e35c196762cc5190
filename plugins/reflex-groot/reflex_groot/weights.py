"""Load a GR00T ``model.safetensors`` into :class:`~reflex_groot.modeling.GrootModel` by name.

Two layouts: a lerobot policy (every key under ``_groot_model.``) and a bare ``GR00TN15`` state
dict (no prefix). The Qwen3 embedding is tied to ``lm_head``; ``safetensors.save_model`` keeps
one of the twins (``lm_head.weight``, the first in sorted order), so the embedding is taken from
``language_model.lm_head.weight`` when ``model.embed_tokens.weight`` is absent. Everything else is
strict (:mod:`reflex_core.models.weights`, shared by every family): a missing key, an unexpected
key or a wrong shape raises ``checkpoint-mismatch`` naming them. Tensors are read one at a time
from the memory-mapped file into a model built on the meta device (one copy of the weights in
memory).
"""

from __future__ import annotations

from pathlib import Path

import attrs
from torch import nn

from reflex_core.models.weights import KeyPlan, expected_shapes, load_planned, open_safetensors
from reflex_groot.config import WEIGHTS_PREFIX
from reflex_groot.modeling import GrootModel

LM = "backbone.eagle_model.language_model."
EMBED_KEY = LM + "model.embed_tokens.weight"
LM_HEAD_KEY = LM + "lm_head.weight"


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


def load_weights(model: GrootModel, path: str | Path) -> LoadReport:
    """Load ``path`` into ``model`` (built on meta or CPU) as fp32.

    :raises CheckpointError: ``checkpoint-mismatch`` (all offending keys in ``details``) or
        ``checkpoint-unreadable``.
    """
    path = Path(path)
    expected = expected_shapes(model)
    # Buffers no checkpoint stores, computed before loading (nothing may stay on meta).
    model.reset_nonpersistent_buffers()
    with open_safetensors(path) as f:
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
        plan = KeyPlan(
            sources=sources,
            unexpected=unexpected,
            missing_prefix=WEIGHTS_PREFIX if layout == "lerobot" else "",
        )
        load_planned(model, f, path, plan, what="GR00T architecture")
    return LoadReport(
        loaded=len(sources),
        layout=layout,
        embed_tokens_from_lm_head=from_lm_head,
        skipped=tuple(skipped),
    )
