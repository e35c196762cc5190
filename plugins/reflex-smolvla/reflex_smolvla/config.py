"""SmolVLA checkpoint configuration: lerobot's ``config.json`` (``"type": "smolvla"``) plus the
SmolVLM2 backbone config it names in ``vlm_model_name``, parsed into :class:`SmolVLAArch`.

torch-free. Facts come from lerobot 0.4.4's ``policies/smolvla`` (``configuration_smolvla.py``,
``smolvlm_with_expert.py``, ``modeling_smolvla.py``):

- the VLM is ``SmolVLMForConditionalGeneration`` built from the backbone config, its Llama text
  model truncated to the first ``num_vlm_layers`` layers;
- the action expert is a Llama model from a copy of the text config with
  ``hidden_size = int(hidden * expert_width_multiplier)``, ``intermediate_size =
  get_intermediate_size(that)`` and ``num_expert_layers`` layers (``<= 0``: as many as the VLM);
- with ``"cross"`` in ``attention_mode``, every expert layer ``j`` with
  ``j % self_attn_every_n_layers != 0`` reads the VLM's per-layer K/V through its own ``k_proj``
  / ``v_proj`` (input width ``kv_heads * head_dim``) instead of attending to them jointly.

Real checkpoints name ``HuggingFaceTB/SmolVLM2-500M-Video-Instruct``: its architecture is known
here (:data:`KNOWN_VLM_CONFIGS`), so nothing is downloaded. ``vlm_model_name`` may also be a local
directory (absolute, or relative to the checkpoint) holding the backbone's ``config.json``.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.errors import CheckpointError

SMOLVLM2_500M = "HuggingFaceTB/SmolVLM2-500M-Video-Instruct"

#: The backbone configs we know without a download (Hugging Face ``config.json`` format, only the
#: fields the architecture reads). SmolVLM2-500M: SigLIP 768 x 12 at 512 px / 16, pixel shuffle 4
#: (64 tokens per image), a SmolLM2-style Llama text model 960 x 32 (15 heads, 5 KV heads).
KNOWN_VLM_CONFIGS: dict[str, dict[str, Any]] = {
    SMOLVLM2_500M: {
        "model_type": "smolvlm",
        "scale_factor": 4,
        "tie_word_embeddings": False,
        "image_token_id": 49190,
        "vision_config": {
            "model_type": "smolvlm_vision",
            "hidden_size": 768,
            "intermediate_size": 3072,
            "num_hidden_layers": 12,
            "num_attention_heads": 12,
            "num_channels": 3,
            "image_size": 512,
            "patch_size": 16,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        },
        "text_config": {
            "model_type": "llama",
            "hidden_size": 960,
            "intermediate_size": 2560,
            "num_hidden_layers": 32,
            "num_attention_heads": 15,
            "num_key_value_heads": 5,
            "head_dim": 64,
            "vocab_size": 49280,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0,
            "max_position_embeddings": 8192,
            "attention_bias": False,
            "mlp_bias": False,
            "tie_word_embeddings": False,
            "pad_token_id": 2,
        },
    }
}

#: Config options whose non-default value changes the model or its pipeline in a way we do not
#: implement: refused, never ignored. ``name -> (value that is fine, why)``.
_REFUSED: dict[str, tuple[Any, str]] = {
    "adapt_to_pi_aloha": (False, "the Aloha joint/gripper space conversion is not implemented"),
    "use_delta_joint_actions_aloha": (False, "delta joint actions are not implemented"),
    "add_image_special_tokens": (False, "image special tokens around image features"),
}


def unsupported(message: str) -> CheckpointError:
    return CheckpointError(message, slug="checkpoint-unsupported", status=400)


def invalid(message: str) -> CheckpointError:
    return CheckpointError(message, slug="checkpoint-config-invalid", status=400)


def get_intermediate_size(hidden: int, ffn_dim_multiplier: int = 4, multiple_of: int = 256) -> int:
    """The expert FFN width lerobot derives from its hidden width (Llama's 2/3 * 4 rule)."""
    size = int(ffn_dim_multiplier * int(2 * hidden / 3))
    return multiple_of * ((size + multiple_of - 1) // multiple_of)


@attrs.frozen
class SmolVLAArch:
    """Everything the torch modules are built from.

    :ivar vlm_config: the backbone config (HF format), text model already truncated to
        ``num_vlm_layers`` layers.
    :ivar expert_text_config: the expert's Llama config (HF format).
    :ivar expert_layer_of: per VLM layer, the expert layer that runs beside it, or None.
    :ivar cross_attn: per VLM layer, whether the expert layer there cross-attends to the VLM K/V
        (False: self-attention over [prefix K/V, own K/V]).
    """

    vlm_config: Mapping[str, Any]
    expert_text_config: Mapping[str, Any]
    num_vlm_layers: int
    num_expert_layers: int
    expert_layer_of: tuple[int | None, ...]
    cross_attn: tuple[bool, ...]
    expert_cross_layers: tuple[int, ...]
    max_state_dim: int
    max_action_dim: int
    chunk_size: int
    min_period: float
    max_period: float
    image_height: int
    image_width: int
    #: see :data:`PATCH_POSITION_RULES`
    patch_positions: str = "transformers-4.57"

    @property
    def text(self) -> Mapping[str, Any]:
        return self.vlm_config["text_config"]

    @property
    def vision(self) -> Mapping[str, Any]:
        return self.vlm_config["vision_config"]

    @property
    def vlm_width(self) -> int:
        return int(self.text["hidden_size"])

    @property
    def expert_width(self) -> int:
        return int(self.expert_text_config["hidden_size"])

    @property
    def head_dim(self) -> int:
        return int(self.text["head_dim"])

    @property
    def num_heads(self) -> int:
        return int(self.text["num_attention_heads"])

    @property
    def num_kv_heads(self) -> int:
        return int(self.text["num_key_value_heads"])

    @property
    def tokens_per_image(self) -> int:
        patch = int(self.vision["patch_size"])
        scale = int(self.vlm_config["scale_factor"])
        return (self.image_height // patch) * (self.image_width // patch) // (scale * scale)


@attrs.frozen
class SmolVLAPolicyConfig:
    """The parsed ``config.json`` of a SmolVLA checkpoint."""

    raw: Mapping[str, Any]
    arch: SmolVLAArch
    cameras: tuple[str, ...]
    state_dim: int
    action_dim: int
    num_steps: int
    tokenizer_max_length: int
    pad_language_to: str
    normalization_mapping: Mapping[str, str]
    vlm_source: str  # "known:<id>" or the directory whose config.json was read
    vlm_dir: Path | None


def resolve_vlm_config(
    name: str, checkpoint_dir: Path | None
) -> tuple[dict[str, Any], str, Path | None]:
    """The backbone config ``vlm_model_name`` names: a local directory first (absolute, or
    relative to the checkpoint), then a known Hub id.

    :raises CheckpointError: ``checkpoint-unsupported`` for an unknown id without a local config.
    """
    candidates: list[Path] = []
    path = Path(name).expanduser()
    if path.is_absolute():
        candidates.append(path)
    elif checkpoint_dir is not None:
        candidates.append(Path(checkpoint_dir) / path)
    for candidate in candidates:
        config_file = candidate / "config.json"
        if config_file.is_file():
            try:
                data = json.loads(config_file.read_text(encoding="utf-8"))
            except (OSError, ValueError) as exc:
                raise invalid(f"cannot read the VLM config {config_file}: {exc}") from exc
            return data, str(candidate), candidate
    if name in KNOWN_VLM_CONFIGS:
        return copy.deepcopy(KNOWN_VLM_CONFIGS[name]), f"known:{name}", None
    raise unsupported(
        f"vlm_model_name {name!r} is neither a known backbone ({sorted(KNOWN_VLM_CONFIGS)}) nor a "
        "local directory with its config.json (absolute, or relative to the checkpoint)"
    )


def _int(config: Mapping[str, Any], key: str, default: Any = None) -> int:
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise invalid(f"config field {key!r} must be an int, got {value!r}")
    return value


def _feature_dim(config: Mapping[str, Any], group: str, key: str) -> int:
    feature = (config.get(group) or {}).get(key)
    if not isinstance(feature, Mapping) or not feature.get("shape"):
        raise invalid(f"config {group} has no {key!r} feature with a shape")
    shape = list(feature["shape"])
    if len(shape) != 1:
        raise unsupported(f"{key} must be a vector, got shape {shape}")
    return int(shape[0])


def _check_refusals(config: Mapping[str, Any]) -> None:
    for key, (fine, why) in _REFUSED.items():
        if key in config and config[key] not in (fine, None):
            raise unsupported(f"SmolVLA option {key}={config[key]!r} is not supported ({why})")
    prefix_length = config.get("prefix_length", -1)
    if prefix_length is not None and int(prefix_length) > 0:
        raise unsupported(f"SmolVLA option prefix_length={prefix_length} is not supported")
    rtc = config.get("rtc_config")
    if isinstance(rtc, Mapping) and rtc.get("enabled"):
        raise unsupported("real-time chunking (rtc_config.enabled) is not supported")
    if int(config.get("n_obs_steps", 1)) != 1:
        raise unsupported(f"n_obs_steps={config.get('n_obs_steps')} is not supported (only 1)")
    if config.get("resize_imgs_with_padding") is None:
        raise unsupported(
            "resize_imgs_with_padding=null (images at their own size) is not supported"
        )
    mode = config.get("attention_mode", "cross_attn")
    if mode not in ("cross_attn", "self_attn"):
        raise unsupported(f"attention_mode={mode!r}; supported: cross_attn, self_attn")
    pad_to = config.get("pad_language_to", "longest")
    if pad_to not in ("longest", "max_length"):
        raise unsupported(f"pad_language_to={pad_to!r}; supported: longest, max_length")
    mapping = config.get("normalization_mapping") or {}
    visual = mapping.get("VISUAL", "IDENTITY")
    if visual != "IDENTITY":
        raise unsupported(f"image normalization {visual!r} is not supported (only IDENTITY)")


#: How SmolVLM's vision embeddings bucket patch coordinates into the position table. The rule
#: changed between transformers releases, the ids are baked into the exported graph, and a
#: checkpoint must see the ids it was trained with:
#:
#: - ``"transformers-4.57"`` (lerobot 0.4.x requires transformers >=4.57.1,<5): ``i / n *
#:   (1 - 1e-6)`` lands just below each boundary, so a full n x n grid whose side divides the
#:   table reads ids ``[0, 0, 1, ..., n-2]`` per axis;
#: - ``"transformers-5"``: ``min(i / n, 1 - 1e-6)``, ids ``[0, 1, ..., n-1]`` per axis.
#:
#: Chosen at export with ``--model-option vision_patch_positions=RULE``.
PATCH_POSITION_RULES = ("transformers-4.57", "transformers-5")
DEFAULT_PATCH_POSITIONS = "transformers-4.57"


def build_arch(
    config: Mapping[str, Any],
    vlm_config: Mapping[str, Any],
    patch_positions: str = DEFAULT_PATCH_POSITIONS,
) -> SmolVLAArch:
    """The module architecture of a SmolVLA config and its backbone config.

    :param patch_positions: the vision patch position-id rule of the transformers release the
        checkpoint was trained with (lerobot 0.4.x: 4.57; see :data:`PATCH_POSITION_RULES`).
    """
    if patch_positions not in PATCH_POSITION_RULES:
        raise unsupported(
            f"patch position rule {patch_positions!r}; known: {list(PATCH_POSITION_RULES)}"
        )
    vlm = copy.deepcopy(dict(vlm_config))
    text = dict(vlm.get("text_config") or {})
    vision = dict(vlm.get("vision_config") or {})
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size"):
        if key not in text:
            raise invalid(f"the VLM text_config has no {key}")
    for key in ("hidden_size", "num_hidden_layers", "num_attention_heads", "patch_size"):
        if key not in vision:
            raise invalid(f"the VLM vision_config has no {key}")
    text.setdefault("num_key_value_heads", text["num_attention_heads"])
    text.setdefault("head_dim", text["hidden_size"] // text["num_attention_heads"])
    text.setdefault("model_type", "llama")
    if text["model_type"] != "llama":
        raise unsupported(f"VLM text model type {text['model_type']!r} (only llama)")
    if text.get("attention_bias") or text.get("mlp_bias"):
        raise unsupported("a VLM text model with attention or MLP biases is not supported")
    vlm.setdefault("scale_factor", 2)

    total = int(text["num_hidden_layers"])
    num_vlm_layers = int(config.get("num_vlm_layers", 16))
    if num_vlm_layers > 0:
        # lerobot slices the layer list: asking for more layers than exist keeps them all.
        total = min(total, num_vlm_layers)
    text["num_hidden_layers"] = total
    vlm["text_config"] = text
    vlm["vision_config"] = vision

    multiplier = float(config.get("expert_width_multiplier", 0.75))
    expert = copy.deepcopy(text)
    expert["hidden_size"] = int(int(text["hidden_size"]) * multiplier)
    expert["intermediate_size"] = get_intermediate_size(int(int(text["hidden_size"]) * multiplier))
    num_expert = int(config.get("num_expert_layers", -1))
    if num_expert > 0:
        if total % num_expert != 0:
            raise invalid(
                f"num_vlm_layers {total} is not a multiple of num_expert_layers {num_expert}"
            )
        expert["num_hidden_layers"] = num_expert
    else:
        num_expert = total
    every = int(config.get("self_attn_every_n_layers", 2))
    cross_mode = "cross" in str(config.get("attention_mode", "cross_attn"))

    # lerobot's get_model_layers: expert layer i // m beside VLM layer i when i % m == 0.
    multiple = total // num_expert
    expert_layer_of: list[int | None] = []
    for i in range(total):
        if multiple > 0 and i > 0 and i % multiple != 0:
            expert_layer_of.append(None)
        else:
            expert_layer_of.append(i // multiple if multiple > 0 else i)
    # Which expert layers got a (kv_heads * head_dim)-input k/v projection (decided per expert
    # layer index at build time) and which path runs at each VLM layer (decided per VLM layer
    # index at run time). They must agree, or lerobot's own forward fails on a shape.
    cross_layers = tuple(
        j for j in range(num_expert) if cross_mode and not (every > 0 and j % every == 0)
    )
    cross_attn = tuple(cross_mode and not (every > 0 and i % every == 0) for i in range(total))
    for i, j in enumerate(expert_layer_of):
        if j is None and not cross_attn[i]:
            raise unsupported(
                f"num_expert_layers={num_expert} leaves VLM layer {i} without an expert layer on "
                "a self-attention step (lerobot's own forward fails there)"
            )
        if j is not None and cross_attn[i] != (j in cross_layers):
            raise unsupported(
                f"num_expert_layers={num_expert} with self_attn_every_n_layers={every}: expert "
                f"layer {j} runs beside VLM layer {i} with mismatched attention kinds"
            )

    width, height = (int(v) for v in config["resize_imgs_with_padding"])
    patch = int(vision["patch_size"])
    scale = int(vlm["scale_factor"])
    side_h, side_w = height // patch, width // patch
    if height % patch or width % patch or side_h != side_w or side_h % scale:
        raise unsupported(
            f"resize_imgs_with_padding={[width, height]} does not give a square patch grid "
            f"divisible by the pixel-shuffle factor {scale} (patch {patch})"
        )
    return SmolVLAArch(
        vlm_config=vlm,
        expert_text_config=expert,
        num_vlm_layers=total,
        num_expert_layers=num_expert,
        expert_layer_of=tuple(expert_layer_of),
        cross_attn=cross_attn,
        expert_cross_layers=cross_layers,
        max_state_dim=_int(config, "max_state_dim", 32),
        max_action_dim=_int(config, "max_action_dim", 32),
        chunk_size=_int(config, "chunk_size", 50),
        min_period=float(config.get("min_period", 4e-3)),
        max_period=float(config.get("max_period", 4.0)),
        image_height=height,
        image_width=width,
        patch_positions=patch_positions,
    )


def parse_policy_config(
    config: Mapping[str, Any],
    checkpoint_dir: Path | None = None,
    patch_positions: str = DEFAULT_PATCH_POSITIONS,
) -> SmolVLAPolicyConfig:
    """Parse and check a SmolVLA ``config.json``.

    :param patch_positions: the vision patch position-id rule (:data:`PATCH_POSITION_RULES`).

    :raises CheckpointError: ``checkpoint-config-invalid`` (malformed) or
        ``checkpoint-unsupported`` (an option we do not implement).
    """
    if not isinstance(config, Mapping) or config.get("type") != "smolvla":
        raise invalid("not a SmolVLA config (type must be 'smolvla')")
    _check_refusals(config)
    vlm_name = str(config.get("vlm_model_name") or SMOLVLM2_500M)
    vlm_config, vlm_source, vlm_dir = resolve_vlm_config(vlm_name, checkpoint_dir)
    arch = build_arch(config, vlm_config, patch_positions)

    from reflex_core.models.lerobot import camera_names

    cameras = tuple(camera_names(config))
    if not cameras:
        raise invalid("the config's input_features name no camera (observation.images.*)")
    state_dim = _feature_dim(config, "input_features", "observation.state")
    action_dim = _feature_dim(config, "output_features", "action")
    if state_dim > arch.max_state_dim or action_dim > arch.max_action_dim:
        raise invalid(
            f"state/action dims {state_dim}/{action_dim} exceed max_state_dim/max_action_dim "
            f"{arch.max_state_dim}/{arch.max_action_dim}"
        )
    n_action_steps = int(config.get("n_action_steps", arch.chunk_size))
    if n_action_steps > arch.chunk_size:
        raise invalid(f"n_action_steps {n_action_steps} > chunk_size {arch.chunk_size}")
    mapping = {
        str(k): str(v)
        for k, v in (
            config.get("normalization_mapping")
            or {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"}
        ).items()
    }
    mapping.setdefault("STATE", "MEAN_STD")
    mapping.setdefault("ACTION", "MEAN_STD")
    return SmolVLAPolicyConfig(
        raw=dict(config),
        arch=arch,
        cameras=cameras,
        state_dim=state_dim,
        action_dim=action_dim,
        num_steps=_int(config, "num_steps", 10),
        tokenizer_max_length=_int(config, "tokenizer_max_length", 48),
        pad_language_to=str(config.get("pad_language_to", "longest")),
        normalization_mapping=mapping,
        vlm_source=vlm_source,
        vlm_dir=vlm_dir,
    )
