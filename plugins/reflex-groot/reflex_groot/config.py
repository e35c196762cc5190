"""GR00T N1.5 checkpoint configuration, parsed into :class:`GrootArch`. torch-free.

A GR00T checkpoint as lerobot 0.4.4 saves it (``policies/groot``) is ``config.json`` with
``"type": "groot"`` (a ``GrootConfig``: features, ``max_state_dim`` / ``max_action_dim``,
``base_model_path``, ``tokenizer_assets_repo``, ``embodiment_tag``...), ``model.safetensors``
(the ``GrootPolicy`` state dict, keys under ``_groot_model.``) and the processor pipelines whose
``groot_pack_inputs_v3`` / ``groot_action_unpack_unnormalize_v1`` steps carry the embodiment
mapping and the min/max statistics.

The architecture is **not** in that ``config.json``: lerobot rebuilds the model from the base
model's own config (``GR00TN15.from_pretrained(base_model_path)``: ``backbone_cfg``,
``action_head_cfg``) and the Eagle 2.5 VL config it finds in the processor assets
(``tokenizer_assets_repo``). Both are resolved here without a download:

- a local directory (absolute, or relative to the checkpoint) holding that ``config.json``;
- otherwise a known Hub id: :data:`KNOWN_BASE_CONFIGS` (``nvidia/GR00T-N1.5-3B``) and
  :data:`KNOWN_EAGLE_CONFIGS` (``lerobot/eagle2hg-processor-groot-n1p5``).

Facts (lerobot 0.4.4 ``groot_n1.py``, ``action_head/``, ``eagle2_hg_model/``):

- ``EagleBackbone`` keeps the first ``select_layer`` layers of the language model and reads
  ``hidden_states[select_layer]`` (the final-normed output of the last kept layer), then
  ``eagle_linear`` (``Linear(2048, project_to_dim)``, or identity when ``project_to_dim`` is
  null, as in N1.5);
- the action head runs ``vlln`` (LayerNorm) and ``vl_self_attention`` (self-attention blocks)
  over the backbone features once, then ``num_inference_timesteps`` Euler steps from t=0 to 1
  with ``t`` bucketed as ``int(t * num_timestep_buckets)``;
- state encoder, action encoder and action decoder hold one weight slice per embodiment id
  (``max_num_embodiments``); the processor's ``embodiment_mapping`` maps a tag to an id.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.errors import CheckpointError

GROOT_TYPE = "groot"
WEIGHTS_PREFIX = "_groot_model."
GROOT_N15_3B = "nvidia/GR00T-N1.5-3B"
EAGLE_N15_ASSETS = "lerobot/eagle2hg-processor-groot-n1p5"
PACK_STEP = "groot_pack_inputs_v3"
UNPACK_STEP = "groot_action_unpack_unnormalize_v1"

#: lerobot 0.4.4 ``GrootPackInputsStep.embodiment_mapping`` default (Isaac-GR00T's
#: ``EMBODIMENT_TAG_MAPPING`` subset); a saved processor may carry its own.
DEFAULT_EMBODIMENT_MAPPING: dict[str, int] = {
    "new_embodiment": 31,
    "oxe_droid": 17,
    "agibot_genie1": 26,
    "gr1": 24,
    "so100": 2,
    "unitree_g1": 3,
}

#: ``nvidia/GR00T-N1.5-3B/config.json`` (the fields the model reads).
KNOWN_BASE_CONFIGS: dict[str, dict[str, Any]] = {
    GROOT_N15_3B: {
        "model_type": "gr00t_n1_5",
        "action_horizon": 16,
        "action_dim": 32,
        "backbone_cfg": {
            "project_to_dim": None,
            "reproject_vision": False,
            "select_layer": 12,
        },
        "action_head_cfg": {
            "action_dim": 32,
            "action_horizon": 16,
            "add_pos_embed": True,
            "backbone_embedding_dim": 2048,
            "diffusion_model_cfg": {
                "attention_head_dim": 48,
                "cross_attention_dim": 2048,
                "interleave_self_attention": True,
                "norm_type": "ada_norm",
                "num_attention_heads": 32,
                "num_layers": 16,
                "output_dim": 1024,
                "positional_embeddings": None,
            },
            "hidden_size": 1024,
            "input_embedding_dim": 1536,
            "max_action_dim": 32,
            "max_state_dim": 64,
            "max_seq_len": 1024,
            "max_num_embodiments": 32,
            "num_inference_timesteps": 4,
            "num_target_vision_tokens": 32,
            "num_timestep_buckets": 1000,
            "use_vlln": True,
            "vl_self_attention_cfg": {
                "attention_head_dim": 64,
                "num_attention_heads": 32,
                "num_layers": 4,
                "positional_embeddings": None,
            },
        },
    }
}

#: The Eagle 2.5 VL config of GR00T N1.5 (``lerobot/eagle2hg-processor-groot-n1p5``): SigLIP
#: so400m-style vision (1152 x 27 at 224 px / 14), Qwen3-1.7B text (2048 x 28, 16 heads, 8 KV
#: heads, head_dim 128). The backbone id ``..._1mlp_nops`` names a one-layer connector without
#: pixel shuffle (256 tokens per image); a checkpoint whose ``mlp1`` shapes disagree fails to
#: load with ``checkpoint-mismatch`` rather than loading wrong.
KNOWN_EAGLE_CONFIGS: dict[str, dict[str, Any]] = {
    EAGLE_N15_ASSETS: {
        "model_type": "eagle_2_5_vl",
        "select_layer": -1,
        "downsample_ratio": 0.5,
        "use_pixel_shuffle": False,
        "mlp_connector_layers": 1,
        "force_image_size": 224,
        "image_token_index": 151669,
        "use_backbone_lora": 0,
        "use_llm_lora": 0,
        "vision_config": {
            "model_type": "siglip_vision_model",
            "hidden_size": 1152,
            "image_size": 224,
            "intermediate_size": 4304,
            "num_attention_heads": 16,
            "num_hidden_layers": 27,
            "patch_size": 14,
            "num_channels": 3,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        },
        "text_config": {
            "architectures": ["Qwen3ForCausalLM"],
            "model_type": "qwen3",
            "hidden_size": 2048,
            "intermediate_size": 6144,
            "num_hidden_layers": 28,
            "num_attention_heads": 16,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-6,
            "rope_theta": 1000000.0,
            "max_position_embeddings": 40960,
            "attention_bias": False,
            "tie_word_embeddings": True,
            "vocab_size": 151680,
        },
    }
}


def _unsupported(message: str) -> CheckpointError:
    return CheckpointError(message, slug="groot-option-unsupported", status=400)


def _invalid(message: str) -> CheckpointError:
    return CheckpointError(message, slug="checkpoint-config-invalid", status=400)


@attrs.frozen
class VisionSpec:
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    image_size: int
    patch_size: int
    layer_norm_eps: float
    hidden_act: str

    @property
    def patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


@attrs.frozen
class TextSpec:
    """The Qwen3 language model (only its first ``select_layer`` layers are built)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    rms_norm_eps: float
    rope_theta: float
    vocab_size: int
    hidden_act: str
    attention_bias: bool
    max_position_embeddings: int


