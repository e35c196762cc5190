"""Strict loading of a ``model.safetensors`` into a family's torch model, by parameter name.

Every family loads the same way; only which file key feeds which parameter differs (a prefix, a
renamed or skipped key, a tied embedding stored once). A family's loader opens the file with
:func:`open_safetensors`, maps its keys to parameter names in a :class:`KeyPlan`, and hands the
plan to :func:`load_planned`, which

- raises :class:`~reflex_core.errors.CheckpointError` (slug ``checkpoint-mismatch``) for a
  missing key, an unexpected key or a wrong shape, naming them (all of them in ``details``);
- reads the tensors one at a time from the memory-mapped file into a model built on the meta
  device (about one copy of the weights in memory), cast to fp32 (we export fp32; real
  checkpoints may store bf16);
- checks that nothing is left on the meta device.

torch at import: export time only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import attrs
import torch
from safetensors import safe_open
from torch import nn

from reflex_core.errors import CheckpointError

#: Keys named in an error message; the full lists go into ``details``.
SHOWN = 8

Shape = tuple[int, ...]


@attrs.frozen
class KeyPlan:
    """Which file key feeds which parameter of the model.

    :ivar sources: parameter name -> file key.
    :ivar unexpected: file keys the model has no place for.
    :ivar tied: parameter name -> another parameter name whose loaded tensor it shares (an
        embedding stored only as its tied ``lm_head`` twin); not missing, not read twice.
    :ivar missing_prefix: put before a missing parameter name in the report (the prefix the
        file's layout would give its key, e.g. ``model.``).
    :ivar report_by: ``"file"``: a wrong shape is reported under its file key; ``"model"``:
        under the parameter name (and missing names get no prefix).
    """

    sources: Mapping[str, str]
    unexpected: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    tied: Mapping[str, str] = attrs.field(factory=dict)
    missing_prefix: str = ""
    report_by: str = attrs.field(default="file", validator=attrs.validators.in_(("file", "model")))


def expected_shapes(model: nn.Module) -> dict[str, Shape]:
    """Every parameter and persistent buffer name of ``model`` with its shape (works on meta)."""
    return {name: tuple(t.shape) for name, t in model.state_dict(keep_vars=True).items()}


def short_keys(keys: Iterable[str]) -> str:
    """The first :data:`SHOWN` keys (sorted), then ``(+N more)``."""
    keys = sorted(keys)
    shown = ", ".join(keys[:SHOWN])
    return shown + (f" (+{len(keys) - SHOWN} more)" if len(keys) > SHOWN else "")


def open_safetensors(path: str | Path) -> Any:
    """``safe_open(path)`` on CPU (use it as a context manager).

    :raises CheckpointError: ``checkpoint-unreadable`` for a missing or corrupt file.
    """
    try:
        return safe_open(str(path), framework="pt", device="cpu")
    except Exception as exc:  # safetensors raises its own error types for a corrupt header
        raise CheckpointError(
            f"cannot read {path}: {exc}", slug="checkpoint-unreadable", status=400
        ) from exc


def assign_tensor(model: nn.Module, name: str, tensor: torch.Tensor) -> None:
    """Put ``tensor`` in place of parameter or buffer ``name`` (a frozen parameter: export only
    reads it). Replacing, not copying, is what lets a meta-device model load without a copy."""
    module_name, _, attr = name.rpartition(".")
    module = model.get_submodule(module_name) if module_name else model
    if attr in module._parameters:
        module._parameters[attr] = nn.Parameter(tensor, requires_grad=False)
    else:
        module._buffers[attr] = tensor


def mismatch_error(
    path: Path,
    missing: list[str],
    unexpected: list[str],
    wrong_shape: Mapping[str, tuple[Shape, Shape]],
    *,
    what: str,
) -> CheckpointError:
    """``checkpoint-mismatch``: ``{path} does not match the {what}: missing ...; unexpected
    ...; wrong shape ...`` with every key in ``details``."""
    parts = []
    if missing:
        parts.append(f"missing {len(missing)} key(s): {short_keys(missing)}")
    if unexpected:
        parts.append(f"unexpected {len(unexpected)} key(s): {short_keys(unexpected)}")
    if wrong_shape:
        parts.append(
            "wrong shape: "
            + ", ".join(
                f"{k} expected {list(e)} got {list(g)}"
                for k, (e, g) in sorted(wrong_shape.items())[:SHOWN]
            )
        )
    return CheckpointError(
        f"{path} does not match the {what}: " + "; ".join(parts),
        slug="checkpoint-mismatch",
        status=400,
        details={
            "file": str(path),
            "missing": sorted(missing),
            "unexpected": sorted(unexpected),
            "wrong_shape": {k: [list(e), list(g)] for k, (e, g) in sorted(wrong_shape.items())},
        },
    )


def load_planned(
    model: nn.Module, handle: Any, path: Path, plan: KeyPlan, *, what: str
) -> set[str]:
    """Check ``plan`` against ``model`` and the open file ``handle``, then load it.

    :param what: what the file must match, for the error message (e.g. ``"SmolVLA
        architecture in config.json"``).
    :return: the dtypes (``"bfloat16"``...) that were cast to float32.
    :raises CheckpointError: ``checkpoint-mismatch`` (module doc).
    """
    expected = expected_shapes(model)
    by_model = plan.report_by == "model"
    missing = [
        n if by_model else plan.missing_prefix + n
        for n in expected
        if n not in plan.sources and n not in plan.tied
    ]
    wrong_shape: dict[str, tuple[Shape, Shape]] = {}
    for name, key in plan.sources.items():
        shape = tuple(handle.get_slice(key).get_shape())
        if shape != expected[name]:
            wrong_shape[name if by_model else key] = (expected[name], shape)
    if missing or plan.unexpected or wrong_shape:
        raise mismatch_error(path, missing, list(plan.unexpected), wrong_shape, what=what)

    cast: set[str] = set()
    for name, key in plan.sources.items():
        tensor = handle.get_tensor(key)
        if tensor.dtype != torch.float32:
            cast.add(str(tensor.dtype).removeprefix("torch."))
            tensor = tensor.to(torch.float32)
        assign_tensor(model, name, tensor)
    for name, twin in plan.tied.items():
        # Same tensor, no copy: neither is written to at inference.
        assign_tensor(model, name, model.get_parameter(twin).data)
    require_materialized(model)
    return cast


def require_materialized(model: nn.Module) -> None:
    """Raise when a parameter or buffer is still on the meta device after loading: a bug (every
    expected key was checked), not bad input; call the model's buffer reset before loading."""
    leftovers = [n for n, t in model.state_dict(keep_vars=True).items() if t.is_meta]
    leftovers += [n for n, t in model.named_buffers() if t.is_meta]
    if leftovers:
        raise RuntimeError(f"tensors left on the meta device after loading: {leftovers[:5]}")
