"""The pi0 and pi0.5 model families, registered as a default plugin through the same hook a
third-party family uses (``reflex_register_model_loaders``).

No torch at import time: the serving path loads every built-in plugin, and torch is an optional
extra. The loaders import :mod:`reflex_core.models` (torch) only when called.
"""

from __future__ import annotations

from collections.abc import Callable

from reflex_core.models.lerobot_writer import builtin_writer
from reflex_core.models.tiny_checkpoints import BUILTIN_SPECS
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.registry import BuiltinCheckpoint, ModelLoader, lazy

_DESCRIPTIONS = {
    "pi0": "pi0 (PaliGemma + action expert, flow matching; state through state_proj)",
    "pi05": "pi0.5 (PaliGemma + adaRMS action expert, flow matching; state in the prompt)",
}


@hookimpl
def reflex_register_model_loaders(register: Callable[[ModelLoader], None]) -> None:
    from reflex_core.models.loading import matches

    for family, description in _DESCRIPTIONS.items():
        register(
            ModelLoader(
                name=family,
                matches=matches(family),
                load=lazy("reflex_core.models.loading:load_pi_checkpoint"),
                builtin_checkpoints={
                    name: BuiltinCheckpoint(
                        write=builtin_writer("reflex_core.models.tiny_checkpoints", name),
                        cache_key=spec.digest(),
                    )
                    for name, spec in BUILTIN_SPECS.items()
                    if spec.family == family
                },
                description=description,
            )
        )
