"""Load a lerobot pi0 / pi05 ``model.safetensors`` into a :class:`PiFlowModel` by name.

Both on-disk layouts load (notes §0):

- lerobot-saved policies: every key starts with ``model.`` and ``embed_tokens`` is stored;
- Hub base ports (openpi converter): no prefix, and the VLM ``embed_tokens`` is absent because
  ``safetensors.save_model`` kept only its tied twin ``paligemma.lm_head.weight``.

Like lerobot's ``_fix_pytorch_state_dict_keys`` we rename ``action_time_mlp_*`` <->
``time_mlp_*`` to the family's name and, for pi0.5, skip the pi0-only ``state_proj`` and plain
expert norm weights. Everything else is strict: a missing key, an unexpected key or a wrong shape
raises :class:`CheckpointError` (slug ``checkpoint-mismatch``) naming the keys
(:mod:`reflex_core.models.weights`, which every family's loader shares).

Memory: tensors are read one at a time from the memory-mapped file and assigned into a model
built on the meta device, so loading needs about one copy of the weights, not three.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import attrs
from torch import nn

from reflex_core.models.lerobot import LEROBOT_PREFIX
from reflex_core.models.modeling import PiFlowModel
from reflex_core.models.weights import (
    KeyPlan,
    expected_shapes,
    load_planned,
    open_safetensors,
    short_keys,
)

log = logging.getLogger(__name__)

VLM_EMBED_KEY = "paligemma_with_expert.paligemma.model.language_model.embed_tokens.weight"
VLM_LM_HEAD_KEY = "paligemma_with_expert.paligemma.lm_head.weight"

_PI05_SKIPPED = (
    re.compile(r"^state_proj\.(weight|bias)$"),
    re.compile(
        r"^paligemma_with_expert\.gemma_expert\.model\.layers\.\d+\."
        r"(input_layernorm|post_attention_layernorm)\.weight$"
    ),
    re.compile(r"^paligemma_with_expert\.gemma_expert\.model\.norm\.weight$"),
)


@attrs.frozen
class LoadReport:
    """What :func:`load_model_weights` did (the strict checks passed)."""

    loaded: int
    layout: str  # "lerobot" (``model.`` prefix) or "hub" (no prefix)
    renamed: tuple[tuple[str, str], ...] = ()
    skipped: tuple[str, ...] = ()
    embed_tokens_from_lm_head: bool = False


def canonical_key(key: str, family: str) -> str | None:
    """The model's parameter name for a checkpoint key (None: lerobot skips it for this family)."""
    if key.startswith(LEROBOT_PREFIX):
        key = key[len(LEROBOT_PREFIX) :]
    if family == "pi05":
        if key.startswith("action_time_mlp_"):
            key = key[len("action_") :]
        if any(p.match(key) for p in _PI05_SKIPPED):
            return None
    elif key.startswith("time_mlp_"):
        key = "action_" + key
    return key


def checkpoint_keys(model: nn.Module, *, layout: str = "lerobot") -> dict[str, tuple[int, ...]]:
    """The keys (and shapes) a checkpoint of ``model`` holds in ``layout``.

    ``"lerobot"``: every parameter with the ``model.`` prefix (``embed_tokens`` included).
    ``"hub"``: no prefix and no VLM ``embed_tokens`` (the base ports' 777 / 812 tensors).
    Works on a meta-device model (no memory).
    """
    if layout not in ("lerobot", "hub"):
        raise ValueError(f"unknown layout {layout!r}")
    keys: dict[str, tuple[int, ...]] = {}
    for name, tensor in model.state_dict(keep_vars=True).items():
        if layout == "hub":
            if name == VLM_EMBED_KEY:
                continue
            keys[name] = tuple(tensor.shape)
        else:
            keys[LEROBOT_PREFIX + name] = tuple(tensor.shape)
    return keys


def load_model_weights(model: PiFlowModel, path: str | Path) -> LoadReport:
    """Load ``path`` (a safetensors file) into ``model`` (built on meta or CPU) as fp32.

    :raises CheckpointError: slug ``checkpoint-mismatch`` listing missing / unexpected keys and
        wrong shapes (all of them in ``details``), or ``checkpoint-unreadable``.
    """
    path = Path(path)
    expected = expected_shapes(model)
    with open_safetensors(path) as f:
        file_keys = list(f.keys())
        layout = "lerobot" if any(k.startswith(LEROBOT_PREFIX) for k in file_keys) else "hub"
        sources: dict[str, str] = {}  # model name -> file key
        renamed: list[tuple[str, str]] = []
        skipped: list[str] = []
        unexpected: list[str] = []
        for key in file_keys:
            name = canonical_key(key, model.family)
            if name is None:
                skipped.append(key)
                continue
            if name in sources:  # e.g. both "model.x" and "x" in one file
                unexpected.append(key)
                continue
            if name not in expected:
                unexpected.append(key)
                continue
            sources[name] = key
            stripped = key[len(LEROBOT_PREFIX) :] if key.startswith(LEROBOT_PREFIX) else key
            if name != stripped:
                renamed.append((key, name))
        # Base ports store the tied embedding once, as the lm_head (notes §0).
        embed_alias = VLM_EMBED_KEY not in sources and VLM_LM_HEAD_KEY in sources
        plan = KeyPlan(
            sources=sources,
            unexpected=unexpected,
            tied={VLM_EMBED_KEY: VLM_LM_HEAD_KEY} if embed_alias else {},
            report_by="model",
        )
        load_planned(model, f, path, plan, what="architecture in config.json")
    if skipped:
        log.warning(
            "%s: skipped %d key(s) lerobot drops for %s: %s",
            path,
            len(skipped),
            model.family,
            short_keys(skipped),
        )
    return LoadReport(
        loaded=len(sources),
        layout=layout,
        renamed=tuple(renamed),
        skipped=tuple(skipped),
        embed_tokens_from_lm_head=embed_alias,
    )
