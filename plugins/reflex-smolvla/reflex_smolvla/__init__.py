"""Reflex model family: SmolVLA (lerobot's ``smolvla`` policies).

Registers the ``smolvla`` model loader (and the built-in ``tiny-smolvla`` checkpoint) through
``reflex_register_model_loaders``. Importing this package does not import torch: the serving path
loads every plugin; the loader imports torch when ``reflex export`` calls it.
"""

from __future__ import annotations

from collections.abc import Callable

from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.registry import BuiltinCheckpoint, ModelLoader, lazy

__version__ = "0.1.0"

DESCRIPTION = (
    "SmolVLA (SmolVLM2 backbone + action expert interleaving cross- and self-attention, flow "
    "matching; lerobot checkpoints, state as a prefix token)"
)


#: ``reflex export --model-option KEY=VALUE`` keys this family reads (key -> help). torch-free.
MODEL_OPTIONS = {
    "vision_patch_positions": (
        "SmolVLM vision patch position-id rule baked into the graph: 'transformers-4.57' "
        "(default; what lerobot 0.4.x trains and runs with) or 'transformers-5' (checkpoints "
        "trained on transformers >= 5, e.g. lerobot >= 0.5)"
    ),
}


@hookimpl
def reflex_register_model_loaders(register: Callable[[ModelLoader], None]) -> None:
    from reflex_core.models.lerobot_writer import builtin_writer
    from reflex_smolvla.builtin import BUILTIN_SPECS

    register(
        ModelLoader(
            name="smolvla",
            matches=lazy("reflex_smolvla.loader:matches"),
            load=lazy("reflex_smolvla.loader:load_smolvla_checkpoint"),
            builtin_checkpoints={
                name: BuiltinCheckpoint(
                    write=builtin_writer("reflex_smolvla.builtin", name), cache_key=spec.digest()
                )
                for name, spec in BUILTIN_SPECS.items()
            },
            description=DESCRIPTION,
            model_options=MODEL_OPTIONS,
        )
    )
