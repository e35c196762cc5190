"""reflex-groot: the GR00T N1.5 model family (NVIDIA's VLA, as lerobot 0.4.4 saves it).

Registers the ``groot`` loader and the ``tiny-groot`` built-in checkpoint through
``reflex_register_model_loaders``. torch-free at import: the serving path loads every plugin;
torch is imported only when a checkpoint is loaded or written.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from reflex_core.plugin import BuiltinCheckpoint, ModelLoader, hookimpl

__version__ = "0.1.0"

DESCRIPTION = (
    "GR00T N1.5 (Eagle 2.5 VL backbone truncated at select_layer + flow-matching cross-attention "
    "DiT with per-embodiment state/action projectors; lerobot checkpoints)"
)


def _matches(config: Mapping[str, Any]) -> bool:
    from reflex_groot.loader import matches

    return matches(config)


def _load(checkpoint_dir: Path, options: Any) -> Any:
    from reflex_groot.loader import load_groot_checkpoint

    return load_groot_checkpoint(checkpoint_dir, options)


def _write_tiny(directory: Path) -> None:
    from reflex_groot.builtin import write_tiny_groot

    write_tiny_groot(directory)


@hookimpl
def reflex_register_model_loaders(register: Callable[[ModelLoader], None]) -> None:
    from reflex_groot.builtin import TINY_NAME, cache_key

    register(
        ModelLoader(
            name="groot",
            matches=_matches,
            load=_load,
            builtin_checkpoints={
                TINY_NAME: BuiltinCheckpoint(write=_write_tiny, cache_key=cache_key())
            },
            description=DESCRIPTION,
        )
    )
