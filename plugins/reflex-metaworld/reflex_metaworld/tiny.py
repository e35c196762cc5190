"""A tiny random-weight pi0.5 checkpoint for the ``sawyer-metaworld`` embodiment: the chance
baseline of ``reflex eval`` (and the model its tests export and serve).

The core's ``tiny-pi05`` re-labelled for this robot by
:func:`reflex_core.eval.tiny.write_tiny_checkpoint`: one ``corner`` camera, a 21-value state,
4 actions, the embodiment's normalizer stats. Needs ``reflex-core[export]``.
"""

from __future__ import annotations

from pathlib import Path

from reflex_metaworld.embodiment import sawyer_metaworld

CAMERA = "corner"


def write_tiny_checkpoint(directory: str | Path) -> Path:
    """Write the checkpoint into ``directory`` (``reflex export DIR --embodiment
    sawyer-metaworld`` takes it)."""
    from reflex_core.eval.tiny import write_tiny_checkpoint as relabelled

    return relabelled(directory, sawyer_metaworld(), [CAMERA])
