"""A tiny random-weight pi0.5 checkpoint for the ``aloha`` embodiment: the chance baseline of
``reflex eval --env aloha/...`` (and the model this plugin's tests export and serve).

The core's ``tiny-pi05`` re-labelled for ALOHA by
:func:`reflex_core.eval.tiny.write_tiny_checkpoint`: one ``top`` camera, a 14-value state, 14
actions, the embodiment's normalizer stats. Needs ``reflex-core[export]``.
"""

from __future__ import annotations

from pathlib import Path

from reflex_aloha.embodiment import aloha

CAMERA = "top"


def write_tiny_checkpoint(directory: str | Path) -> Path:
    """Write the checkpoint into ``directory`` (``reflex export DIR --embodiment aloha`` takes
    it)."""
    from reflex_core.eval.tiny import write_tiny_checkpoint as relabelled

    return relabelled(directory, aloha(), [CAMERA])
