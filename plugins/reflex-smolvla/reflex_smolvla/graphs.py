"""SmolVLA cut into the two graphs of the family seam (flat, named tensor signatures).

Prefix: ``(images, image_masks, tokens, token_masks, state) -> (past_k_0..L-1, past_v_0..L-1,
prefix_mask, features)``; the state is a prefix token in SmolVLA, so the step does not take it.
Step: ``(x_t, t, prefix_mask, past_k_*, past_v_*) -> velocity``. torch at import: export time only.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

PREFIX_INPUTS = ("images", "image_masks", "tokens", "token_masks", "state")


def kv_names(num_layers: int) -> list[str]:
    """``past_k_0..L-1`` then ``past_v_0..L-1``: the prefix outputs and step inputs, in order."""
    return [f"past_k_{i}" for i in range(num_layers)] + [f"past_v_{i}" for i in range(num_layers)]


def step_inputs(num_layers: int) -> list[str]:
    return ["x_t", "t", "prefix_mask", *kv_names(num_layers)]


class SmolVLAPrefixGraph(nn.Module):
    """vlm_prefix: images + prompt + state -> per-layer K/V cache, prefix mask, pooled features."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_layers = model.arch.num_vlm_layers

    def forward(
        self,
        images: torch.Tensor,
        image_masks: torch.Tensor,
        tokens: torch.Tensor,
        token_masks: torch.Tensor,
        state: torch.Tensor,
    ) -> tuple[torch.Tensor, ...]:
        past_k, past_v, prefix_mask, features = self.model.prefix_kv(
            images, image_masks, tokens, token_masks, state
        )
        return (*past_k, *past_v, prefix_mask, features)


class SmolVLAStepGraph(nn.Module):
    """expert_denoise: one velocity evaluation of the action expert against the prefix cache."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.num_layers = model.arch.num_vlm_layers

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        # Flat positional signature: (x_t, t, prefix_mask, *past_k, *past_v).
        x_t, t, prefix_mask, *flat_kv = args
        n = self.num_layers
        return self.model.denoise_step(
            x_t, t, prefix_mask, list(flat_kv[:n]), list(flat_kv[n : 2 * n])
        )


class SmolVLASampler:
    """The eager end-to-end reference: ``SmolVLAFlowModel.sample_actions`` on named inputs."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __call__(
        self, inputs: Mapping[str, torch.Tensor], noise: torch.Tensor, num_steps: int
    ) -> torch.Tensor:
        return self.model.sample_actions(*(inputs[n] for n in PREFIX_INPUTS), noise, num_steps)
