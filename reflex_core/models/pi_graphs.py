"""pi0 / pi0.5 cut into the two graphs of the family seam (flat tensor signatures).

:class:`~reflex_core.models.modeling.PiFlowModel` returns lists; ONNX wants a flat, named
signature. These wrappers fix the I/O order the pi loader declares in its
:class:`~reflex_core.models.family.FlowGraphs`. torch is imported here: export time only.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

PREFIX_INPUTS = ("images", "image_masks", "tokens", "token_masks")


def kv_names(num_layers: int) -> list[str]:
    """``past_k_0..L-1`` then ``past_v_0..L-1``: the prefix outputs and expert inputs, in order."""
    return [f"past_k_{i}" for i in range(num_layers)] + [f"past_v_{i}" for i in range(num_layers)]


class PiPrefixGraph(nn.Module):
    """vlm_prefix: images + tokens + masks -> per-layer KV cache, prefix mask, pooled features."""

    def __init__(self, model: nn.Module, num_layers: int) -> None:
        super().__init__()
        self.model = model
        self.num_layers = num_layers

    def forward(
        self,
        images: torch.Tensor,
        image_masks: torch.Tensor,
        tokens: torch.Tensor,
        token_masks: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        past_k, past_v, prefix_mask, features = self.model.prefix_kv(
            images, image_masks, tokens, token_masks
        )
        if len(past_k) != self.num_layers or len(past_v) != self.num_layers:
            raise ValueError(
                f"prefix_kv returned {len(past_k)}/{len(past_v)} K/V layers, "
                f"expected {self.num_layers}"
            )
        return (*past_k, *past_v, prefix_mask, features)


class PiExpertGraph(nn.Module):
    """expert_denoise: one velocity evaluation of the action expert against the prefix cache.

    ``uses_state=False`` (pi0.5: the state is in the prompt) drops the ``state`` input from the
    graph's signature; the model still receives a zero state it ignores.
    """

    def __init__(
        self, model: nn.Module, num_layers: int, max_state_dim: int, uses_state: bool
    ) -> None:
        super().__init__()
        self.model = model
        self.num_layers = num_layers
        self.max_state_dim = max_state_dim
        self.uses_state = uses_state

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        # Flat positional signature: (x_t, t, [state,] prefix_mask, *past_k, *past_v).
        if self.uses_state:
            x_t, t, state, prefix_mask, *flat_kv = args
        else:
            x_t, t, prefix_mask, *flat_kv = args
            state = x_t.new_zeros(x_t.shape[0], self.max_state_dim)
        n = self.num_layers
        return self.model.denoise_step(
            x_t, t, state, prefix_mask, list(flat_kv[:n]), list(flat_kv[n : 2 * n])
        )


class PiSampler:
    """The eager end-to-end reference: ``PiFlowModel.sample_actions`` on named inputs."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(
        self, inputs: Mapping[str, torch.Tensor], noise: torch.Tensor, num_steps: int
    ) -> torch.Tensor:
        return self.model.sample_actions(
            *(inputs[n] for n in PREFIX_INPUTS), inputs["state"], noise, num_steps
        )
