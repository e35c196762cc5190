"""The architecture and I/O facts of a pi0 / pi0.5 checkpoint, read from its ``config.json``.

torch-free on purpose: the plugin that registers the model families and the tooling that only
inspects a checkpoint import this module without pulling in torch.

A lerobot ``config.json`` names its sizes through variants (``paligemma_variant="gemma_2b"``,
``action_expert_variant="gemma_300m"``) and always uses SigLIP so400m/14 as the vision tower.
Our built-in tiny checkpoints are real lerobot-style configs too; they set both variants to
``"reflex_custom"`` and spell their sizes out in an extra ``"reflex_architecture"`` block, which a
real checkpoint never needs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import attrs

from reflex_core.errors import CheckpointError

FAMILIES = ("pi0", "pi05")
CUSTOM_VARIANT = "reflex_custom"
ARCHITECTURE_KEY = "reflex_architecture"
IMAGE_FEATURE_PREFIX = "observation.images."
STATE_FEATURE = "observation.state"
ACTION_FEATURE = "action"
NORMALIZATION_MODES = ("IDENTITY", "MEAN_STD", "MIN_MAX", "QUANTILES", "QUANTILE10")

# The PaliGemma tokenizer's vocabulary; both the VLM embedding and the unused lm_heads use it.
PALIGEMMA_VOCAB_SIZE = 257152


@attrs.frozen
class GemmaSpec:
    """One Gemma stack (the PaliGemma language model or the action expert)."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    num_kv_heads: int
    head_dim: int


