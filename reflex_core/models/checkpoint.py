"""Load a lerobot pi0 / pi05 ``model.safetensors`` into a :class:`PiFlowModel` by name.

Both on-disk layouts load (notes §0):

- lerobot-saved policies: every key starts with ``model.`` and ``embed_tokens`` is stored;
- Hub base ports (openpi converter): no prefix, and the VLM ``embed_tokens`` is absent because
  ``safetensors.save_model`` kept only its tied twin ``paligemma.lm_head.weight``.

Like lerobot's ``_fix_pytorch_state_dict_keys`` we rename ``action_time_mlp_*`` <->
``time_mlp_*`` to the family's name and, for pi0.5, skip the pi0-only ``state_proj`` and plain
expert norm weights. Everything else is strict: a missing key, an unexpected key or a wrong shape
raises :class:`CheckpointError` (slug ``checkpoint-mismatch``) naming the keys.

Memory: tensors are read one at a time from the memory-mapped file and assigned into a model
built on the meta device, so loading needs about one copy of the weights, not three.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

import attrs
import torch
from safetensors import safe_open
from torch import nn

from reflex_core.errors import CheckpointError
from reflex_core.models.modeling import PiFlowModel

log = logging.getLogger(__name__)

LEROBOT_PREFIX = "model."
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
_SHOWN = 8  # keys named in an error message; the full lists go into ``details``


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


def _short(keys: Iterable[str]) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:_SHOWN])
    return shown + (f" (+{len(keys) - _SHOWN} more)" if len(keys) > _SHOWN else "")


def _mismatch(
    path: Path,
    missing: list[str],
    unexpected: list[str],
    wrong_shape: Mapping[str, tuple[tuple[int, ...], tuple[int, ...]]],
) -> CheckpointError:
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} key(s): {_short(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} key(s): {_short(unexpected)}")
    if wrong_shape:
        shown = sorted(wrong_shape)[:_SHOWN]
        parts.append(
            "wrong shape: "
            + ", ".join(
                f"{k} expected {list(wrong_shape[k][0])} got {list(wrong_shape[k][1])}"
                for k in shown
            )
        )
    return CheckpointError(
        f"{path} does not match the architecture in config.json: " + "; ".join(parts),
        details={
            "file": str(path),
            "missing": sorted(missing),
            "unexpected": sorted(unexpected),
            "wrong_shape": {k: [list(e), list(g)] for k, (e, g) in sorted(wrong_shape.items())},
        },
    )


def _assign(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    if attr in module._parameters:
        module._parameters[attr] = nn.Parameter(tensor, requires_grad=False)
    else:
        module._buffers[attr] = tensor


def load_model_weights(model: PiFlowModel, path: str | Path) -> LoadReport:
    """Load ``path`` (a safetensors file) into ``model`` (built on meta or CPU) as fp32.

    :raises CheckpointError: slug ``checkpoint-mismatch`` listing missing / unexpected keys and
        wrong shapes (all of them in ``details``), or ``checkpoint-unreadable``.
    """
    path = Path(path)
    expected = {name: tuple(t.shape) for name, t in model.state_dict(keep_vars=True).items()}
    try:
        handle = safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises its own error types for a corrupt header
        raise CheckpointError(
            f"cannot read {path}: {exc}", slug="checkpoint-unreadable", status=400
        ) from exc
    with handle as f:
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
        missing = [
            n for n in expected if n not in sources and not (embed_alias and n == VLM_EMBED_KEY)
        ]
        wrong_shape = {}
        for name, key in sources.items():
            shape = tuple(f.get_slice(key).get_shape())
            if shape != expected[name]:
                wrong_shape[name] = (expected[name], shape)
        if missing or unexpected or wrong_shape:
            raise _mismatch(path, missing, unexpected, wrong_shape)

        for name, key in sources.items():
            tensor = f.get_tensor(key)
            if tensor.dtype != torch.float32:
                tensor = tensor.to(torch.float32)
            _assign(model, name, tensor)
        if embed_alias:
            # Same tensor, no copy: neither is written to at inference.
            _assign(model, VLM_EMBED_KEY, model.get_parameter(VLM_LM_HEAD_KEY).data)
    if skipped:
        log.warning(
            "%s: skipped %d key(s) lerobot drops for %s: %s",
            path,
            len(skipped),
            model.family,
            _short(skipped),
        )
    leftovers = [n for n, t in model.state_dict(keep_vars=True).items() if t.is_meta]
    leftovers += [n for n, t in model.named_buffers() if t.is_meta]
    if leftovers:  # a bug, not bad input: every expected key was checked above
        raise RuntimeError(f"tensors left on the meta device after loading: {leftovers[:5]}")
    return LoadReport(
        loaded=len(sources),
        layout=layout,
        renamed=tuple(renamed),
        skipped=tuple(skipped),
        embed_tokens_from_lm_head=embed_alias,
    )
