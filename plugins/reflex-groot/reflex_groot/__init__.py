"""reflex-groot: the GR00T N1.5 model family (NVIDIA's VLA, as lerobot 0.4.4 saves it).

Registers the ``groot`` loader and the ``tiny-groot`` built-in checkpoint through
``reflex_register_model_loaders``. torch-free at import: the serving path loads every plugin;
torch is imported only when a checkpoint is loaded or written.
"""

from __future__ import annotations

from collections.abc import Callable

from reflex_core.plugin import BuiltinCheckpoint, ModelLoader, hookimpl, lazy

__version__ = "0.1.0"

DESCRIPTION = (
    "GR00T N1.5 (Eagle 2.5 VL backbone truncated at select_layer + flow-matching cross-attention "
    "DiT with per-embodiment state/action projectors; lerobot checkpoints)"
)


@hookimpl
def reflex_register_model_loaders(register: Callable[[ModelLoader], None]) -> None:
    from reflex_groot.builtin import TINY_NAME, cache_key

    register(
        ModelLoader(
            name="groot",
            matches=lazy("reflex_groot.loader:matches"),
            load=lazy("reflex_groot.loader:load_groot_checkpoint"),
            builtin_checkpoints={
                TINY_NAME: BuiltinCheckpoint(
                    write=lazy("reflex_groot.builtin:write_tiny_groot"), cache_key=cache_key()
                )
            },
            description=DESCRIPTION,
        )
    )
