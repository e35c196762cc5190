"""pi0 / pi0.5 cut into the two graphs of the family seam (flat tensor signatures).

:class:`~reflex_core.models.modeling.PiFlowModel` returns lists; ONNX wants a flat, named
signature: the prefix is the shared :class:`~reflex_core.models.flow.KVPrefixGraph`, the
reference the shared :class:`~reflex_core.models.flow.NamedInputsSampler`; the step
(:class:`PiExpertGraph`) adds pi0.5's state-less signature. They fix the I/O order the pi loader
declares in its :class:`~reflex_core.models.family.FlowGraphs`. torch: export time only.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from reflex_core.models.flow import KVStepGraph, kv_names

PREFIX_INPUTS = ("images", "image_masks", "tokens", "token_masks")

#: The eager reference's arguments: ``PiFlowModel.sample_actions(*SAMPLE_INPUTS, noise, n)``.
SAMPLE_INPUTS = (*PREFIX_INPUTS, "state")

__all__ = ["PREFIX_INPUTS", "SAMPLE_INPUTS", "PiExpertGraph", "kv_names"]


class PiExpertGraph(KVStepGraph):
    """expert_denoise: one velocity evaluation of the action expert against the prefix cache,
    ``(x_t, t, [state,] prefix_mask, *past_k, *past_v)``.

    ``uses_state=False`` (pi0.5: the state is in the prompt) drops the ``state`` input from the
    graph's signature; the model still receives a zero state it ignores.
    """

    def __init__(
        self, model: nn.Module, num_layers: int, max_state_dim: int, uses_state: bool
    ) -> None:
        super().__init__(model, num_layers)
        self.max_state_dim = max_state_dim
        self.uses_state = uses_state

    def step_args(self, *head: torch.Tensor) -> Sequence[torch.Tensor]:
        if self.uses_state:
            return head
        x_t, t, prefix_mask = head
        return (x_t, t, x_t.new_zeros(x_t.shape[0], self.max_state_dim), prefix_mask)
