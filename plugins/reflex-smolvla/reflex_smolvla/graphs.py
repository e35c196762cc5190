"""SmolVLA cut into the two graphs of the family seam (flat, named tensor signatures).

Prefix: ``(images, image_masks, tokens, token_masks, state) -> (past_k_0..L-1, past_v_0..L-1,
prefix_mask, features)``; the state is a prefix token in SmolVLA, so the step does not take it.
Step: ``(x_t, t, prefix_mask, past_k_*, past_v_*) -> velocity``. The wrappers are the core's
shared K/V-cache graphs (:mod:`reflex_core.models.flow`), as for pi0; only the names live here.
"""

from __future__ import annotations

from reflex_core.models.flow import kv_names

PREFIX_INPUTS = ("images", "image_masks", "tokens", "token_masks", "state")


def step_inputs(num_layers: int) -> list[str]:
    return ["x_t", "t", "prefix_mask", *kv_names(num_layers)]
