"""GR00T N1.5 on stock ``transformers`` blocks, with lerobot's parameter names.

Module tree (under ``_groot_model.`` in a lerobot checkpoint), after lerobot 0.4.4's
``GR00TN15``:

- ``backbone.eagle_model.vision_model`` — a stock ``SiglipVisionModel`` (its pooling ``head`` is
  loaded, never run)
- ``backbone.eagle_model.mlp1`` — the connector (``[LayerNorm, Linear, GELU, Linear]`` or
  ``[Linear]``)
- ``backbone.eagle_model.language_model.model`` — a stock ``Qwen3Model`` with only the first
  ``select_layer`` layers (the tied ``lm_head`` is not built: the loader takes the embedding from
  it when the file stores only that twin)
- ``backbone.eagle_linear`` — ``Linear`` to ``project_to_dim`` (absent in N1.5: identity)
- ``action_head.vlln`` / ``action_head.vl_self_attention`` — LayerNorm and self-attention blocks
  over the backbone features
- ``action_head.state_encoder`` / ``action_encoder`` / ``action_decoder`` — per-embodiment
  weights ``W`` (E, in, out) and ``b`` (E, out)
- ``action_head.future_tokens``, ``action_head.position_embedding``
- ``action_head.model`` — the DiT: diffusers-style blocks (``attn1.to_q/to_k/to_v/to_out.0``,
  ``ff.net.0.proj``, ``ff.net.2``, ``norm1.linear``), ``timestep_encoder``, ``proj_out_1/2``

The attention loops are ours (stock projections, norms and rotary frequencies) so that masks
are tensor ops and the graphs export with ``torch.onnx.export(dynamo=True)``. Two deliberate
differences from lerobot, both exact at batch 1 without padding (lerobot's own inference case):
padded prompt tokens are masked out of the VL self-attention and the DiT cross-attention
(lerobot attends to its left padding there), and a missing camera's image tokens are masked out
(lerobot drops the image from the prompt).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn
from transformers import Qwen3Config, SiglipVisionConfig
from transformers.models.qwen3.modeling_qwen3 import Qwen3Model, apply_rotary_pos_emb

from reflex_core.models.flow import (
    SiglipTower,
    eager,
    eager_attention,
    euler_integrate,
    masked_mean,
    reset_stock_buffers,
    rotary_cos_sin,
    split_heads,
)
from reflex_core.runtime.io_spec import FlowIO
from reflex_groot.config import BlocksSpec, EagleSpec, GrootArch, HeadSpec

Tensor = torch.Tensor
MASK_VALUE = -3.4028234663852886e38  # finfo(float32).min, used with `where` (never added)


def _attend(q: Tensor, k: Tensor, v: Tensor, visible: Tensor | None, scale: float) -> Tensor:
    """Eager softmax attention. q (B,H,Lq,D); k, v (B,KV,Lk,D); visible broadcastable to
    (B,H,Lq,Lk) bool or None -> (B,Lq,H*D)."""
    return eager_attention(q, k, v, visible, scale, MASK_VALUE)


# -- Eagle 2.5 VL backbone -------------------------------------------------------------------------


def siglip_config(spec: EagleSpec) -> SiglipVisionConfig:
    vision = spec.vision
    config = SiglipVisionConfig(
        hidden_size=vision.hidden_size,
        intermediate_size=vision.intermediate_size,
        num_hidden_layers=vision.num_layers,
        num_attention_heads=vision.num_heads,
        num_channels=3,
        image_size=vision.image_size,
        patch_size=vision.patch_size,
        hidden_act=vision.hidden_act,
        layer_norm_eps=vision.layer_norm_eps,
    )
    return eager(config)


def qwen3_config(spec: EagleSpec, num_layers: int) -> Qwen3Config:
    text = spec.text
    config = Qwen3Config(
        vocab_size=text.vocab_size,
        hidden_size=text.hidden_size,
        intermediate_size=text.intermediate_size,
        num_hidden_layers=num_layers,
        num_attention_heads=text.num_heads,
        num_key_value_heads=text.num_kv_heads,
        head_dim=text.head_dim,
        hidden_act=text.hidden_act,
        rms_norm_eps=text.rms_norm_eps,
        max_position_embeddings=text.max_position_embeddings,
        attention_bias=text.attention_bias,
        rope_parameters={"rope_type": "default", "rope_theta": text.rope_theta},
        tie_word_embeddings=True,
        use_sliding_window=False,
    )
    return eager(config)


class LanguageModel(nn.Module):
    """``language_model``: holds the truncated ``Qwen3Model`` under ``model``."""

    def __init__(self, spec: EagleSpec, num_layers: int) -> None:
        super().__init__()
        self.model = Qwen3Model(qwen3_config(spec, num_layers))


class EagleModel(nn.Module):
    """``eagle_model``: SigLIP, the connector ``mlp1`` and the truncated Qwen3."""

    def __init__(self, spec: EagleSpec, select_layer: int) -> None:
        super().__init__()
        self.spec = spec
        # lerobot's key layout: eagle_model.vision_model.vision_model.*
        self.vision_model = SiglipTower(siglip_config(spec))
        width_in, width = spec.connector_in, spec.text.hidden_size
        if spec.mlp_connector_layers == 2:
            self.mlp1 = nn.Sequential(
                nn.LayerNorm(width_in),
                nn.Linear(width_in, width),
                nn.GELU(),
                nn.Linear(width, width),
            )
        else:
            self.mlp1 = nn.Sequential(nn.Linear(width_in, width))
        self.language_model = LanguageModel(spec, select_layer)

    def pixel_shuffle(self, x: Tensor) -> Tensor:
        """Eagle's pixel shuffle: (N, W, H, C) -> (N, W*r, H*r, C/r^2) with r = downsample."""
        r = self.spec.downsample_ratio
        n, w, h, c = x.shape
        x = x.reshape(n, w, int(h * r), int(c / r))
        x = x.permute(0, 2, 1, 3)
        x = x.reshape(n, int(h * r), int(w * r), int(c / (r * r)))
        return x.permute(0, 2, 1, 3)

    def image_features(self, pixels: Tensor) -> Tensor:
        """(K, 3, H, W) in [-1, 1] -> (K, tokens_per_image, text width)."""
        vision = self.vision_model.vision_model
        hidden = vision.embeddings(pixels)
        layers = vision.encoder.layers
        select = self.spec.vision_select_layer
        # hidden_states[select] of the stock model: -1 is the post-layernormed last state;
        # any other index is the raw output of that many layers (0 = the embeddings).
        keep = len(layers) if select == -1 else (select % (len(layers) + 1))
        for layer in layers[:keep]:
            hidden = layer(hidden, None)
            hidden = hidden[0] if isinstance(hidden, tuple) else hidden
        if select == -1:
            hidden = vision.post_layernorm(hidden)
        if self.spec.use_pixel_shuffle:
            side = int(round(hidden.shape[1] ** 0.5))
            hidden = hidden.reshape(hidden.shape[0], side, side, hidden.shape[-1])
            hidden = self.pixel_shuffle(hidden)
            hidden = hidden.reshape(hidden.shape[0], -1, hidden.shape[-1])
        return self.mlp1(hidden)


