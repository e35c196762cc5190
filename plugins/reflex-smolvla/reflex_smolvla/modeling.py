"""SmolVLA (lerobot's ``VLAFlowMatching``) on stock ``transformers`` building blocks.

The module tree and parameter names are lerobot's (the ``model.`` sub-module of a
``SmolVLAPolicy``), so a checkpoint's ``state_dict`` loads by name:

- ``vlm_with_expert.vlm.model.vision_model`` — ``SmolVLMVisionTransformer`` (SigLIP)
- ``vlm_with_expert.vlm.model.connector`` — ``SmolVLMConnector`` (pixel shuffle + projection)
- ``vlm_with_expert.vlm.model.text_model`` — a ``LlamaModel`` with ``num_vlm_layers`` layers
- ``vlm_with_expert.vlm.lm_head`` — kept for loading, unused
- ``vlm_with_expert.lm_expert`` — a ``LlamaModel`` without ``embed_tokens``; its cross-attention
  layers' ``k_proj`` / ``v_proj`` read the VLM's K/V (input ``kv_heads * head_dim``)
- ``state_proj``, ``action_in_proj``, ``action_out_proj``, ``action_time_mlp_{in,out}``

The math follows lerobot 0.4.4's ``smolvlm_with_expert.py`` / ``modeling_smolvla.py``: image
and language embeddings scaled by ``sqrt(vlm width)``, the state projected into ONE prefix token
that image and language tokens cannot see, RoPE from lerobot's own ``apply_rope`` (wavelength
10000, positions = cumulative valid tokens), the per-layer cache holds post-RoPE keys and values
(B, P, kv_heads, head_dim), a causal action chunk, flow matching from t=1 to t=0.

Written for ``torch.onnx.export(dynamo=True)``: no Python branch on tensor values, masks from
tensor ops, a symbolic batch, no in-place update of an input; the data-dependent patch position
ids of SmolVLM's vision embeddings are a constant for the configured image size (computed once
with the stock algorithm).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from transformers import LlamaConfig, LlamaModel
from transformers.models.smolvlm.configuration_smolvlm import SmolVLMConfig, SmolVLMVisionConfig
from transformers.models.smolvlm.modeling_smolvlm import (
    SmolVLMConnector,
    SmolVLMVisionTransformer,
)

from reflex_core.models.flow import (
    build_model_on,
    eager,
    euler_integrate,
    image_token_mask,
    masked_mean,
    sinusoidal_frequencies,
    sinusoidal_time_embedding,
)
from reflex_core.runtime.io_spec import FlowIO
from reflex_smolvla.config import DEFAULT_PATCH_POSITIONS, PATCH_POSITION_RULES, SmolVLAArch

Tensor = torch.Tensor
ROPE_WAVELENGTH = 10_000


def _llama_config(text: Mapping[str, Any]) -> LlamaConfig:
    fields = {k: v for k, v in text.items() if k not in ("model_type", "architectures")}
    return eager(LlamaConfig(**fields))


def _smolvlm_config(vlm: Mapping[str, Any]) -> SmolVLMConfig:
    vision = {k: v for k, v in vlm["vision_config"].items() if k != "model_type"}
    vision_config = eager(SmolVLMVisionConfig(**vision))
    config = SmolVLMConfig(
        vision_config=vision_config,
        text_config=_llama_config(vlm["text_config"]),
        scale_factor=int(vlm["scale_factor"]),
        tie_word_embeddings=False,
    )
    config.vision_config._attn_implementation = "eager"
    return config


class SmolVLMBody(nn.Module):
    """``vlm.model``: vision tower, connector and the truncated Llama text model."""

    def __init__(self, config: SmolVLMConfig) -> None:
        super().__init__()
        self.vision_model = SmolVLMVisionTransformer(config.vision_config)
        self.connector = SmolVLMConnector(config)
        self.text_model = LlamaModel(config.text_config)
        # RoPE here is lerobot's own apply_rope; the stock rotary module only holds unsaved
        # buffers.
        self.text_model.rotary_emb = None


class SmolVLM(nn.Module):
    """``vlm``: the body plus the (unused, but saved) ``lm_head``."""

    def __init__(self, config: SmolVLMConfig) -> None:
        super().__init__()
        self.model = SmolVLMBody(config)
        text = config.text_config
        self.lm_head = nn.Linear(text.hidden_size, text.vocab_size, bias=False)


class SmolVLMWithExpert(nn.Module):
    """``vlm_with_expert``: the VLM and the action expert side by side."""

    def __init__(self, arch: SmolVLAArch) -> None:
        super().__init__()
        config = _smolvlm_config(arch.vlm_config)
        self.vlm = SmolVLM(config)
        expert_config = _llama_config(arch.expert_text_config)
        expert = LlamaModel(expert_config)
        kv_width = arch.num_kv_heads * arch.head_dim
        expert_kv_width = expert_config.num_key_value_heads * expert_config.head_dim
        for j in arch.expert_cross_layers:
            attn = expert.layers[j].self_attn
            attn.k_proj = nn.Linear(kv_width, expert_kv_width, bias=expert_config.attention_bias)
            attn.v_proj = nn.Linear(kv_width, expert_kv_width, bias=expert_config.attention_bias)
        expert.embed_tokens = None
        expert.rotary_emb = None
        self.lm_expert = expert


def apply_rope(x: Tensor, positions: Tensor, timescale: Tensor) -> Tensor:
    """lerobot's RoPE: x (B, L, H, D), positions (B, L) -> x rotated (first/second half)."""
    half = x.shape[-1] // 2
    radians = positions[..., None].to(torch.float32) / timescale[None, None, :]
    radians = radians[..., None, :]
    sin, cos = torch.sin(radians), torch.cos(radians)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], dim=-1)


