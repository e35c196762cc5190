"""A tiny random-weight pi0.5 checkpoint for the ``aloha`` embodiment: the chance baseline of
``reflex eval --env aloha/...`` (and the model this plugin's tests export and serve).

``write_tiny_checkpoint(DIR)`` writes the core's ``tiny-pi05`` re-labelled for ALOHA
(:func:`reflex_core.eval.tiny.tiny_checkpoint_writer`): one ``top`` camera, a 14-value state, 14
actions; ``reflex export DIR --embodiment aloha`` takes it. Needs ``reflex-core[export]``.
"""

from __future__ import annotations

from reflex_aloha.embodiment import aloha
from reflex_core.eval.tiny import tiny_checkpoint_writer

CAMERA = "top"

write_tiny_checkpoint = tiny_checkpoint_writer(aloha, [CAMERA])