@attrs.frozen
class EagleSpec:
    vision: VisionSpec
    text: TextSpec
    vision_select_layer: int
    use_pixel_shuffle: bool
    downsample_ratio: float
    mlp_connector_layers: int
    image_token_index: int

    @property
    def tokens_per_image(self) -> int:
        patches = self.vision.patches
        return int(patches * self.downsample_ratio**2) if self.use_pixel_shuffle else patches

    @property
    def connector_in(self) -> int:
        if not self.use_pixel_shuffle:
            return self.vision.hidden_size
        return self.vision.hidden_size * int(1 / self.downsample_ratio) ** 2


@attrs.frozen
class BlocksSpec:
    """A stack of diffusers-style ``BasicTransformerBlock`` (DiT or VL self-attention)."""

    num_layers: int
    num_heads: int
    head_dim: int
    output_dim: int = 0
    cross_attention_dim: int | None = None
    interleave_self_attention: bool = False
    norm_eps: float = 1e-5

    @property
    def inner_dim(self) -> int:
        return self.num_heads * self.head_dim


@attrs.frozen
class HeadSpec:
    """The flow-matching action head (``FlowmatchingActionHead``)."""

    action_dim: int  # the padded (max) action dim the head works in
    action_horizon: int
    max_state_dim: int
    hidden_size: int
    input_embedding_dim: int
    backbone_embedding_dim: int
    max_num_embodiments: int
    num_target_vision_tokens: int
    max_seq_len: int
    add_pos_embed: bool
    use_vlln: bool
    num_timestep_buckets: int
    num_inference_timesteps: int
    dit: BlocksSpec
    vl_self_attention: BlocksSpec | None


