"""A tiny random-weight pi0.5 checkpoint for the ``sawyer-metaworld`` embodiment: the chance
baseline of ``reflex eval`` (and the model its tests export and serve).

``write_tiny_checkpoint(DIR)`` writes the core's ``tiny-pi05`` re-labelled for this robot
(:func:`reflex_core.eval.tiny.tiny_checkpoint_writer`): one ``corner`` camera, a 21-value state,
4 actions; ``reflex export DIR --embodiment sawyer-metaworld`` takes it. Needs
``reflex-core[export]``.
"""

from __future__ import annotations

from reflex_core.eval.tiny import tiny_checkpoint_writer
from reflex_metaworld.embodiment import sawyer_metaworld

CAMERA = "corner"

write_tiny_checkpoint = tiny_checkpoint_writer(sawyer_metaworld, [CAMERA])
