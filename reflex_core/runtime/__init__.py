"""The torch-free runtime: a verified artifact in onnxruntime sessions, ready to act.

>>> from reflex_core.runtime import load_policy
>>> policy = load_policy("./export", embodiment="franka")   # doctest: +SKIP
>>> out = policy.infer([observation])                       # doctest: +SKIP
>>> out.actions.shape                                       # (B, chunk_size, action_dim)

Modules: :mod:`.preprocess` (numpy preprocessing shared with the export parity gate),
:mod:`.tokenizer`, :mod:`.providers` (execution provider choice and verification),
:mod:`.sessions` (ORT session options), :mod:`.runners` (monolithic and decomposed),
:mod:`.prefix_cache`, :mod:`.policy`. Nothing here imports torch. See docs/runtime.md.
"""

from reflex_core.runtime.policy import CheckedObservation, Policy, PolicyOutput, load_policy
from reflex_core.runtime.prefix_cache import PrefixCache
from reflex_core.runtime.runners import DecomposedRunner, MonolithicRunner, RunResult

__all__ = [
    "CheckedObservation",
    "DecomposedRunner",
    "MonolithicRunner",
    "Policy",
    "PolicyOutput",
    "PrefixCache",
    "RunResult",
    "load_policy",
]
