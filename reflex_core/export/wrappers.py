"""nn.Module wrappers with flat tensor inputs and outputs, one per exported graph.

The model (Model API, :mod:`reflex_core.models`) returns lists and tuples; ONNX wants a flat,
named signature. Each wrapper fixes the graph's I/O order, which the exporters name with the
contract's names (``past_k_0``, ``prefix_mask``...). Torch is imported by this module: only the
export pipeline imports it.
"""

from __future__ import annotations

import torch
from torch import nn


def euler_times(num_steps: int) -> list[float]:
    """The flow-matching Euler schedule: t = 1 + k*dt with dt = -1/N, for k in 0..N-1.

    Computed in Python floats exactly as ``sample_actions`` does, so the graphs bake in the
    same float32 constants the reference uses.
    """
    dt = -1.0 / num_steps
    return [1.0 + k * dt for k in range(num_steps)]


def kv_names(num_layers: int) -> list[str]:
    """``past_k_0..L-1`` then ``past_v_0..L-1``: the prefix outputs and expert inputs, in order."""
    return [f"past_k_{i}" for i in range(num_layers)] + [f"past_v_{i}" for i in range(num_layers)]


class PrefixGraph(nn.Module):
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


class ExpertGraph(nn.Module):
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

    def velocity(
        self,
        x_t: torch.Tensor,
        t: torch.Tensor,
        state: torch.Tensor | None,
        prefix_mask: torch.Tensor,
        flat_kv: tuple[torch.Tensor, ...],
    ) -> torch.Tensor:
        if state is None:
            state = x_t.new_zeros(x_t.shape[0], self.max_state_dim)
        n = self.num_layers
        return self.model.denoise_step(
            x_t, t, state, prefix_mask, list(flat_kv[:n]), list(flat_kv[n : 2 * n])
        )

    def forward(self, *args: torch.Tensor) -> torch.Tensor:
        # Flat positional signature: (x_t, t, [state,] prefix_mask, *past_k, *past_v).
        if self.uses_state:
            x_t, t, state, prefix_mask, *flat_kv = args
        else:
            x_t, t, prefix_mask, *flat_kv = args
            state = None
        return self.velocity(x_t, t, state, prefix_mask, tuple(flat_kv))


class PolicyGraph(nn.Module):
    """policy (monolithic): the prefix once, then the whole Euler loop over the expert, unrolled.

    Exported directly this writes N copies of the expert (slow to export); the monolithic
    exporter normally builds the graph from the two decomposed graphs instead
    (:mod:`reflex_core.export.compose`) and uses this module as its torch reference.
    """

    def __init__(
        self,
        model: nn.Module,
        num_layers: int,
        max_state_dim: int,
        uses_state: bool,
        num_steps: int,
    ) -> None:
        super().__init__()
        self.prefix = PrefixGraph(model, num_layers)
        self.expert = ExpertGraph(model, num_layers, max_state_dim, uses_state)
        self.num_layers = num_layers
        self.num_steps = num_steps
        self.uses_state = uses_state

    def forward(self, *args: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (images, image_masks, tokens, token_masks, [state,] noise)
        if self.uses_state:
            images, image_masks, tokens, token_masks, state, noise = args
        else:
            images, image_masks, tokens, token_masks, noise = args
            state = None
        outputs = self.prefix(images, image_masks, tokens, token_masks)
        flat_kv = tuple(outputs[: 2 * self.num_layers])
        prefix_mask, features = outputs[-2], outputs[-1]
        dt = -1.0 / self.num_steps
        x = noise
        for t_value in euler_times(self.num_steps):
            t = torch.full((noise.shape[0],), t_value, dtype=torch.float32, device=noise.device)
            x = x + dt * self.expert.velocity(x, t, state, prefix_mask, flat_kv)
        return x, features