@attrs.frozen
class GrootArch:
    eagle: EagleSpec
    select_layer: int
    project_to_dim: int | None
    head: HeadSpec

    @property
    def backbone_dim(self) -> int:
        return self.project_to_dim or self.eagle.text.hidden_size


@attrs.frozen
class GrootPolicyConfig:
    """What export needs from a GR00T checkpoint directory."""

    arch: GrootArch
    cameras: tuple[str, ...]
    image_size: int
    state_dim: int
    action_dim: int
    embodiment_tag: str
    embodiment_mapping: Mapping[str, int]
    base_source: str
    eagle_source: str
    base_config: Mapping[str, Any]
    eagle_config: Mapping[str, Any]


# -- architecture parsing ------------------------------------------------------------------------


def _get(config: Mapping[str, Any], key: str, default: Any = None) -> Any:
    value = config.get(key, default)
    return default if value is None else value


def parse_eagle(config: Mapping[str, Any]) -> EagleSpec:
    """An Eagle 2.5 VL ``config.json`` -> :class:`EagleSpec` (refusing what we do not build)."""
    vision = dict(config.get("vision_config") or {})
    text = dict(config.get("text_config") or {})
    if vision.get("model_type", "siglip_vision_model") != "siglip_vision_model":
        raise _unsupported(f"Eagle vision model {vision.get('model_type')!r}: only SigLIP is built")
    arch = (text.get("architectures") or ["Qwen3ForCausalLM"])[0]
    if arch != "Qwen3ForCausalLM":
        raise _unsupported(
            f"Eagle language model {arch!r}: only Qwen3ForCausalLM (GR00T N1.5) is built"
        )
    for lora in ("use_backbone_lora", "use_llm_lora"):
        if int(config.get(lora, 0) or 0):
            raise _unsupported(f"Eagle {lora}={config[lora]}: LoRA-wrapped backbones are not built")
    layers = int(_get(config, "mlp_connector_layers", 2))
    shuffle = bool(_get(config, "use_pixel_shuffle", True))
    if layers not in (1, 2):
        raise _unsupported(f"Eagle mlp_connector_layers={layers}: only 1 or 2 are built")
    image_size = int(_get(config, "force_image_size", 0) or _get(vision, "image_size", 224))
    if text.get("rope_scaling"):
        raise _unsupported(f"Eagle text rope_scaling={text['rope_scaling']!r} is not built")
    try:
        return EagleSpec(
            vision=VisionSpec(
                hidden_size=int(vision["hidden_size"]),
                intermediate_size=int(vision["intermediate_size"]),
                num_layers=int(vision["num_hidden_layers"]),
                num_heads=int(vision["num_attention_heads"]),
                image_size=image_size,
                patch_size=int(vision["patch_size"]),
                layer_norm_eps=float(_get(vision, "layer_norm_eps", 1e-6)),
                hidden_act=str(_get(vision, "hidden_act", "gelu_pytorch_tanh")),
            ),
            text=TextSpec(
                hidden_size=int(text["hidden_size"]),
                intermediate_size=int(text["intermediate_size"]),
                num_layers=int(text["num_hidden_layers"]),
                num_heads=int(text["num_attention_heads"]),
                num_kv_heads=int(_get(text, "num_key_value_heads", text["num_attention_heads"])),
                head_dim=int(
                    _get(text, "head_dim", text["hidden_size"] // text["num_attention_heads"])
                ),
                rms_norm_eps=float(_get(text, "rms_norm_eps", 1e-6)),
                rope_theta=float(_get(text, "rope_theta", 1000000.0)),
                vocab_size=int(text["vocab_size"]),
                hidden_act=str(_get(text, "hidden_act", "silu")),
                attention_bias=bool(_get(text, "attention_bias", False)),
                max_position_embeddings=int(_get(text, "max_position_embeddings", 40960)),
            ),
            vision_select_layer=int(_get(config, "select_layer", -4)),
            use_pixel_shuffle=shuffle,
            downsample_ratio=float(_get(config, "downsample_ratio", 0.5)),
            mlp_connector_layers=layers,
            image_token_index=int(config["image_token_index"]),
        )
    except KeyError as exc:
        raise _invalid(f"Eagle config lacks {exc.args[0]!r}") from None


def _blocks(cfg: Mapping[str, Any], *, dit: bool) -> BlocksSpec:
    if cfg.get("positional_embeddings") is not None:
        raise _unsupported(
            f"positional_embeddings={cfg['positional_embeddings']!r} in the "
            f"{'DiT' if dit else 'VL self-attention'}: only None (GR00T N1.5) is built"
        )
    activation = cfg.get("activation_fn", "gelu-approximate")
    if activation != "gelu-approximate":
        raise _unsupported(f"activation_fn={activation!r}: only 'gelu-approximate' is built")
    if cfg.get("attention_bias", True) is not True:
        raise _unsupported("attention_bias=False is not built")
    if dit and cfg.get("norm_type", "ada_norm") != "ada_norm":
        raise _unsupported(f"DiT norm_type={cfg.get('norm_type')!r}: only 'ada_norm' is built")
    if dit and cfg.get("norm_elementwise_affine", False):
        raise _unsupported("DiT norm_elementwise_affine=True is not built")
    return BlocksSpec(
        num_layers=int(_get(cfg, "num_layers", 12)),
        num_heads=int(_get(cfg, "num_attention_heads", 8)),
        head_dim=int(_get(cfg, "attention_head_dim", 64)),
        output_dim=int(_get(cfg, "output_dim", 26)),
        cross_attention_dim=cfg.get("cross_attention_dim") if dit else None,
        interleave_self_attention=bool(cfg.get("interleave_self_attention", False)) and dit,
        norm_eps=float(_get(cfg, "norm_eps", 1e-5)),
    )


def parse_arch(base: Mapping[str, Any], eagle: Mapping[str, Any]) -> GrootArch:
    """The GR00T N1.5 base ``config.json`` + the Eagle config -> :class:`GrootArch`."""
    backbone = dict(base.get("backbone_cfg") or {})
    head = dict(base.get("action_head_cfg") or {})
    if not head:
        raise _invalid("the GR00T base config has no action_head_cfg")
    if backbone.get("reproject_vision"):
        raise _unsupported("backbone reproject_vision=True is not built (lerobot refuses it too)")
    if head.get("expand_batch") is not None:
        raise _unsupported("action head expand_batch is a training option; not built")
    eagle_spec = parse_eagle(eagle)
    select_layer = int(_get(backbone, "select_layer", -1))
    if not 0 < select_layer <= eagle_spec.text.num_layers:
        raise _unsupported(
            f"backbone select_layer={select_layer}: only 1..{eagle_spec.text.num_layers} (the "
            "number of language-model layers kept) is built"
        )
    project = backbone.get("project_to_dim", 1536)
    dit = dict(head.get("diffusion_model_cfg") or {})
    use_vlln = bool(_get(head, "use_vlln", True))
    try:
        spec = HeadSpec(
            action_dim=int(head["action_dim"]),
            action_horizon=int(head["action_horizon"]),
            max_state_dim=int(head["max_state_dim"]),
            hidden_size=int(_get(head, "hidden_size", 1024)),
            input_embedding_dim=int(_get(head, "input_embedding_dim", 1536)),
            backbone_embedding_dim=int(_get(head, "backbone_embedding_dim", 1536)),
            max_num_embodiments=int(_get(head, "max_num_embodiments", 32)),
            num_target_vision_tokens=int(_get(head, "num_target_vision_tokens", 32)),
            max_seq_len=int(_get(head, "max_seq_len", 1024)),
            add_pos_embed=bool(_get(head, "add_pos_embed", True)),
            use_vlln=use_vlln,
            num_timestep_buckets=int(_get(head, "num_timestep_buckets", 1000)),
            num_inference_timesteps=int(head["num_inference_timesteps"]),
            dit=_blocks(dit, dit=True),
            vl_self_attention=(
                _blocks(dict(head.get("vl_self_attention_cfg") or {}), dit=False)
                if use_vlln
                else None
            ),
        )
    except KeyError as exc:
        raise _invalid(f"GR00T action_head_cfg lacks {exc.args[0]!r}") from None
    arch = GrootArch(
        eagle=eagle_spec,
        select_layer=select_layer,
        project_to_dim=None if project is None else int(project),
        head=spec,
    )
    _check_dims(arch)
    return arch


def _check_dims(arch: GrootArch) -> None:
    head = arch.head
    problems = []
    if arch.project_to_dim is not None and arch.eagle.text.hidden_size != 2048:
        # lerobot hard-codes eagle_linear = Linear(2048, project_to_dim).
        problems.append("project_to_dim needs a 2048-wide language model (lerobot hard-codes it)")
    if head.backbone_embedding_dim != arch.backbone_dim:
        problems.append(
            f"backbone_embedding_dim {head.backbone_embedding_dim} != backbone width "
            f"{arch.backbone_dim}"
        )
    if head.dit.inner_dim != head.input_embedding_dim:
        problems.append(
            f"DiT heads x head_dim {head.dit.inner_dim} != input_embedding_dim "
            f"{head.input_embedding_dim}"
        )
    if head.dit.output_dim != head.hidden_size:
        problems.append(f"DiT output_dim {head.dit.output_dim} != hidden_size {head.hidden_size}")
    if head.dit.cross_attention_dim not in (None, arch.backbone_dim):
        problems.append(
            f"DiT cross_attention_dim {head.dit.cross_attention_dim} != backbone width "
            f"{arch.backbone_dim}"
        )
    vl = head.vl_self_attention
    if vl is not None and vl.num_layers and vl.inner_dim != arch.backbone_dim:
        problems.append(f"VL self-attention width {vl.inner_dim} != backbone {arch.backbone_dim}")
    if head.add_pos_embed and head.action_horizon > head.max_seq_len:
        problems.append(f"action_horizon {head.action_horizon} > max_seq_len {head.max_seq_len}")
    if problems:
        raise _invalid("inconsistent GR00T architecture: " + "; ".join(problems))


# -- checkpoint directory ------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise _invalid(f"cannot read {path}: {exc}") from exc


def resolve_config(
    name: str | None, directory: Path, known: Mapping[str, Mapping[str, Any]], what: str
) -> tuple[dict[str, Any], str]:
    """A config named by a local directory (absolute or relative to ``directory``) or by a
    known Hub id -> ``(config dict, where it came from)``."""
    if not name:
        raise _invalid(f"the checkpoint config names no {what}")
    for candidate in (Path(name), directory / name):
        if (candidate / "config.json").is_file():
            return _read_json(candidate / "config.json"), str(candidate)
    if name in known:
        return copy.deepcopy(dict(known[name])), f"builtin:{name}"
    raise CheckpointError(
        f"{what} {name!r} is neither a local directory with a config.json (absolute or relative "
        f"to {directory}) nor a known base ({', '.join(sorted(known))})",
        slug="groot-base-unknown",
        status=400,
    )


def feature_dim(config: Mapping[str, Any], section: str, key: str) -> int | None:
    feature = (config.get(section) or {}).get(key)
    if not isinstance(feature, Mapping):
        return None
    shape = feature.get("shape") or []
    return int(shape[-1]) if shape else None


def camera_keys(config: Mapping[str, Any]) -> tuple[str, ...]:
    """The cameras in lerobot's processor order: ``sorted`` image feature keys."""
    features = config.get("input_features") or {}
    prefix = "observation.images."
    names = sorted(k for k, v in features.items() if k.startswith(prefix) or _visual(v))
    return tuple(k[len(prefix) :] if k.startswith(prefix) else k for k in names)


def _visual(feature: Any) -> bool:
    return isinstance(feature, Mapping) and feature.get("type") == "VISUAL"


def parse_policy_config(
    config: Mapping[str, Any], directory: Path, pack_step: Mapping[str, Any] | None
) -> GrootPolicyConfig:
    """lerobot ``GrootConfig`` + base and Eagle configs + the pack step -> the export view."""
    if config.get("type") != GROOT_TYPE:
        raise _invalid(f"config type {config.get('type')!r} is not {GROOT_TYPE!r}")
    base, base_source = resolve_config(
        config.get("base_model_path"), directory, KNOWN_BASE_CONFIGS, "base_model_path"
    )
    eagle, eagle_source = resolve_config(
        config.get("tokenizer_assets_repo"), directory, KNOWN_EAGLE_CONFIGS, "tokenizer_assets_repo"
    )
    arch = parse_arch(base, eagle)
    cameras = camera_keys(config)
    if not cameras:
        raise _invalid("a GR00T config needs at least one visual input feature")
    max_state = int(_get(config, "max_state_dim", 64))
    max_action = int(_get(config, "max_action_dim", 32))
    if max_state != arch.head.max_state_dim or max_action != arch.head.action_dim:
        raise _invalid(
            f"config max_state_dim/max_action_dim {max_state}/{max_action} differ from the "
            f"base model's {arch.head.max_state_dim}/{arch.head.action_dim}"
        )
    state_dim = feature_dim(config, "input_features", "observation.state") or max_state
    action_dim = feature_dim(config, "output_features", "action") or max_action
    if state_dim > max_state or action_dim > max_action:
        raise _invalid(f"state/action dims {state_dim}/{action_dim} exceed the padded dims")
    step_config = dict((pack_step or {}).get("config") or {})
    tag = str(step_config.get("embodiment_tag") or config.get("embodiment_tag") or "")
    mapping = step_config.get("embodiment_mapping") or DEFAULT_EMBODIMENT_MAPPING
    return GrootPolicyConfig(
        arch=arch,
        cameras=cameras,
        image_size=arch.eagle.vision.image_size,
        state_dim=state_dim,
        action_dim=action_dim,
        embodiment_tag=tag or "new_embodiment",
        embodiment_mapping={str(k): int(v) for k, v in dict(mapping).items()},
        base_source=base_source,
        eagle_source=eagle_source,
        base_config=base,
        eagle_config=eagle,
    )


def resolve_embodiment(policy: GrootPolicyConfig, embodiment: Any) -> tuple[str, int]:
    """The embodiment tag and projector slot the artifact uses.

    Without ``--embodiment``: the tag the checkpoint was fine-tuned with (its pack step's
    ``embodiment_tag``). With one: the embodiment config's ``groot_embodiment_tag`` when it has
    one, else its name; it must be a tag of the checkpoint's ``embodiment_mapping``.

    :raises CheckpointError: ``groot-embodiment-unknown``.
    """
    if embodiment is None:
        tag, origin = policy.embodiment_tag, "the checkpoint's embodiment_tag"
    else:
        raw = getattr(embodiment, "raw", None)
        if raw is None and isinstance(embodiment, Mapping):
            raw = embodiment
        name = getattr(embodiment, "name", None) or (
            embodiment if isinstance(embodiment, str) else (raw or {}).get("embodiment")
        )
        explicit = (raw or {}).get("groot_embodiment_tag") if isinstance(raw, Mapping) else None
        tag = str(explicit or name)
        origin = f"embodiment {name!r}" + (
            f" (groot_embodiment_tag {explicit!r})" if explicit else ""
        )
    mapping = policy.embodiment_mapping
    if tag not in mapping:
        raise CheckpointError(
            f"{origin} names GR00T embodiment tag {tag!r}, for which this checkpoint has no "
            f"projector weights; its tags: {', '.join(f'{k}={v}' for k, v in sorted(mapping.items()))} "
            f"(fine-tuned as {policy.embodiment_tag!r}). Export with --embodiment set to one of "
            "them, or give the embodiment config a groot_embodiment_tag",
            slug="groot-embodiment-unknown",
            status=400,
        )
    slot = int(mapping[tag])
    if not 0 <= slot < policy.arch.head.max_num_embodiments:
        raise CheckpointError(
            f"embodiment tag {tag!r} maps to id {slot}, outside the checkpoint's "
            f"{policy.arch.head.max_num_embodiments} projector slots",
            slug="groot-embodiment-unknown",
            status=400,
        )
    return tag, slot