@attrs.frozen
class VisionSpec:
    """The SigLIP vision tower (no pooling head) for one square image size."""

    width: int
    depth: int
    mlp_dim: int
    num_heads: int
    patch_size: int
    image_size: int

    @property
    def tokens_per_image(self) -> int:
        return (self.image_size // self.patch_size) ** 2


# openpi / lerobot `get_gemma_config`.
GEMMA_VARIANTS: dict[str, GemmaSpec] = {
    "gemma_2b": GemmaSpec(
        width=2048, depth=18, mlp_dim=16384, num_heads=8, num_kv_heads=1, head_dim=256
    ),
    "gemma_300m": GemmaSpec(
        width=1024, depth=18, mlp_dim=4096, num_heads=8, num_kv_heads=1, head_dim=256
    ),
}


def siglip_so400m(image_size: int) -> VisionSpec:
    """PaliGemma's vision tower: SigLIP so400m/14 (27 layers, width 1152, 16 heads)."""
    return VisionSpec(
        width=1152, depth=27, mlp_dim=4304, num_heads=16, patch_size=14, image_size=image_size
    )


@attrs.frozen
class PiArchitecture:
    """Everything needed to build the torch module (sizes only, no I/O semantics)."""

    family: str
    vision: VisionSpec
    vlm: GemmaSpec
    expert: GemmaSpec
    vocab_size: int
    max_state_dim: int
    max_action_dim: int
    chunk_size: int
    min_period: float = 0.004
    max_period: float = 4.0
    rms_norm_eps: float = 1e-6
    layer_norm_eps: float = 1e-6
    rope_theta: float = 10000.0


@attrs.frozen
class PiPolicyConfig:
    """A parsed checkpoint ``config.json``: the architecture plus the policy's I/O facts."""

    family: str
    architecture: PiArchitecture
    chunk_size: int
    max_state_dim: int
    max_action_dim: int
    action_dim: int
    state_dim: int
    num_steps: int
    tokenizer_max_length: int
    image_size: tuple[int, int]
    camera_names: tuple[str, ...]
    normalization_mapping: Mapping[str, str]
    raw: Mapping[str, Any]


def _invalid(message: str, field: str | None = None) -> CheckpointError:
    return CheckpointError(message, slug="checkpoint-config-invalid", status=400, field=field)


def _positive_int(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _invalid(f"config.json {field} must be a positive integer, got {value!r}", field)
    return value


def _feature_shape(features: Mapping[str, Any], key: str, field: str) -> list[int] | None:
    feature = features.get(key)
    if feature is None:
        return None
    shape = feature.get("shape") if isinstance(feature, Mapping) else None
    if not isinstance(shape, list | tuple) or not shape:
        raise _invalid(f"config.json {field}[{key!r}] needs a non-empty 'shape'", field)
    return [_positive_int(s, f"{field}[{key!r}].shape") for s in shape]


def _gemma_spec(values: Any, field: str) -> GemmaSpec:
    if not isinstance(values, Mapping):
        raise _invalid(f"config.json {field} must be an object", field)
    names = [a.name for a in attrs.fields(GemmaSpec)]
    missing = [n for n in names if n not in values]
    if missing:
        raise _invalid(f"config.json {field} lacks {missing}", field)
    return GemmaSpec(**{n: _positive_int(values[n], f"{field}.{n}") for n in names})


def _vision_spec(values: Any, field: str, image_size: int) -> VisionSpec:
    if not isinstance(values, Mapping):
        raise _invalid(f"config.json {field} must be an object", field)
    names = ["width", "depth", "mlp_dim", "num_heads", "patch_size"]
    missing = [n for n in names if n not in values]
    if missing:
        raise _invalid(f"config.json {field} lacks {missing}", field)
    spec = VisionSpec(
        **{n: _positive_int(values[n], f"{field}.{n}") for n in names}, image_size=image_size
    )
    if spec.width % spec.num_heads:
        raise _invalid(f"{field}.width must be a multiple of num_heads", field)
    return spec


def parse_policy_config(config: Mapping[str, Any]) -> PiPolicyConfig:
    """Parse a lerobot pi0 / pi05 ``config.json`` dict.

    :raises CheckpointError: slug ``checkpoint-config-invalid`` naming the bad field.
    """
    if not isinstance(config, Mapping):
        raise _invalid("config.json must hold a JSON object")
    family = config.get("type")
    if family not in FAMILIES:
        raise CheckpointError(
            f"config.json type {family!r} is not a supported family {list(FAMILIES)}",
            slug="checkpoint-unsupported",
            status=400,
            field="type",
        )
    chunk_size = _positive_int(config.get("chunk_size", 50), "chunk_size")
    max_state_dim = _positive_int(config.get("max_state_dim", 32), "max_state_dim")
    max_action_dim = _positive_int(config.get("max_action_dim", 32), "max_action_dim")
    num_steps = _positive_int(config.get("num_inference_steps", 10), "num_inference_steps")
    default_len = 200 if family == "pi05" else 48
    tokenizer_max_length = _positive_int(
        config.get("tokenizer_max_length", default_len), "tokenizer_max_length"
    )

    resolution = config.get("image_resolution", [224, 224])
    if not isinstance(resolution, list | tuple) or len(resolution) != 2:
        raise _invalid("config.json image_resolution must be [height, width]", "image_resolution")
    height = _positive_int(resolution[0], "image_resolution")
    width = _positive_int(resolution[1], "image_resolution")
    if height != width:
        # PaliGemma's SigLIP position table is square (lerobot refuses the same).
        raise _invalid(f"image_resolution must be square, got {resolution}", "image_resolution")

    input_features = config.get("input_features") or {}
    output_features = config.get("output_features") or {}
    if not isinstance(input_features, Mapping) or not isinstance(output_features, Mapping):
        raise _invalid("config.json input_features/output_features must be objects")
    cameras = [
        key[len(IMAGE_FEATURE_PREFIX) :]
        for key in input_features
        if key.startswith(IMAGE_FEATURE_PREFIX)
    ]
    # lerobot's validate_features adds these; older saved configs may not list them.
    for i in range(int(config.get("empty_cameras", 0) or 0)):
        if f"empty_camera_{i}" not in cameras:
            cameras.append(f"empty_camera_{i}")
    if not cameras:
        raise _invalid(
            "config.json input_features has no 'observation.images.<name>' camera", "input_features"
        )
    state_shape = _feature_shape(input_features, STATE_FEATURE, "input_features")
    action_shape = _feature_shape(output_features, ACTION_FEATURE, "output_features")
    state_dim = state_shape[0] if state_shape else max_state_dim
    action_dim = action_shape[0] if action_shape else max_action_dim
    if state_dim > max_state_dim:
        raise _invalid(
            f"state dim {state_dim} exceeds max_state_dim {max_state_dim}", "input_features"
        )
    if action_dim > max_action_dim:
        raise _invalid(
            f"action dim {action_dim} exceeds max_action_dim {max_action_dim}", "output_features"
        )

    default_mode = "QUANTILES" if family == "pi05" else "MEAN_STD"
    mapping_in = config.get("normalization_mapping") or {}
    if not isinstance(mapping_in, Mapping):
        raise _invalid("normalization_mapping must be an object", "normalization_mapping")
    mapping = {"VISUAL": "IDENTITY", "STATE": default_mode, "ACTION": default_mode}
    mapping.update({str(k): str(v) for k, v in mapping_in.items()})
    for kind in ("STATE", "ACTION"):
        if mapping[kind] not in NORMALIZATION_MODES:
            raise _invalid(
                f"normalization_mapping[{kind!r}]={mapping[kind]!r} is not one of "
                f"{list(NORMALIZATION_MODES)}",
                "normalization_mapping",
            )

    architecture = PiArchitecture(
        family=family,
        chunk_size=chunk_size,
        max_state_dim=max_state_dim,
        max_action_dim=max_action_dim,
        min_period=float(config.get("min_period", 0.004)),
        max_period=float(config.get("max_period", 4.0)),
        **_sizes(config, height),
    )
    return PiPolicyConfig(
        family=family,
        architecture=architecture,
        chunk_size=chunk_size,
        max_state_dim=max_state_dim,
        max_action_dim=max_action_dim,
        action_dim=action_dim,
        state_dim=state_dim,
        num_steps=num_steps,
        tokenizer_max_length=tokenizer_max_length,
        image_size=(height, width),
        camera_names=tuple(cameras),
        normalization_mapping=mapping,
        raw=config,
    )


def _sizes(config: Mapping[str, Any], image_size: int) -> dict[str, Any]:
    """Vision, VLM and expert sizes and the vocabulary: from the variants, or our custom block."""
    vlm_variant = config.get("paligemma_variant", "gemma_2b")
    expert_variant = config.get("action_expert_variant", "gemma_300m")
    if CUSTOM_VARIANT in (vlm_variant, expert_variant):
        if vlm_variant != expert_variant:
            raise _invalid(
                f"{CUSTOM_VARIANT!r} must be used for both paligemma_variant and "
                "action_expert_variant",
                "paligemma_variant",
            )
        block = config.get(ARCHITECTURE_KEY)
        if not isinstance(block, Mapping):
            raise _invalid(
                f"variant {CUSTOM_VARIANT!r} needs a {ARCHITECTURE_KEY!r} block", ARCHITECTURE_KEY
            )
        vision = _vision_spec(block.get("vision"), f"{ARCHITECTURE_KEY}.vision", image_size)
        vlm = _gemma_spec(block.get("vlm"), f"{ARCHITECTURE_KEY}.vlm")
        expert = _gemma_spec(block.get("expert"), f"{ARCHITECTURE_KEY}.expert")
        vocab_size = _positive_int(block.get("vocab_size"), f"{ARCHITECTURE_KEY}.vocab_size")
    else:
        for field, name in (
            ("paligemma_variant", vlm_variant),
            ("action_expert_variant", expert_variant),
        ):
            if name not in GEMMA_VARIANTS:
                raise _invalid(f"{field}={name!r} is not one of {sorted(GEMMA_VARIANTS)}", field)
        vision = siglip_so400m(image_size)
        vlm = GEMMA_VARIANTS[vlm_variant]
        expert = GEMMA_VARIANTS[expert_variant]
        vocab_size = PALIGEMMA_VOCAB_SIZE
    if image_size % vision.patch_size:
        raise _invalid(
            f"image size {image_size} is not a multiple of the patch size {vision.patch_size}",
            "image_resolution",
        )
    # The joint attention concatenates both streams' heads layer by layer.
    for name in ("depth", "num_heads", "num_kv_heads", "head_dim"):
        if getattr(vlm, name) != getattr(expert, name):
            raise _invalid(
                f"the VLM and the action expert must share {name} "
                f"({getattr(vlm, name)} != {getattr(expert, name)})",
                "action_expert_variant",
            )
    if vlm.num_heads % vlm.num_kv_heads:
        raise _invalid("num_heads must be a multiple of num_kv_heads", "paligemma_variant")
    if expert.width % 2:
        raise _invalid("the action expert width must be even (sinusoidal time embedding)")
    return {"vision": vision, "vlm": vlm, "expert": expert, "vocab_size": vocab_size}