class SmolVLAFlowModel(nn.Module):
    """A SmolVLA policy: VLM prefix (images, prompt, state) and a flow-matching action expert.

    All tensors are batch-first fp32 (token ids int64, masks bool). Shapes: B batch, N cameras,
    L prompt tokens, P = N * tokens_per_image + L + 1 prefix tokens, T = chunk_size,
    A = max_action_dim, S = max_state_dim.
    """

    def __init__(self, arch: SmolVLAArch) -> None:
        super().__init__()
        self.arch = arch
        width = arch.vlm_width
        expert_width = arch.expert_width
        self.vlm_with_expert = SmolVLMWithExpert(arch)
        self.state_proj = nn.Linear(arch.max_state_dim, width)
        self.action_in_proj = nn.Linear(arch.max_action_dim, expert_width)
        self.action_out_proj = nn.Linear(expert_width, arch.max_action_dim)
        self.action_time_mlp_in = nn.Linear(2 * expert_width, expert_width)
        self.action_time_mlp_out = nn.Linear(expert_width, expert_width)
        self.register_buffer("time_frequencies", torch.empty(expert_width // 2), persistent=False)
        self.register_buffer("rope_timescale", torch.empty(arch.head_dim // 2), persistent=False)
        side = arch.image_height // int(arch.vision["patch_size"])
        self.register_buffer(
            "patch_position_ids", torch.empty(side * side, dtype=torch.int64), persistent=False
        )
        self.reset_nonpersistent_buffers()

    # -- construction helpers ------------------------------------------------------------------

    def reset_nonpersistent_buffers(self) -> None:
        """(Re)compute every buffer a checkpoint does not store (after a meta-device build)."""
        arch = self.arch
        with torch.device("cpu"):
            # lerobot: period = min * (max/min)^linspace(0,1) in float64, 2*pi/period.
            self.time_frequencies = sinusoidal_frequencies(
                arch.expert_width, arch.min_period, arch.max_period
            )
            # lerobot apply_rope: timescale = wavelength ** ((2/D) * arange(D/2)) in fp32.
            head_dim = arch.head_dim
            exponents = (2.0 / head_dim) * torch.arange(head_dim // 2, dtype=torch.float32)
            self.rope_timescale = ROPE_WAVELENGTH**exponents
            self.patch_position_ids = _patch_position_ids(
                arch.image_height // int(arch.vision["patch_size"]),
                int(arch.vision["image_size"]) // int(arch.vision["patch_size"]),
                arch.patch_positions,
            )

    # -- shortcuts --------------------------------------------------------------------------------

    @property
    def vlm_body(self) -> SmolVLMBody:
        return self.vlm_with_expert.vlm.model

    @property
    def text_model(self) -> LlamaModel:
        return self.vlm_with_expert.vlm.model.text_model

    @property
    def expert(self) -> LlamaModel:
        return self.vlm_with_expert.lm_expert

    # -- attention --------------------------------------------------------------------------------

    def _attend(self, q: Tensor, k: Tensor, v: Tensor, visible: Tensor) -> Tensor:
        """lerobot's eager attention. q (B,Lq,H,D); k, v (B,Lk,KV,D); visible (B,Lq,Lk) bool
        -> (B, Lq, H*D)."""
        arch = self.arch
        groups = arch.num_heads // arch.num_kv_heads
        # Query head h reads KV head h // groups (lerobot expands then reshapes).
        k = k[:, :, :, None, :].expand(-1, -1, -1, groups, -1).flatten(2, 3)
        v = v[:, :, :, None, :].expand(-1, -1, -1, groups, -1).flatten(2, 3)
        scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1))
        scores = scores * (arch.head_dim**-0.5)
        scores = torch.where(visible[:, None, :, :], scores, torch.finfo(torch.float32).min)
        probs = torch.softmax(scores, dim=-1)
        out = torch.matmul(probs, v.transpose(1, 2))
        return out.transpose(1, 2).flatten(2)

    # -- prefix -----------------------------------------------------------------------------------

    def embed_images(self, pixels: Tensor) -> Tensor:
        """(K, 3, H, W) in [-1, 1] -> (K, tokens_per_image, vlm width), before lerobot's
        ``sqrt(width)`` scaling."""
        vision = self.vlm_body.vision_model
        embeddings = vision.embeddings
        patches = embeddings.patch_embedding(pixels).flatten(2).transpose(1, 2)
        hidden = patches + embeddings.position_embedding(self.patch_position_ids)[None]
        for layer in vision.encoder.layers:
            hidden = layer(hidden, None)
        hidden = vision.post_layernorm(hidden)
        return self.vlm_body.connector(hidden)

    def embed_prefix(
        self,
        images: Tensor,
        image_masks: Tensor,
        tokens: Tensor,
        token_masks: Tensor,
        state: Tensor,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Image tokens (camera by camera), prompt tokens, then one state token.

        :return: embeddings (B, P, W), pad mask (B, P) bool, attention (B, P, P) bool.
        """
        batch, cameras = images.shape[0], images.shape[1]
        width = self.arch.vlm_width
        image_tokens = self.embed_images(images.flatten(0, 1))
        per_image = image_tokens.shape[1]
        image_tokens = image_tokens * (width**0.5)
        image_tokens = image_tokens.reshape(batch, cameras * per_image, width)
        image_pad = image_token_mask(image_masks, per_image)
        text = self.text_model.embed_tokens(tokens) * math.sqrt(width)
        state_token = self.state_proj(state.to(torch.float32))[:, None, :]
        embeddings = torch.cat([image_tokens, text, state_token], dim=1)
        pad = torch.cat(
            [
                image_pad,
                token_masks.to(torch.bool),
                torch.ones_like(token_masks[:, :1], dtype=torch.bool),
            ],
            dim=1,
        )
        # Images and language attend to each other (block 0); the state token (block 1) sees
        # them all, they do not see it (big_vision cumulative ar-mask).
        length = embeddings.shape[1]
        blocks = (torch.arange(length, device=embeddings.device) == length - 1).to(torch.int64)
        attention = (blocks[None, :] <= blocks[:, None])[None] & pad[:, None, :] & pad[:, :, None]
        return embeddings, pad, attention

    def prefix_kv(
        self,
        images: Tensor,
        image_masks: Tensor,
        tokens: Tensor,
        token_masks: Tensor,
        state: Tensor,
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
        """Run the VLM over the prefix once.

        :param images: (B, N, 3, H, W) fp32 in [-1, 1]; a missing camera is masked out.
        :param image_masks: (B, N) bool, False for a missing camera.
        :param tokens: (B, L) int64 prompt token ids (right-padded).
        :param token_masks: (B, L) bool, False for padding.
        :param state: (B, S) normalized, zero-padded state.
        :return: ``(past_k, past_v, prefix_mask, features)``: per VLM layer the post-RoPE keys
            and the values (B, P, kv_heads, head_dim), as lerobot caches them; prefix_mask
            (B, P) bool; features (B, vlm width): the final-normed prefix hidden state averaged
            over the valid tokens.
        """
        hidden, pad, visible = self.embed_prefix(images, image_masks, tokens, token_masks, state)
        positions = torch.cumsum(pad.to(torch.int64), dim=1) - 1
        head_dim = self.arch.head_dim
        past_k: list[Tensor] = []
        past_v: list[Tensor] = []
        for layer in self.text_model.layers:
            attn = layer.self_attn
            normed = layer.input_layernorm(hidden)
            q = attn.q_proj(normed).unflatten(-1, (-1, head_dim))
            k = attn.k_proj(normed).unflatten(-1, (-1, head_dim))
            v = attn.v_proj(normed).unflatten(-1, (-1, head_dim))
            q = apply_rope(q, positions, self.rope_timescale)
            k = apply_rope(k, positions, self.rope_timescale)
            past_k.append(k)
            past_v.append(v)
            hidden = attn.o_proj(self._attend(q, k, v, visible)) + hidden
            hidden = layer.mlp(layer.post_attention_layernorm(hidden)) + hidden
        return past_k, past_v, pad, masked_mean(self.text_model.norm(hidden), pad)

    # -- expert -----------------------------------------------------------------------------------

    def time_embedding(self, t: Tensor) -> Tensor:
        """Sinusoidal embedding of the flow time (B,) -> (B, expert width): [sin, cos] (fp32; see
        :func:`~reflex_core.models.flow.sinusoidal_time_embedding`)."""
        return sinusoidal_time_embedding(t, self.time_frequencies)

    def embed_suffix(self, x_t: Tensor, t: Tensor) -> Tensor:
        """The expert's input tokens: action + time fused by an MLP (B, T, expert width)."""
        actions = self.action_in_proj(x_t)
        time = self.time_embedding(t)[:, None, :].expand_as(actions)
        fused = self.action_time_mlp_in(torch.cat([actions, time], dim=2))
        return self.action_time_mlp_out(F.silu(fused))

    def denoise_step(
        self,
        x_t: Tensor,
        t: Tensor,
        prefix_mask: Tensor,
        past_k: list[Tensor],
        past_v: list[Tensor],
    ) -> Tensor:
        """One expert evaluation: the flow velocity at ``(x_t, t)`` given the prefix cache.

        :param x_t: (B, T, A) the noisy action chunk.
        :param t: (B,) flow time in [0, 1] (1 = pure noise).
        :param prefix_mask: (B, P) bool from :meth:`prefix_kv`.
        :param past_k: per VLM layer (B, P, kv_heads, head_dim) from :meth:`prefix_kv`.
        :param past_v: same.
        :return: velocity (B, T, A).
        """
        arch = self.arch
        head_dim = arch.head_dim
        hidden = self.embed_suffix(x_t, t)
        batch, length = hidden.shape[0], hidden.shape[1]
        prefix_mask = prefix_mask.to(torch.bool)
        prefix_len = prefix_mask.shape[1]
        steps = torch.arange(length, dtype=torch.int64, device=hidden.device)
        causal = steps[None, :] <= steps[:, None]
        prefix_visible = prefix_mask[:, None, :].expand(batch, length, prefix_len)
        visible = torch.cat([prefix_visible, causal[None].expand(batch, length, length)], dim=2)
        # Self-attention steps continue the prefix positions; cross-attention queries start at 0.
        absolute = prefix_mask.to(torch.int64).sum(dim=1, keepdim=True) + steps[None]
        relative = absolute - absolute.min(dim=1, keepdim=True).values

        for i, j in enumerate(arch.expert_layer_of):
            if j is None:
                continue
            layer = self.expert.layers[j]
            attn = layer.self_attn
            normed = layer.input_layernorm(hidden)
            q = attn.q_proj(normed).unflatten(-1, (-1, head_dim))
            if arch.cross_attn[i]:
                q = apply_rope(q, relative, self.rope_timescale)
                keys = attn.k_proj(past_k[i].flatten(2)).unflatten(-1, (-1, head_dim))
                values = attn.v_proj(past_v[i].flatten(2)).unflatten(-1, (-1, head_dim))
                out = self._attend(q, keys, values, prefix_visible)
            else:
                k = attn.k_proj(normed).unflatten(-1, (-1, head_dim))
                v = attn.v_proj(normed).unflatten(-1, (-1, head_dim))
                q = apply_rope(q, absolute, self.rope_timescale)
                k = apply_rope(k, absolute, self.rope_timescale)
                keys = torch.cat([past_k[i], k], dim=1)
                values = torch.cat([past_v[i], v], dim=1)
                out = self._attend(q, keys, values, visible)
            hidden = attn.o_proj(out) + hidden
            hidden = layer.mlp(layer.post_attention_layernorm(hidden)) + hidden
        final = self.expert.norm(hidden)
        return self.action_out_proj(final[:, -arch.chunk_size :])

    def sample_actions(
        self,
        images: Tensor,
        image_masks: Tensor,
        tokens: Tensor,
        token_masks: Tensor,
        state: Tensor,
        noise: Tensor,
        num_steps: int,
    ) -> Tensor:
        """Euler-integrate the flow from ``noise`` (t=1) to an action chunk (t=0): the prefix
        once, then ``num_steps`` calls of :meth:`denoise_step` with ``dt = -1/num_steps``.

        :return: (B, T, A) actions in normalized model units (all A dims).
        """
        past_k, past_v, prefix_mask, _ = self.prefix_kv(
            images, image_masks, tokens, token_masks, state
        )
        return euler_integrate(
            lambda x_t, t: self.denoise_step(x_t, t, prefix_mask, past_k, past_v),
            noise,
            num_steps,
            FlowIO(t_start=1.0, t_end=0.0),
        )


def _patch_position_ids(
    patches_per_side: int, positions_per_side: int, rule: str = DEFAULT_PATCH_POSITIONS
) -> Tensor:
    """The position ids SmolVLM's vision embeddings compute for a full (unpadded) grid of
    ``patches_per_side``^2 patches against a ``positions_per_side``^2 table, by ``rule`` (see
    :data:`PATCH_POSITION_RULES`; the stock algorithm of that release, run once)."""
    boundaries = torch.arange(1 / positions_per_side, 1.0, 1 / positions_per_side)
    count = torch.tensor(patches_per_side)
    indices = torch.arange(patches_per_side, dtype=torch.float32)
    if rule == "transformers-4.57":
        coords = indices / count * (1 - 1e-6)
    elif rule == "transformers-5":
        coords = torch.clamp(indices * (1.0 / count), max=(1.0 - 1e-6))
    else:
        raise ValueError(f"unknown patch position rule {rule!r}; known: {PATCH_POSITION_RULES}")
    buckets = torch.bucketize(coords, boundaries, right=True)
    return (buckets[:, None] * positions_per_side + buckets[None, :]).reshape(-1)


def build_model(arch: SmolVLAArch, device: str | torch.device | None = None) -> SmolVLAFlowModel:
    """Build an fp32 :class:`SmolVLAFlowModel` in eval mode.

    :param device: ``"meta"`` builds without allocating weights (then load them with
        :func:`reflex_smolvla.checkpoint.load_weights`); default CPU with the stock init.
    """
    return build_model_on(SmolVLAFlowModel, arch, device=device)
