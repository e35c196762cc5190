"""GR00T cut into the two graphs of the family seam (flat tensor signatures).

- prefix (once per observation): ``images, image_masks, tokens, token_masks, state`` ->
  ``backbone_features`` (B, L, D: Eagle features after ``vlln`` and the VL self-attention),
  ``backbone_mask`` (B, L) bool, ``state_features`` (B, 1, E: the embodiment's state encoder),
  ``features`` (B, D: mean over valid tokens, for the A2C2 wedge);
- step (one DiT evaluation): ``x_t, t, backbone_features, backbone_mask, state_features`` ->
  velocity (B, action_horizon, max_action_dim); ``t`` is the float flow time, bucketed inside.

The embodiment's projector slice is fixed when the graphs are built; the eager reference is the
core's :class:`~reflex_core.models.flow.NamedInputsSampler` over ``GrootModel.sample_actions``.
torch at export time only.
"""

from __future__ import annotations

import torch
from torch import nn

from reflex_groot.modeling import GrootModel

PREFIX_INPUTS = ("images", "image_masks", "tokens", "token_masks", "state")
PREFIX_OUTPUTS = ("backbone_features", "backbone_mask", "state_features", "features")
STEP_INPUTS = ("x_t", "t", "backbone_features", "backbone_mask", "state_features")


class _EmbodimentGraph(nn.Module):
    """A graph of ``model`` with the projector slice ``category`` baked in."""

    def __init__(self, model: GrootModel, category: int) -> None:
        super().__init__()
        self.model = model
        self.category = category


class GrootPrefixGraph(_EmbodimentGraph):
    def forward(
        self,
        images: torch.Tensor,
        image_masks: torch.Tensor,
        tokens: torch.Tensor,
        token_masks: torch.Tensor,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        return self.model.prefix(images, image_masks, tokens, token_masks, state, self.category)


class GrootStepGraph(_EmbodimentGraph):
    def forward(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        backbone_features: torch.Tensor,
        backbone_mask: torch.Tensor,
        state_features: torch.Tensor,
    ) -> torch.Tensor:
        return self.model.action_head.velocity(
            x_t, t, backbone_features, backbone_mask, state_features, self.category
        )
