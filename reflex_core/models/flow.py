"""The torch pieces every flow-matching VLA family shares (pi0 / pi0.5, SmolVLA, GR00T...).

A family's model keeps its own module tree (the parameter names of its public checkpoints) and
calls these for what is the same everywhere:

- the flow: :func:`sinusoidal_frequencies` / :func:`sinusoidal_time_embedding` (the flow time
  embedding of pi0 and SmolVLA), :func:`euler_integrate` (the sampling loop over the family's
  ``FlowIO``, the schedule the runtime runs);
- attention written for export: :func:`split_heads`, :func:`rotary_cos_sin`,
  :func:`eager_attention`, :func:`image_token_mask`, :func:`masked_mean` (the pooled
  ``features`` output);
- construction: :func:`eager`, :class:`SiglipTower`, :func:`reset_stock_buffers` (buffers a
  checkpoint does not store, after a meta-device build), :func:`build_model_on`;
- the seam's graphs for a model with a per-layer K/V prefix cache (``prefix_kv`` /
  ``denoise_step``): :func:`kv_names`, :class:`KVPrefixGraph`, :class:`KVStepGraph`, and
  :class:`NamedInputsSampler` (the eager end-to-end reference of any family).

Everything is written for ``torch.onnx.export(dynamo=True)``: no Python branch on tensor values,
masks from tensor ops, a symbolic batch. torch at import: export time only.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import torch
from torch import nn
from transformers.models.llama.modeling_llama import repeat_kv
from transformers.models.siglip.modeling_siglip import SiglipVisionEmbeddings, SiglipVisionModel

from reflex_core.runtime.io_spec import FlowIO

Tensor = torch.Tensor
Model = TypeVar("Model", bound=nn.Module)
Config = TypeVar("Config")

# -- the flow ------------------------------------------------------------------------------------


def sinusoidal_frequencies(width: int, min_period: float, max_period: float) -> Tensor:
    """``width // 2`` angular frequencies ``2 pi / period``, the periods spaced geometrically
    from ``min_period`` to ``max_period`` (openpi / lerobot), computed in float64 and kept in
    float32 (a non-persistent buffer: no checkpoint stores it)."""
    fraction = torch.linspace(0.0, 1.0, width // 2, dtype=torch.float64, device="cpu")
    period = min_period * (max_period / min_period) ** fraction
    return (2 * math.pi / period).to(torch.float32)


def sinusoidal_time_embedding(t: Tensor, frequencies: Tensor) -> Tensor:
    """The flow time (B,) -> (B, 2 * len(frequencies)): ``[sin, cos]`` of ``t * frequencies``.

    lerobot multiplies in float64 (on CPU); we stay in fp32 so the graph has no double kernels
    (ORT CPU lacks some). The angle reaches ~2 pi / min_period = 1571 rad at t=1, where fp32
    rounding is ~1e-4 rad, far below bf16 training noise.
    """
    angles = t.to(torch.float32)[:, None] * frequencies[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1)


def euler_integrate(
    velocity: Callable[[Tensor, Tensor], Tensor], noise: Tensor, num_steps: int, flow: FlowIO
) -> Tensor:
    """Euler-integrate ``dx/dt = velocity(x, t)`` from ``noise`` over ``flow``'s schedule, the
    one the runtime runs (:class:`~reflex_core.runtime.io_spec.FlowIO`: ``t_k = t_start + k
    dt``, ``x += dt * v``; pi0 and SmolVLA go from 1 to 0, GR00T from 0 to 1). ``t`` is float32
    (B,), as the runtime feeds a denoising step."""
    dt = flow.dt(num_steps)
    x = noise
    for t_k in flow.times(num_steps):
        t = torch.full((x.shape[0],), t_k, dtype=torch.float32, device=x.device)
        x = x + dt * velocity(x, t)
    return x


# -- attention -----------------------------------------------------------------------------------


def split_heads(x: Tensor, head_dim: int) -> Tensor:
    """(B, L, H*D) -> (B, H, L, D)."""
    return x.unflatten(-1, (-1, head_dim)).transpose(1, 2)


def rotary_cos_sin(rotary: nn.Module, positions: Tensor) -> tuple[Tensor, Tensor]:
    """cos/sin of a stock rotary embedding module (Gemma, Qwen3, Llama: ``inv_freq`` and
    ``attention_scaling``) at ``positions`` (B, L): its forward, minus the no_grad wrapper."""
    freqs = positions[..., None].to(torch.float32) * rotary.inv_freq.to(torch.float32)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos() * rotary.attention_scaling, emb.sin() * rotary.attention_scaling


def eager_attention(
    q: Tensor, k: Tensor, v: Tensor, visible: Tensor | None, scale: float, mask_value: float
) -> Tensor:
    """Softmax attention. q (B,H,Lq,D); k, v (B,KV,Lk,D) (KV heads repeated to H); visible
    broadcastable to (B,H,Lq,Lk) bool, or None -> (B, Lq, H*D).

    A hidden key gets ``mask_value`` through ``where`` (never added), so a fully masked row (a
    padded query) softmaxes to a finite distribution instead of NaN.
    """
    if k.shape[1] != q.shape[1]:
        n_rep = q.shape[1] // k.shape[1]
        k = repeat_kv(k, n_rep)
        v = repeat_kv(v, n_rep)
    scores = torch.matmul(q, k.transpose(2, 3)) * scale
    if visible is not None:
        scores = torch.where(visible, scores, mask_value)
    probs = torch.softmax(scores, dim=-1)
    return torch.matmul(probs, v).transpose(1, 2).flatten(2)


def image_token_mask(image_masks: Tensor, tokens_per_image: int) -> Tensor:
    """Per camera validity (B, N) -> per image token (B, N * tokens_per_image), camera by
    camera (a missing camera's tokens are masked out)."""
    batch, cameras = image_masks.shape[0], image_masks.shape[1]
    return (
        image_masks.to(torch.bool)[:, :, None]
        .expand(batch, cameras, tokens_per_image)
        .reshape(batch, cameras * tokens_per_image)
    )


def masked_mean(hidden: Tensor, mask: Tensor) -> Tensor:
    """(B, L, D) averaged over the valid tokens of ``mask`` (B, L) -> (B, D): the pooled
    ``features`` a prefix graph outputs (0 for a row without any valid token)."""
    weights = mask.to(hidden.dtype)[..., None]
    return (hidden * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)


# -- construction --------------------------------------------------------------------------------


def eager(config: Config) -> Config:
    """``config`` with eager attention: the plain softmax path exports cleanly (and matches the
    reference implementations numerically)."""
    config._attn_implementation = "eager"  # type: ignore[attr-defined]
    return config


class SiglipTower(nn.Module):
    """Holds a stock SigLIP under ``vision_model`` (the key layout of the pi and GR00T
    checkpoints: ``...vision_tower.vision_model.*``)."""

    def __init__(self, config: Any) -> None:
        super().__init__()
        self.vision_model = SiglipVisionModel(config)


def reset_stock_buffers(model: nn.Module) -> None:
    """(Re)compute the buffers of stock ``transformers`` modules that a checkpoint does not
    store: rotary frequencies, Gemma's embedding scale, SigLIP's position ids. A model built on
    the meta device has them on meta; a family's ``reset_nonpersistent_buffers`` calls this."""
    # An explicit CPU context wins over an enclosing `torch.device("meta")`.
    with torch.device("cpu"):
        for module in model.modules():
            if hasattr(module, "inv_freq") and hasattr(module, "compute_default_rope_parameters"):
                inv_freq, scaling = module.compute_default_rope_parameters(module.config)
                module.inv_freq = inv_freq
                module.original_inv_freq = inv_freq.clone()
                module.attention_scaling = scaling
            elif hasattr(module, "scalar_embed_scale"):  # GemmaTextScaledWordEmbedding
                module.embed_scale = torch.tensor(module.scalar_embed_scale)
            elif isinstance(module, SiglipVisionEmbeddings):
                module.position_ids = torch.arange(module.num_positions).expand((1, -1))


def build_model_on(
    factory: Callable[..., Model], *args: Any, device: str | torch.device | None = None
) -> Model:
    """``factory(*args)`` in eval mode. ``device="meta"`` builds without allocating weights
    (load them with a :mod:`reflex_core.models.weights` loader; the model's
    ``reset_nonpersistent_buffers`` runs here); default CPU with the stock random init."""
    if device is not None and torch.device(device).type == "meta":
        with torch.device("meta"):
            model = factory(*args)
        model.reset_nonpersistent_buffers()  # type: ignore[operator]
    else:
        model = factory(*args)
        if device is not None:
            model = model.to(device)
    return model.eval()


# -- the seam's graphs for a per-layer K/V cache -------------------------------------------------


def kv_names(num_layers: int) -> list[str]:
    """``past_k_0..L-1`` then ``past_v_0..L-1``: the prefix outputs and step inputs, in order."""
    return [f"past_k_{i}" for i in range(num_layers)] + [f"past_v_{i}" for i in range(num_layers)]


class KVPrefixGraph(nn.Module):
    """vlm_prefix: ``model.prefix_kv(*inputs) -> (past_k, past_v, prefix_mask, features)``
    flattened to ``(*past_k, *past_v, prefix_mask, features)`` (outputs
    ``[*kv_names(L), "prefix_mask", "features"]``)."""

    def __init__(self, model: nn.Module, num_layers: int) -> None:
        super().__init__()
        self.model = model
        self.num_layers = num_layers

    def forward(self, *inputs: Tensor) -> tuple[Tensor, ...]:
        past_k, past_v, prefix_mask, features = self.model.prefix_kv(*inputs)
        if len(past_k) != self.num_layers or len(past_v) != self.num_layers:
            raise ValueError(
                f"prefix_kv returned {len(past_k)}/{len(past_v)} K/V layers, "
                f"expected {self.num_layers}"
            )
        return (*past_k, *past_v, prefix_mask, features)


class KVStepGraph(nn.Module):
    """expert_denoise: one velocity evaluation against the prefix cache. Flat positional
    signature ``(*head, *past_k, *past_v)`` -> ``model.denoise_step(*step_args(*head),
    past_k, past_v)``; ``head`` is e.g. ``(x_t, t, prefix_mask)`` (override
    :meth:`step_args` to adapt it to the model's ``denoise_step``)."""

    def __init__(self, model: nn.Module, num_layers: int) -> None:
        super().__init__()
        self.model = model
        self.num_layers = num_layers

    def step_args(self, *head: Tensor) -> Sequence[Tensor]:
        return head

    def forward(self, *args: Tensor) -> Tensor:
        n = self.num_layers
        head, flat_kv = args[: len(args) - 2 * n], args[len(args) - 2 * n :]
        return self.model.denoise_step(
            *self.step_args(*head), list(flat_kv[:n]), list(flat_kv[n : 2 * n])
        )


class NamedInputsSampler:
    """The eager end-to-end reference of :class:`~reflex_core.models.family.FlowGraphs`:
    ``sample(*(inputs[n] for n in names), noise, num_steps, *extra)`` without autograd."""

    def __init__(self, sample: Callable[..., Tensor], names: Sequence[str], *extra: Any) -> None:
        self.sample = sample
        self.names = tuple(names)
        self.extra = extra

    def __call__(self, inputs: Mapping[str, Tensor], noise: Tensor, num_steps: int) -> Tensor:
        with torch.no_grad():
            return self.sample(*(inputs[n] for n in self.names), noise, num_steps, *self.extra)
