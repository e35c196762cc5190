"""Model families: the seam (:mod:`~reflex_core.models.family`, resolved through the plugin
registry by :mod:`~reflex_core.models.resolve`), what every family shares, and the built-in
pi0 / pi0.5 family (PyTorch modules whose parameters follow the public lerobot checkpoints).

Shared by every family (pi0 here, SmolVLA and GR00T in their plugins, a third party's):
:mod:`~reflex_core.models.lerobot` (reading a lerobot checkpoint directory, loader boilerplate),
:mod:`~reflex_core.models.weights` (strict safetensors loading), :mod:`~reflex_core.models.flow`
(torch blocks: time embedding, Euler loop, attention, the K/V-cache graph wrappers),
:mod:`~reflex_core.models.lerobot_writer` and :mod:`~reflex_core.models.tiny_tokenizer`
(writing built-in checkpoints), :mod:`~reflex_core.models.family_testing` (the export-and-serve
test every family runs).

Export-time only (torch): the serving path never imports this package's torch modules. The
names below load lazily, so ``import reflex_core.models`` (and the torch-free
:mod:`reflex_core.models.config` / :mod:`reflex_core.models.tiny_checkpoints`) does not import torch.

- :func:`load_policy_checkpoint` -> :class:`LoadedPolicy` (a local dir, a Hub repo id, or a
  built-in name of any installed family), through the registered model loaders.
- :func:`write_builtin_checkpoint` writes a built-in tiny checkpoint as a real directory.
- :class:`PiFlowModel` (the pi family's torch model) exposes ``prefix_kv``, ``denoise_step`` and
  ``sample_actions``; :mod:`~reflex_core.models.pi_graphs` cuts it into the seam's two graphs.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reflex_core.models.checkpoint import load_model_weights
    from reflex_core.models.config import PiPolicyConfig, parse_policy_config
    from reflex_core.models.family import LoadedPolicy
    from reflex_core.models.modeling import PiFlowModel, build_model
    from reflex_core.models.resolve import load_policy_checkpoint
    from reflex_core.models.tiny_checkpoints import BUILTIN_CHECKPOINTS, write_builtin_checkpoint

_LAZY = {
    "BUILTIN_CHECKPOINTS": "reflex_core.models.tiny_checkpoints",
    "write_builtin_checkpoint": "reflex_core.models.tiny_checkpoints",
    "load_model_weights": "reflex_core.models.checkpoint",
    "PiPolicyConfig": "reflex_core.models.config",
    "parse_policy_config": "reflex_core.models.config",
    "LoadedPolicy": "reflex_core.models.family",
    "load_policy_checkpoint": "reflex_core.models.resolve",
    "PiFlowModel": "reflex_core.models.modeling",
    "build_model": "reflex_core.models.modeling",
}

__all__ = [
    "BUILTIN_CHECKPOINTS",
    "LoadedPolicy",
    "PiFlowModel",
    "PiPolicyConfig",
    "build_model",
    "load_model_weights",
    "load_policy_checkpoint",
    "parse_policy_config",
    "write_builtin_checkpoint",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
