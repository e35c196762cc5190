"""pi0 / pi0.5 flow-matching policies on stock ``transformers`` building blocks.

The module tree and parameter names follow lerobot's ``PI0Pytorch`` / ``PI05Pytorch`` (the
``model.`` sub-module of a lerobot policy), so a checkpoint's ``state_dict`` loads by name:

- ``paligemma_with_expert.paligemma.model.vision_tower.vision_model`` — SigLIP (no pooling head)
- ``paligemma_with_expert.paligemma.model.multi_modal_projector`` — PaliGemma's projector
- ``paligemma_with_expert.paligemma.model.language_model`` — a ``GemmaModel`` (the VLM)
- ``paligemma_with_expert.paligemma.lm_head`` — kept for loading, unused
- ``paligemma_with_expert.gemma_expert`` — a ``GemmaForCausalLM`` without ``embed_tokens``
  (pi0.5 swaps its RMSNorms for :class:`AdaRMSNorm`)
- ``action_in_proj``, ``action_out_proj``; pi0: ``state_proj``, ``action_time_mlp_{in,out}``;
  pi0.5: ``time_mlp_{in,out}``

The per-layer joint attention needs control the stock forward methods do not give, so the
layer loops live here and reuse the stock sub-modules (projections, MLPs, norms, rotary
frequencies). Everything is written for ``torch.onnx.export(dynamo=True)``: no Python branch on
tensor values, no in-place update of an input, masks from tensor ops, a symbolic batch size.
"""

from __future__ import annotations

import math
from types import SimpleNamespace

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from transformers import GemmaConfig, SiglipVisionConfig
from transformers.models.gemma.modeling_gemma import (
    GemmaForCausalLM,
    GemmaModel,
    apply_rotary_pos_emb,
)
from transformers.models.paligemma.modeling_paligemma import PaliGemmaMultiModalProjector
from transformers.models.siglip.modeling_siglip import SiglipVisionModel

from reflex_core.models.config import GemmaSpec, PiArchitecture, VisionSpec
from reflex_core.models.flow import (
    SiglipTower,
    build_model_on,
    eager,
    eager_attention,
    euler_integrate,
    image_token_mask,
    masked_mean,
    reset_stock_buffers,
    rotary_cos_sin,
    sinusoidal_frequencies,
    sinusoidal_time_embedding,
    split_heads,
)
from reflex_core.runtime.io_spec import FlowIO

# openpi's additive mask value. We use it with `where`, so a fully masked row (a padded query)
# softmaxes to a uniform, finite distribution instead of NaN.
MASK_VALUE = -2.3819763e38

Tensor = torch.Tensor


