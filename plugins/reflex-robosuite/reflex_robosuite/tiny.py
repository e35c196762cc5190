"""A tiny random-weight pi0.5 checkpoint for the ``panda-robosuite`` embodiment: the chance
baseline of ``reflex eval --env robosuite/...`` (and the model this plugin's tests export and
serve).

The core's ``tiny-pi05`` re-labelled for this robot by
:func:`reflex_core.eval.tiny.write_tiny_checkpoint`: one ``agentview`` camera, an 8-value state,
8 actions, the embodiment's normalizer stats. Needs ``reflex-core[export]``.
"""

from __future__ import annotations

from pathlib import Path

from reflex_robosuite.embodiment import panda_robosuite

CAMERA = "agentview"


def write_tiny_checkpoint(directory: str | Path) -> Path:
    """Write the checkpoint into ``directory`` (``reflex export DIR --embodiment
    panda-robosuite`` takes it)."""
    from reflex_core.eval.tiny import write_tiny_checkpoint as relabelled

    return relabelled(directory, panda_robosuite(), [CAMERA])
