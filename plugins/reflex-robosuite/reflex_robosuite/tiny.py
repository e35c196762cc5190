"""A tiny random-weight pi0.5 checkpoint for the ``panda-robosuite`` embodiment: the chance
baseline of ``reflex eval --env robosuite/...`` (and the model this plugin's tests export and
serve).

``write_tiny_checkpoint(DIR)`` writes the core's ``tiny-pi05`` re-labelled for the Panda
(:func:`reflex_core.eval.tiny.tiny_checkpoint_writer`): one ``agentview`` camera, an 8-value
state, 8 actions; ``reflex export DIR --embodiment panda-robosuite`` takes it. Needs
``reflex-core[export]``.
"""

from __future__ import annotations

from reflex_core.eval.tiny import tiny_checkpoint_writer
from reflex_robosuite.embodiment import panda_robosuite

CAMERA = "agentview"

write_tiny_checkpoint = tiny_checkpoint_writer(panda_robosuite, [CAMERA])