class AdaRMSNorm(nn.Module):
    """pi0.5's adaptive RMSNorm: ``dense(cond)`` gives (scale, shift, gate).

    ``forward(x, cond) -> (rms(x) * (1 + scale) + shift, gate)``; the caller applies the gate to
    the residual branch (``x + y * gate``). There is no ``weight`` (lerobot ``PiGemmaRMSNorm``
    with ``cond_dim`` set).
    """

    def __init__(self, dim: int, cond_dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.dim = dim
        self.eps = eps
        self.dense = nn.Linear(cond_dim, 3 * dim, bias=True)

    def forward(self, x: Tensor, cond: Tensor) -> tuple[Tensor, Tensor]:
        normed = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        modulation = self.dense(cond)
        if x.dim() == 3:
            modulation = modulation.unsqueeze(1)
        scale, shift, gate = modulation.chunk(3, dim=-1)
        return normed * (1 + scale) + shift, gate

    def extra_repr(self) -> str:
        return f"dim={self.dim}, eps={self.eps}, adaptive"


def _gemma_config(spec: GemmaSpec, arch: PiArchitecture) -> GemmaConfig:
    return GemmaConfig(
        vocab_size=arch.vocab_size,
        hidden_size=spec.width,
        intermediate_size=spec.mlp_dim,
        num_hidden_layers=spec.depth,
        num_attention_heads=spec.num_heads,
        num_key_value_heads=spec.num_kv_heads,
        head_dim=spec.head_dim,
        hidden_activation="gelu_pytorch_tanh",
        rms_norm_eps=arch.rms_norm_eps,
        rope_parameters={"rope_type": "default", "rope_theta": arch.rope_theta},
        tie_word_embeddings=False,
        pad_token_id=0,
    )


def _siglip_config(spec: VisionSpec, arch: PiArchitecture) -> SiglipVisionConfig:
    # Eager attention: the plain softmax path exports cleanly and matches openpi numerically.
    return eager(
        SiglipVisionConfig(
            hidden_size=spec.width,
            intermediate_size=spec.mlp_dim,
            num_hidden_layers=spec.depth,
            num_attention_heads=spec.num_heads,
            num_channels=3,
            image_size=spec.image_size,
            patch_size=spec.patch_size,
            hidden_act="gelu_pytorch_tanh",
            layer_norm_eps=arch.layer_norm_eps,
            vision_use_head=False,
        )
    )


class PaliGemmaBody(nn.Module):
    """``paligemma.model``: vision tower, projector and the Gemma language model."""

    def __init__(self, arch: PiArchitecture) -> None:
        super().__init__()
        self.vision_tower = SiglipTower(_siglip_config(arch.vision, arch))
        # The stock projector reads only these two sizes from its config.
        projector_config = SimpleNamespace(
            vision_config=SimpleNamespace(
                hidden_size=arch.vision.width, projection_dim=arch.vlm.width
            )
        )
        self.multi_modal_projector = PaliGemmaMultiModalProjector(projector_config)
        self.language_model = GemmaModel(_gemma_config(arch.vlm, arch))


class PaliGemma(nn.Module):
    """``paligemma``: the body plus the (unused, but saved) ``lm_head``."""

    def __init__(self, arch: PiArchitecture) -> None:
        super().__init__()
        self.model = PaliGemmaBody(arch)
        self.lm_head = nn.Linear(arch.vlm.width, arch.vocab_size, bias=False)


class PaliGemmaWithExpert(nn.Module):
    """``paligemma_with_expert``: the VLM and the action expert side by side."""

    def __init__(self, arch: PiArchitecture) -> None:
        super().__init__()
        self.paligemma = PaliGemma(arch)
        expert = GemmaForCausalLM(_gemma_config(arch.expert, arch))
        # The expert reads embeddings from the action projections, never token ids.
        expert.model.embed_tokens = None
        if arch.family == "pi05":
            width = arch.expert.width
            eps = arch.rms_norm_eps
            for layer in expert.model.layers:
                layer.input_layernorm = AdaRMSNorm(width, width, eps)
                layer.post_attention_layernorm = AdaRMSNorm(width, width, eps)
            expert.model.norm = AdaRMSNorm(width, width, eps)
        self.gemma_expert = expert


def _norm(module: nn.Module, x: Tensor, cond: Tensor | None) -> tuple[Tensor, Tensor | None]:
    if isinstance(module, AdaRMSNorm):
        assert cond is not None
        return module(x, cond)
    return module(x), None


def _gated(residual: Tensor, update: Tensor, gate: Tensor | None) -> Tensor:
    return residual + update if gate is None else residual + update * gate


def _attend(q: Tensor, k: Tensor, v: Tensor, visible: Tensor, scaling: float) -> Tensor:
    """Eager attention. q (B,H,Lq,D); k, v (B,KV,Lk,D); visible (B,1,Lq,Lk) bool -> (B,Lq,H*D)."""
    return eager_attention(q, k, v, visible, scaling, MASK_VALUE)


class PiFlowModel(nn.Module):
    """A pi0 or pi0.5 policy: VLM prefix (images + prompt) and a flow-matching action expert.

    All tensors are batch-first fp32 (token ids int64, masks bool). Shapes: B batch, N cameras,
    L prompt tokens, P = N * tokens_per_image + L prefix tokens, T = chunk_size,
    A = max_action_dim, S = max_state_dim.
    """

    def __init__(self, arch: PiArchitecture) -> None:
        super().__init__()
        self.arch = arch
        self.family = arch.family
        expert_width = arch.expert.width
        self.paligemma_with_expert = PaliGemmaWithExpert(arch)
        self.action_in_proj = nn.Linear(arch.max_action_dim, expert_width)
        self.action_out_proj = nn.Linear(expert_width, arch.max_action_dim)
        if arch.family == "pi05":
            self.time_mlp_in = nn.Linear(expert_width, expert_width)
            self.time_mlp_out = nn.Linear(expert_width, expert_width)
        else:
            self.state_proj = nn.Linear(arch.max_state_dim, expert_width)
            self.action_time_mlp_in = nn.Linear(2 * expert_width, expert_width)
            self.action_time_mlp_out = nn.Linear(expert_width, expert_width)
        self.register_buffer("time_frequencies", torch.empty(expert_width // 2), persistent=False)
        self.reset_nonpersistent_buffers()

    # -- construction helpers ------------------------------------------------------------------

    def reset_nonpersistent_buffers(self) -> None:
        """(Re)compute every buffer a checkpoint does not store.

        A model built on the meta device (to load a multi-GB checkpoint without a second copy)
        has these on meta too; the loader calls this after assigning the weights.
        """
        # openpi: period = min * (max/min)^linspace(0,1), in float64; kept in fp32.
        self.time_frequencies = sinusoidal_frequencies(
            self.arch.expert.width, self.arch.min_period, self.arch.max_period
        )
        reset_stock_buffers(self)

    # -- shortcuts --------------------------------------------------------------------------------

    @property
    def vision_model(self) -> SiglipVisionModel:
        return self.paligemma_with_expert.paligemma.model.vision_tower.vision_model

    @property
    def language_model(self) -> GemmaModel:
        return self.paligemma_with_expert.paligemma.model.language_model

    @property
    def expert_model(self) -> nn.Module:
        return self.paligemma_with_expert.gemma_expert.model

    # -- prefix -----------------------------------------------------------------------------------

    def embed_images(self, pixels: Tensor) -> Tensor:
        """(K, 3, H, W) in [-1, 1] -> (K, tokens_per_image, vlm width) projector output."""
        vision = self.vision_model
        hidden = vision.embeddings(pixels)
        for layer in vision.encoder.layers:
            hidden = layer(hidden, None)
        hidden = vision.post_layernorm(hidden)
        # openpi feeds the projector output as is (no 1/sqrt(width) as in HF PaliGemma).
        return self.paligemma_with_expert.paligemma.model.multi_modal_projector(hidden)

    def embed_prefix(
        self, images: Tensor, image_masks: Tensor, tokens: Tensor, token_masks: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Image tokens (camera by camera) then prompt tokens -> (embeddings (B,P,W), pad (B,P))."""
        batch, cameras = images.shape[0], images.shape[1]
        image_tokens = self.embed_images(images.flatten(0, 1))
        per_image = image_tokens.shape[1]
        image_tokens = image_tokens.reshape(batch, cameras * per_image, image_tokens.shape[-1])
        image_pad = image_token_mask(image_masks, per_image)
        weight = self.language_model.embed_tokens.weight
        # Gemma scales token embeddings by sqrt(width) (openpi does it explicitly).
        text = F.embedding(tokens, weight) * math.sqrt(weight.shape[-1])
        embeddings = torch.cat([image_tokens, text], dim=1)
        pad = torch.cat([image_pad, token_masks.to(torch.bool)], dim=1)
        return embeddings, pad

    def prefix_kv(
        self, images: Tensor, image_masks: Tensor, tokens: Tensor, token_masks: Tensor
    ) -> tuple[list[Tensor], list[Tensor], Tensor, Tensor]:
        """Run the VLM over the prefix once.

        :param images: (B, N, 3, H, W) fp32 in [-1, 1]; a missing camera is masked out.
        :param image_masks: (B, N) bool, False for a missing camera.
        :param tokens: (B, L) int64 prompt token ids (right-padded).
        :param token_masks: (B, L) bool, False for padding.
        :return: ``(past_k, past_v, prefix_mask, features)``: per layer K and V
            (B, kv_heads, P, head_dim) with RoPE applied to K; prefix_mask (B, P) bool (valid
            prefix tokens); features (B, vlm width) the mean of the final-normed prefix hidden
            state over the valid tokens.
        """
        hidden, pad = self.embed_prefix(images, image_masks, tokens, token_masks)
        # Prefix attention is bidirectional among valid tokens (all ar-mask 0).
        visible = (pad[:, None, :] & pad[:, :, None])[:, None, :, :]
        positions = torch.cumsum(pad.to(torch.int64), dim=1) - 1
        lm = self.language_model
        cos, sin = rotary_cos_sin(lm.rotary_emb, positions)
        past_k: list[Tensor] = []
        past_v: list[Tensor] = []
        for layer in lm.layers:
            attn = layer.self_attn
            normed = layer.input_layernorm(hidden)
            q = split_heads(attn.q_proj(normed), attn.head_dim)
            k = split_heads(attn.k_proj(normed), attn.head_dim)
            v = split_heads(attn.v_proj(normed), attn.head_dim)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            past_k.append(k)
            past_v.append(v)
            out = _attend(q, k, v, visible, attn.scaling)
            hidden = hidden + attn.o_proj(out)
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        return past_k, past_v, pad, masked_mean(lm.norm(hidden), pad)

    # -- expert -----------------------------------------------------------------------------------

    def time_embedding(self, t: Tensor) -> Tensor:
        """Sinusoidal embedding of the flow time (B,) -> (B, expert width): [sin, cos] (fp32; see
        :func:`~reflex_core.models.flow.sinusoidal_time_embedding`)."""
        return sinusoidal_time_embedding(t, self.time_frequencies)

    def embed_suffix(
        self, x_t: Tensor, t: Tensor, state: Tensor
    ) -> tuple[Tensor, Tensor | None, list[int]]:
        """Expert input tokens, the adaRMS condition (pi0.5) and the suffix ar-mask."""
        time = self.time_embedding(t)
        actions = self.action_in_proj(x_t)
        chunk = x_t.shape[1]
        if self.family == "pi05":
            cond = F.silu(self.time_mlp_out(F.silu(self.time_mlp_in(time))))
            return actions, cond, [1] + [0] * (chunk - 1)
        fused = torch.cat([actions, time[:, None, :].expand_as(actions)], dim=-1)
        fused = self.action_time_mlp_out(F.silu(self.action_time_mlp_in(fused)))
        state_token = self.state_proj(state.to(torch.float32))[:, None, :]
        return torch.cat([state_token, fused], dim=1), None, [1, 1] + [0] * (chunk - 1)

    def denoise_step(
        self,
        x_t: Tensor,
        t: Tensor,
        state: Tensor,
        prefix_mask: Tensor,
        past_k: list[Tensor],
        past_v: list[Tensor],
    ) -> Tensor:
        """One expert evaluation: the flow velocity at ``(x_t, t)`` given the prefix KV cache.

        :param x_t: (B, T, A) the noisy action chunk.
        :param t: (B,) flow time in [0, 1] (1 = pure noise).
        :param state: (B, S) normalized, zero-padded state; pi0 embeds it through
            ``state_proj``, pi0.5 ignores it (its state is in the prompt).
        :param prefix_mask: (B, P) bool from :meth:`prefix_kv`.
        :param past_k: per layer (B, kv_heads, P, head_dim) from :meth:`prefix_kv`.
        :param past_v: same.
        :return: velocity (B, T, A).
        """
        suffix, cond, ar = self.embed_suffix(x_t, t, state)
        batch, length = suffix.shape[0], suffix.shape[1]
        prefix_len = prefix_mask.shape[1]
        cumulative = torch.cumsum(torch.tensor(ar, dtype=torch.int64, device=suffix.device), 0)
        # Key j is visible to query i iff cumsum(ar)[j] <= cumsum(ar)[i] (big_vision masks).
        suffix_visible = cumulative[None, :] <= cumulative[:, None]
        prefix_mask = prefix_mask.to(torch.bool)
        visible = torch.cat(
            [
                prefix_mask[:, None, :].expand(batch, length, prefix_len),
                suffix_visible[None].expand(batch, length, length),
            ],
            dim=2,
        )[:, None, :, :]
        offsets = prefix_mask.to(torch.int64).sum(dim=1, keepdim=True)
        positions = offsets + torch.arange(length, dtype=torch.int64, device=suffix.device)[None]
        cos, sin = rotary_cos_sin(self.language_model.rotary_emb, positions)

        hidden = suffix
        for i, layer in enumerate(self.expert_model.layers):
            attn = layer.self_attn
            normed, gate = _norm(layer.input_layernorm, hidden, cond)
            q = split_heads(attn.q_proj(normed), attn.head_dim)
            k = split_heads(attn.k_proj(normed), attn.head_dim)
            v = split_heads(attn.v_proj(normed), attn.head_dim)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            keys = torch.cat([past_k[i], k], dim=2)
            values = torch.cat([past_v[i], v], dim=2)
            out = _attend(q, keys, values, visible, attn.scaling)
            hidden = _gated(hidden, attn.o_proj(out), gate)
            normed, gate = _norm(layer.post_attention_layernorm, hidden, cond)
            hidden = _gated(hidden, layer.mlp(normed), gate)
        final, _ = _norm(self.expert_model.norm, hidden, cond)
        return self.action_out_proj(final[:, -x_t.shape[1] :])

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
        """Euler-integrate the flow from ``noise`` (t=1) to an action chunk (t=0).

        Exactly :meth:`prefix_kv` once, then ``num_steps`` calls of :meth:`denoise_step` with
        ``dt = -1/num_steps``, ``t = 1 + k*dt``, ``x += dt * v``.

        :return: (B, T, A) actions in normalized model units (all A dims; the caller keeps the
            first ``action_dim``).
        """
        past_k, past_v, prefix_mask, _ = self.prefix_kv(images, image_masks, tokens, token_masks)
        return euler_integrate(
            lambda x_t, t: self.denoise_step(x_t, t, state, prefix_mask, past_k, past_v),
            noise,
            num_steps,
            FlowIO(t_start=1.0, t_end=0.0),
        )


def build_model(arch: PiArchitecture, device: str | torch.device | None = None) -> PiFlowModel:
    """Build an fp32 :class:`PiFlowModel` in eval mode.

    :param device: ``"meta"`` builds without allocating weights (then load them with
        :func:`reflex_core.models.checkpoint.load_model_weights`); default CPU with the stock
        random init.
    """
    return build_model_on(PiFlowModel, arch, device=device)