class EagleBackbone(nn.Module):
    """``backbone``: Eagle features of the last kept LLM layer, projected by ``eagle_linear``."""

    def __init__(self, arch: GrootArch) -> None:
        super().__init__()
        self.arch = arch
        self.eagle_model = EagleModel(arch.eagle, arch.select_layer)
        if arch.project_to_dim is not None:
            self.eagle_linear = nn.Linear(arch.eagle.text.hidden_size, arch.project_to_dim)
        else:
            self.eagle_linear = nn.Identity()

    def forward(
        self, images: Tensor, image_masks: Tensor, tokens: Tensor, token_masks: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Images spliced into the prompt at its image tokens, then the truncated LLM.

        :param images: (B, N, 3, H, W) fp32 in [-1, 1].
        :param image_masks: (B, N) bool, False for a missing camera.
        :param tokens: (B, L) int64 prompt with ``tokens_per_image`` image tokens per camera.
        :param token_masks: (B, L) bool, False for padding.
        :return: features (B, L, backbone width) and the valid-token mask (B, L) bool.
        """
        eagle = self.eagle_model
        spec = self.arch.eagle
        batch, cameras = images.shape[0], images.shape[1]
        per_image = spec.tokens_per_image
        vit = eagle.image_features(images.flatten(0, 1))
        vit = vit.reshape(batch, cameras * per_image, vit.shape[-1])
        lm = eagle.language_model.model
        text = lm.embed_tokens(tokens)
        is_image = tokens == spec.image_token_index
        # The k-th image token of a sample takes the k-th image feature (camera order).
        order = torch.cumsum(is_image.to(torch.int64), dim=1) - 1
        order = order.clamp(min=0, max=cameras * per_image - 1)
        gathered = torch.gather(vit, 1, order[:, :, None].expand(-1, -1, vit.shape[-1]))
        hidden = torch.where(is_image[:, :, None], gathered, text)
        camera = torch.div(order, per_image, rounding_mode="floor")
        present = torch.gather(image_masks.to(torch.bool), 1, camera)
        valid = token_masks.to(torch.bool) & (present | ~is_image)
        positions = torch.cumsum(valid.to(torch.int64), dim=1) - 1
        positions = positions.clamp(min=0)
        length = tokens.shape[1]
        idx = torch.arange(length, device=tokens.device)
        causal = idx[None, :] <= idx[:, None]
        visible = (causal[None, :, :] & valid[:, None, :])[:, None, :, :]
        cos, sin = rotary_cos_sin(lm.rotary_emb, positions)
        for layer in lm.layers:
            attn = layer.self_attn
            normed = layer.input_layernorm(hidden)
            # Qwen3 normalizes each head's q and k (RMSNorm over head_dim) before RoPE.
            q = attn.q_norm(attn.q_proj(normed).unflatten(-1, (-1, attn.head_dim)))
            k = attn.k_norm(attn.k_proj(normed).unflatten(-1, (-1, attn.head_dim)))
            q, k = q.transpose(1, 2), k.transpose(1, 2)
            v = split_heads(attn.v_proj(normed), attn.head_dim)
            q, k = apply_rotary_pos_emb(q, k, cos, sin)
            hidden = hidden + attn.o_proj(_attend(q, k, v, visible, attn.scaling))
            hidden = hidden + layer.mlp(layer.post_attention_layernorm(hidden))
        # hidden_states[select_layer] with select_layer == number of kept layers: the final norm
        # is applied (transformers appends the normed last state).
        hidden = lm.norm(hidden)
        return self.eagle_linear(hidden), valid


# -- action head -----------------------------------------------------------------------------------


class CategorySpecificLinear(nn.Module):
    """Per-embodiment ``x @ W[e] + b[e]`` (``W`` (E, in, out))."""

    def __init__(self, num_categories: int, input_dim: int, hidden_dim: int) -> None:
        super().__init__()
        self.W = nn.Parameter(0.02 * torch.randn(num_categories, input_dim, hidden_dim))
        self.b = nn.Parameter(torch.zeros(num_categories, hidden_dim))

    def forward(self, x: Tensor, category: int) -> Tensor:
        return torch.matmul(x, self.W[category]) + self.b[category]


class CategorySpecificMLP(nn.Module):
    def __init__(self, num_categories: int, input_dim: int, hidden_dim: int, output_dim: int):
        super().__init__()
        self.layer1 = CategorySpecificLinear(num_categories, input_dim, hidden_dim)
        self.layer2 = CategorySpecificLinear(num_categories, hidden_dim, output_dim)

    def forward(self, x: Tensor, category: int) -> Tensor:
        return self.layer2(F.relu(self.layer1(x, category)), category)


def sinusoid(timesteps: Tensor, dim: int) -> Tensor:
    """The action encoder's encoding: ``[sin(t f), cos(t f)]``, ``f = exp(-i ln(1e4) / (dim/2))``."""
    half = dim // 2
    exponent = -torch.arange(half, dtype=torch.float32, device=timesteps.device) * (
        math.log(10000.0) / half
    )
    freqs = timesteps.to(torch.float32).unsqueeze(-1) * exponent.exp()
    return torch.cat([torch.sin(freqs), torch.cos(freqs)], dim=-1)


class MultiEmbodimentActionEncoder(nn.Module):
    def __init__(self, action_dim: int, hidden_size: int, num_embodiments: int) -> None:
        super().__init__()
        self.hidden_size = hidden_size
        self.W1 = CategorySpecificLinear(num_embodiments, action_dim, hidden_size)
        self.W2 = CategorySpecificLinear(num_embodiments, 2 * hidden_size, hidden_size)
        self.W3 = CategorySpecificLinear(num_embodiments, hidden_size, hidden_size)

    def forward(self, actions: Tensor, timesteps: Tensor, category: int) -> Tensor:
        """actions (B, T, A), timesteps (B,) bucketed -> (B, T, hidden)."""
        emb = self.W1(actions, category)
        tau = sinusoid(timesteps[:, None].expand(-1, actions.shape[1]), self.hidden_size)
        x = torch.cat([emb, tau.to(emb.dtype)], dim=-1)
        x = F.silu(self.W2(x, category))
        return self.W3(x, category)


class Attention(nn.Module):
    """diffusers ``Attention`` (``to_q``, ``to_k``, ``to_v``, ``to_out.0``), no norms."""

    def __init__(self, dim: int, heads: int, head_dim: int, cross_dim: int | None) -> None:
        super().__init__()
        inner = heads * head_dim
        self.head_dim = head_dim
        self.scale = head_dim**-0.5
        self.to_q = nn.Linear(dim, inner, bias=True)
        self.to_k = nn.Linear(cross_dim or dim, inner, bias=True)
        self.to_v = nn.Linear(cross_dim or dim, inner, bias=True)
        self.to_out = nn.ModuleList([nn.Linear(inner, dim, bias=True), nn.Dropout(0.0)])

    def forward(self, x: Tensor, context: Tensor | None, key_mask: Tensor | None) -> Tensor:
        context = x if context is None else context
        q = split_heads(self.to_q(x), self.head_dim)
        k = split_heads(self.to_k(context), self.head_dim)
        v = split_heads(self.to_v(context), self.head_dim)
        visible = None if key_mask is None else key_mask[:, None, None, :]
        return self.to_out[0](_attend(q, k, v, visible, self.scale))


class GeluProj(nn.Module):
    """diffusers ``GELU(approximate="tanh")``: ``proj`` then tanh-GELU."""

    def __init__(self, dim: int, inner: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, inner, bias=True)

    def forward(self, x: Tensor) -> Tensor:
        return F.gelu(self.proj(x), approximate="tanh")


class FeedForward(nn.Module):
    """diffusers ``FeedForward``: ``net = [GELU proj, Dropout, Linear, (Dropout)]``."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        inner = 4 * dim
        self.net = nn.ModuleList([GeluProj(dim, inner), nn.Dropout(0.0), nn.Linear(inner, dim)])

    def forward(self, x: Tensor) -> Tensor:
        return self.net[2](self.net[0](x))


class AdaLayerNorm(nn.Module):
    """``norm(x) * (1 + scale) + shift`` with ``(scale, shift) = linear(silu(temb))``."""

    def __init__(self, dim: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.linear = nn.Linear(dim, 2 * dim)
        self.norm = nn.LayerNorm(dim, eps, elementwise_affine=False)

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        scale, shift = self.linear(F.silu(temb)).chunk(2, dim=1)
        return self.norm(x) * (1 + scale[:, None]) + shift[:, None]


class TransformerBlock(nn.Module):
    """diffusers ``BasicTransformerBlock`` as GR00T uses it: (ada-)norm, attention (self or
    cross), norm, feed-forward, both residual."""

    def __init__(self, spec: BlocksSpec, cross_dim: int | None, ada: bool) -> None:
        super().__init__()
        dim = spec.inner_dim
        self.ada = ada
        if ada:
            self.norm1 = AdaLayerNorm(dim)
        else:
            self.norm1 = nn.LayerNorm(dim, eps=spec.norm_eps, elementwise_affine=True)
        self.attn1 = Attention(dim, spec.num_heads, spec.head_dim, cross_dim)
        self.norm3 = nn.LayerNorm(dim, spec.norm_eps, elementwise_affine=not ada)
        self.ff = FeedForward(dim)

    def forward(
        self,
        x: Tensor,
        temb: Tensor | None = None,
        context: Tensor | None = None,
        key_mask: Tensor | None = None,
    ) -> Tensor:
        normed = self.norm1(x, temb) if self.ada else self.norm1(x)
        x = x + self.attn1(normed, context, key_mask)
        return x + self.ff(self.norm3(x))


class TimestepEmbedder(nn.Module):
    def __init__(self, channels: int, dim: int) -> None:
        super().__init__()
        self.linear_1 = nn.Linear(channels, dim)
        self.linear_2 = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.linear_2(F.silu(self.linear_1(x)))


class TimestepEncoder(nn.Module):
    """diffusers ``Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=1)`` then
    ``TimestepEmbedding``."""

    channels = 256

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.timestep_embedder = TimestepEmbedder(self.channels, dim)

    def forward(self, timesteps: Tensor) -> Tensor:
        half = self.channels // 2
        exponent = -math.log(10000.0) * torch.arange(
            half, dtype=torch.float32, device=timesteps.device
        )
        exponent = exponent / (half - 1)
        emb = timesteps[:, None].to(torch.float32) * torch.exp(exponent)[None, :]
        emb = torch.cat([torch.cos(emb), torch.sin(emb)], dim=-1)
        return self.timestep_embedder(emb)


class DiT(nn.Module):
    """The cross-attention DiT: even blocks attend to the backbone features, odd blocks to
    themselves when ``interleave_self_attention``."""

    def __init__(self, spec: BlocksSpec, cross_dim: int) -> None:
        super().__init__()
        self.spec = spec
        inner = spec.inner_dim
        self.timestep_encoder = TimestepEncoder(inner)
        blocks = []
        for idx in range(spec.num_layers):
            self_attn = spec.interleave_self_attention and idx % 2 == 1
            blocks.append(TransformerBlock(spec, None if self_attn else cross_dim, ada=True))
        self.transformer_blocks = nn.ModuleList(blocks)
        self.norm_out = nn.LayerNorm(inner, elementwise_affine=False, eps=1e-6)
        self.proj_out_1 = nn.Linear(inner, 2 * inner)
        self.proj_out_2 = nn.Linear(inner, spec.output_dim)

    def forward(
        self, hidden: Tensor, context: Tensor, context_mask: Tensor | None, timesteps: Tensor
    ) -> Tensor:
        temb = self.timestep_encoder(timesteps)
        for idx, block in enumerate(self.transformer_blocks):
            if self.spec.interleave_self_attention and idx % 2 == 1:
                hidden = block(hidden, temb)
            else:
                hidden = block(hidden, temb, context, context_mask)
        shift, scale = self.proj_out_1(F.silu(temb)).chunk(2, dim=1)
        hidden = self.norm_out(hidden) * (1 + scale[:, None]) + shift[:, None]
        return self.proj_out_2(hidden)


class SelfAttentionTransformer(nn.Module):
    """``vl_self_attention``: plain (LayerNorm) self-attention blocks over backbone features."""

    def __init__(self, spec: BlocksSpec) -> None:
        super().__init__()
        self.transformer_blocks = nn.ModuleList(
            [TransformerBlock(spec, None, ada=False) for _ in range(spec.num_layers)]
        )

    def forward(self, hidden: Tensor, key_mask: Tensor | None) -> Tensor:
        for block in self.transformer_blocks:
            hidden = block(hidden, None, None, key_mask)
        return hidden


class FlowMatchingActionHead(nn.Module):
    """``action_head``: per-embodiment encoders/decoder around the DiT."""

    def __init__(self, spec: HeadSpec, backbone_dim: int) -> None:
        super().__init__()
        self.spec = spec
        emb, hidden = spec.input_embedding_dim, spec.hidden_size
        num = spec.max_num_embodiments
        self.model = DiT(spec.dit, spec.dit.cross_attention_dim or backbone_dim)
        self.state_encoder = CategorySpecificMLP(num, spec.max_state_dim, hidden, emb)
        self.action_encoder = MultiEmbodimentActionEncoder(spec.action_dim, emb, num)
        self.action_decoder = CategorySpecificMLP(num, hidden, hidden, spec.action_dim)
        self.future_tokens = nn.Embedding(spec.num_target_vision_tokens, emb)
        if spec.use_vlln:
            self.vlln = nn.LayerNorm(spec.backbone_embedding_dim)
            assert spec.vl_self_attention is not None
            self.vl_self_attention = SelfAttentionTransformer(spec.vl_self_attention)
        if spec.add_pos_embed:
            self.position_embedding = nn.Embedding(spec.max_seq_len, emb)

    def process_backbone(self, features: Tensor, mask: Tensor) -> Tensor:
        """``vlln`` and ``vl_self_attention`` (once per observation)."""
        if not self.spec.use_vlln:
            return features
        return self.vl_self_attention(self.vlln(features), mask)

    def encode_state(self, state: Tensor, category: int) -> Tensor:
        """(B, max_state_dim) -> (B, 1, input_embedding_dim)."""
        return self.state_encoder(state[:, None, :], category)

    def bucket(self, t: Tensor) -> Tensor:
        """Flow time in [0, 1) -> lerobot's ``int(t * num_timestep_buckets)`` as a float.

        The runtime feeds ``t = k / num_steps`` in float32; the small offset keeps a product
        that lands a hair under an integer (0.7 in float32 is 0.69999999) in its bucket.
        """
        return torch.floor(t.to(torch.float32) * self.spec.num_timestep_buckets + 1e-3)

    def velocity(
        self,
        x_t: Tensor,
        t: Tensor,
        features: Tensor,
        mask: Tensor,
        state_features: Tensor,
        category: int,
    ) -> Tensor:
        """One DiT evaluation: (B, T, A) noisy actions at flow time t (B,) -> velocity."""
        buckets = self.bucket(t)
        action = self.action_encoder(x_t, buckets, category)
        if self.spec.add_pos_embed:
            action = action + self.position_embedding.weight[: x_t.shape[1]][None]
        future = self.future_tokens.weight[None].expand(x_t.shape[0], -1, -1)
        tokens = torch.cat([state_features, future, action], dim=1)
        out = self.model(tokens, features, mask, buckets)
        pred = self.action_decoder(out, category)
        return pred[:, -x_t.shape[1] :]


class GrootModel(nn.Module):
    """``_groot_model``: the Eagle backbone and the flow-matching action head."""

    def __init__(self, arch: GrootArch) -> None:
        super().__init__()
        self.arch = arch
        self.backbone = EagleBackbone(arch)
        self.action_head = FlowMatchingActionHead(arch.head, arch.backbone_dim)

    def reset_nonpersistent_buffers(self) -> None:
        """Buffers a checkpoint does not store (after a meta-device build)."""
        reset_stock_buffers(self)

    def prefix(
        self,
        images: Tensor,
        image_masks: Tensor,
        tokens: Tensor,
        token_masks: Tensor,
        state: Tensor,
        category: int,
    ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Once per observation: processed backbone features (B, L, D), their mask (B, L), the
        encoded state (B, 1, E) and a pooled feature (B, D) (mean over valid tokens)."""
        features, mask = self.backbone(images, image_masks, tokens, token_masks)
        features = self.action_head.process_backbone(features, mask)
        state_features = self.action_head.encode_state(state, category)
        return features, mask, state_features, masked_mean(features, mask)

    def sample_actions(
        self,
        images: Tensor,
        image_masks: Tensor,
        tokens: Tensor,
        token_masks: Tensor,
        state: Tensor,
        noise: Tensor,
        num_steps: int,
        category: int,
    ) -> Tensor:
        """Euler from t=0 (noise) to t=1 (actions), ``t_k = k / num_steps``."""
        features, mask, state_features, _ = self.prefix(
            images, image_masks, tokens, token_masks, state, category
        )
        return euler_integrate(
            lambda x, t: self.action_head.velocity(x, t, features, mask, state_features, category),
            noise,
            num_steps,
            FlowIO(t_start=0.0, t_end=1.0),
        )

    def keep_embodiment(self, slot: int) -> int:
        """Drop every per-embodiment weight slice but ``slot`` (the graphs then carry one
        embodiment's projectors, not all of them); returns the category to pass from now on."""
        for module in self.modules():
            if isinstance(module, CategorySpecificLinear):
                module.W = nn.Parameter(module.W.data[slot : slot + 1].clone(), requires_grad=False)
                module.b = nn.Parameter(module.b.data[slot : slot + 1].clone(), requires_grad=False)
        return 0
