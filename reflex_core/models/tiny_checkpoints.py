"""Built-in tiny checkpoints: real lerobot-style directories with seeded random weights.

``tiny-pi0`` / ``tiny-pi05`` export in seconds and run in milliseconds; ``tiny-pi05-heavy`` keeps
pi0's cost proportions (the VLM prefix costs well over ten expert steps on a CPU) so the
decomposed runtime has something to win. Each is written by :func:`write_builtin_checkpoint` as
``config.json``, ``model.safetensors`` (lerobot layout, ``model.`` prefix), the pre/post processor
JSONs with their normalizer stats files, and a ``tokenizer.json``.

Importing this module does not import torch (the plugin registering the families lists the
names at startup); writing a checkpoint does.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.errors import CheckpointError

# Bump when the writer's output changes for the same spec (weights init, files written).
WRITER_VERSION = 1
FRANKA_CAMERAS = ("front", "wrist")

# Franka-like statistics (7 joints in rad + one finger opening in m) for the normalizer files.
_STATE_MEAN = [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02]
_STATE_STD = [1.44865, 0.8814, 1.44865, 0.7505, 1.44865, 0.9425, 1.44865, 0.01]
_LOW = [-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973, 0.0]
_HIGH = [2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973, 0.04]


@attrs.frozen
class BuiltinSpec:
    """Sizes and I/O of one built-in checkpoint (the ``reflex_architecture`` block and more)."""

    name: str
    family: str
    description: str
    image_size: int
    vision: Mapping[str, int]
    vlm: Mapping[str, int]
    expert: Mapping[str, int]
    chunk_size: int
    tokenizer_max_length: int
    cameras: tuple[str, ...] = FRANKA_CAMERAS
    action_dim: int = 8
    state_dim: int = 8
    max_state_dim: int = 32
    max_action_dim: int = 32
    num_steps: int = 10
    seed: int = 0

    def digest(self) -> str:
        """A short hash of the spec and writer version: the cache directory's suffix."""
        text = json.dumps([WRITER_VERSION, attrs.asdict(self)], sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:10]


_TINY_VISION = {"width": 32, "depth": 2, "mlp_dim": 64, "num_heads": 2, "patch_size": 8}
_TINY_VLM = {
    "width": 64,
    "depth": 2,
    "mlp_dim": 128,
    "num_heads": 2,
    "num_kv_heads": 1,
    "head_dim": 32,
}
_TINY_EXPERT = {
    "width": 48,
    "depth": 2,
    "mlp_dim": 96,
    "num_heads": 2,
    "num_kv_heads": 1,
    "head_dim": 32,
}

BUILTIN_SPECS: dict[str, BuiltinSpec] = {
    spec.name: spec
    for spec in (
        BuiltinSpec(
            name="tiny-pi0",
            family="pi0",
            description="pi0 layout at toy size (2 cameras 32x32, 2 layers): exports in seconds",
            image_size=32,
            vision=_TINY_VISION,
            vlm=_TINY_VLM,
            expert=_TINY_EXPERT,
            chunk_size=10,
            tokenizer_max_length=16,
            seed=1,
        ),
        BuiltinSpec(
            name="tiny-pi05",
            family="pi05",
            description="pi0.5 layout at toy size (2 cameras 32x32, 2 layers): exports in seconds",
            image_size=32,
            vision=_TINY_VISION,
            vlm=_TINY_VLM,
            expert=_TINY_EXPERT,
            chunk_size=16,
            # "Task: <words>, State: <8 bins>;\nAction:" plus BOS needs ~25 tokens.
            tokenizer_max_length=32,
            seed=2,
        ),
        BuiltinSpec(
            name="tiny-pi05-heavy",
            family="pi05",
            description=(
                "pi0.5 with pi0's cost proportions (2 cameras 224x224/16, a deep VLM, a small "
                "expert): the prefix costs >10 expert steps"
            ),
            image_size=224,
            vision={"width": 192, "depth": 6, "mlp_dim": 768, "num_heads": 3, "patch_size": 16},
            vlm={
                "width": 192,
                "depth": 4,
                "mlp_dim": 768,
                "num_heads": 3,
                "num_kv_heads": 1,
                "head_dim": 64,
            },
            expert={
                "width": 96,
                "depth": 4,
                "mlp_dim": 384,
                "num_heads": 3,
                "num_kv_heads": 1,
                "head_dim": 64,
            },
            chunk_size=50,
            tokenizer_max_length=48,
            seed=3,
        ),
    )
}

#: name -> one-line description of every built-in checkpoint.
BUILTIN_CHECKPOINTS: dict[str, str] = {n: s.description for n, s in BUILTIN_SPECS.items()}


def _spec(name: str) -> BuiltinSpec:
    spec = BUILTIN_SPECS.get(name)
    if spec is None:
        raise CheckpointError(
            f"unknown built-in checkpoint {name!r}; built-ins: {sorted(BUILTIN_SPECS)}",
            slug="checkpoint-not-found",
            status=404,
        )
    return spec


def builtin_config(name: str) -> dict[str, Any]:
    """The lerobot-style ``config.json`` of a built-in checkpoint."""
    from reflex_core.models.tiny_tokenizer import tiny_vocabulary

    spec = _spec(name)
    size = spec.image_size
    input_features: dict[str, Any] = {
        f"observation.images.{camera}": {"type": "VISUAL", "shape": [3, size, size]}
        for camera in spec.cameras
    }
    input_features["observation.state"] = {"type": "STATE", "shape": [spec.state_dim]}
    mode = "QUANTILES" if spec.family == "pi05" else "MEAN_STD"
    config: dict[str, Any] = {
        "type": spec.family,
        "n_obs_steps": 1,
        "input_features": input_features,
        "output_features": {"action": {"type": "ACTION", "shape": [spec.action_dim]}},
        "device": "cpu",
        "use_amp": False,
        "push_to_hub": False,
        "repo_id": None,
        "private": None,
        "tags": None,
        "license": None,
        "pretrained_path": None,
        "paligemma_variant": "reflex_custom",
        "action_expert_variant": "reflex_custom",
        "dtype": "float32",
        "chunk_size": spec.chunk_size,
        "n_action_steps": spec.chunk_size,
        "max_state_dim": spec.max_state_dim,
        "max_action_dim": spec.max_action_dim,
        "num_inference_steps": spec.num_steps,
        "time_sampling_beta_alpha": 1.5,
        "time_sampling_beta_beta": 1.0,
        "time_sampling_scale": 0.999,
        "time_sampling_offset": 0.001,
        "min_period": 0.004,
        "max_period": 4.0,
        "image_resolution": [size, size],
        "empty_cameras": 0,
        "tokenizer_max_length": spec.tokenizer_max_length,
        "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": mode, "ACTION": mode},
        "gradient_checkpointing": False,
        "compile_model": False,
        "freeze_vision_encoder": False,
        "train_expert_only": False,
        "reflex_architecture": {
            "vision": dict(spec.vision),
            "vlm": dict(spec.vlm),
            "expert": dict(spec.expert),
            "vocab_size": len(tiny_vocabulary()),
        },
        "reflex_builtin": {"name": spec.name, "seed": spec.seed, "digest": spec.digest()},
    }
    return config


def _stats(dim: int) -> dict[str, list[float]]:
    def cycle(values: list[float]) -> list[float]:
        return [values[i % len(values)] for i in range(dim)]

    mean, std, low, high = cycle(_STATE_MEAN), cycle(_STATE_STD), cycle(_LOW), cycle(_HIGH)
    span = [h - lo for lo, h in zip(low, high, strict=True)]
    return {
        "mean": mean,
        "std": std,
        "min": low,
        "max": high,
        "q01": [lo + 0.02 * s for lo, s in zip(low, span, strict=True)],
        "q10": [lo + 0.1 * s for lo, s in zip(low, span, strict=True)],
        "q50": [lo + 0.5 * s for lo, s in zip(low, span, strict=True)],
        "q90": [lo + 0.9 * s for lo, s in zip(low, span, strict=True)],
        "q99": [lo + 0.98 * s for lo, s in zip(low, span, strict=True)],
    }


def _processor_files(spec: BuiltinSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """The processor JSONs and stats-file names, as lerobot v0.4.x writes them (notes §3)."""
    features = {**config["input_features"], **config["output_features"]}
    norm_map = dict(config["normalization_mapping"])
    normalizer_config = {"eps": 1e-8, "features": features, "norm_map": norm_map}
    tokenizer_step = {
        "registry_name": "tokenizer_processor",
        "config": {
            "max_length": spec.tokenizer_max_length,
            "task_key": "task",
            "padding_side": "right",
            "padding": "max_length",
            "truncation": True,
            "tokenizer_name": "tokenizer.json",
        },
    }
    if spec.family == "pi05":
        index = 2
        steps: list[dict[str, Any]] = [
            {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
            {"registry_name": "to_batch_processor", "config": {}},
            None,  # the normalizer, at index 2
            {
                "registry_name": "pi05_prepare_state_tokenizer_processor_step",
                "config": {"max_state_dim": spec.max_state_dim},
            },
            tokenizer_step,
            {"registry_name": "device_processor", "config": {"device": "cpu"}},
        ]
    else:
        index = 5
        steps = [
            {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
            {"registry_name": "to_batch_processor", "config": {}},
            {"registry_name": "pi0_new_line_processor", "config": {}},
            tokenizer_step,
            {"registry_name": "device_processor", "config": {"device": "cpu"}},
            None,  # the normalizer, at index 5
        ]
    pre_state = f"policy_preprocessor_step_{index}_normalizer_processor.safetensors"
    steps[index] = {
        "registry_name": "normalizer_processor",
        "config": normalizer_config,
        "state_file": pre_state,
    }
    post_state = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
    post = {
        "name": "policy_postprocessor",
        "steps": [
            {
                "registry_name": "unnormalizer_processor",
                "config": {
                    "eps": 1e-8,
                    "features": config["output_features"],
                    "norm_map": norm_map,
                },
                "state_file": post_state,
            },
            {"registry_name": "device_processor", "config": {"device": "cpu"}},
        ],
    }
    return {
        "pre": {"name": "policy_preprocessor", "steps": steps},
        "post": post,
        "pre_state": pre_state,
        "post_state": post_state,
    }


def _init_weights(model: Any, seed: int) -> None:
    """Seeded init that keeps activations O(1): fan-in scaled linears, unit token embeddings,
    norms at identity, adaRMS gates open."""
    import torch
    from torch import nn
    from transformers.models.gemma.modeling_gemma import GemmaRMSNorm

    from reflex_core.models.modeling import AdaRMSNorm

    generator = torch.Generator().manual_seed(seed)

    def normal_(tensor: torch.Tensor, std: float) -> None:
        tensor.copy_(torch.randn(tensor.shape, generator=generator) * std)

    with torch.no_grad():
        for name, module in sorted(model.named_modules(), key=lambda item: item[0]):
            if isinstance(module, AdaRMSNorm):
                width = module.dim
                normal_(module.dense.weight, 0.02)
                module.dense.bias.zero_()
                module.dense.bias[2 * width :] = 1.0  # gate = 1: a plain residual at init
            elif isinstance(module, nn.Linear) and not name.endswith(".dense"):
                if name.endswith("lm_head"):
                    continue  # tied to the embedding below
                normal_(module.weight, module.in_features**-0.5)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                normal_(module.weight, fan_in**-0.5)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, nn.Embedding):
                # Token embeddings get scaled by sqrt(width) in the forward.
                std = 0.02 if "position_embedding" in name else module.embedding_dim**-0.5
                normal_(module.weight, std)
            elif isinstance(module, nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
            elif isinstance(module, GemmaRMSNorm):
                module.weight.zero_()
        paligemma = model.paligemma_with_expert.paligemma
        paligemma.lm_head.weight.copy_(paligemma.model.language_model.embed_tokens.weight)
        expert_head = model.paligemma_with_expert.gemma_expert.lm_head
        normal_(expert_head.weight, 0.02)


def write_builtin_checkpoint(name: str, directory: str | Path) -> Path:
    """Write built-in checkpoint ``name`` into ``directory`` (created; files overwritten).

    :return: the directory.
    :raises CheckpointError: slug ``checkpoint-not-found`` for an unknown name.
    """
    import numpy as np
    from safetensors.numpy import save_file as save_numpy
    from safetensors.torch import save_file

    from reflex_core.models.config import parse_policy_config
    from reflex_core.models.modeling import build_model
    from reflex_core.models.tiny_tokenizer import build_tiny_tokenizer

    spec = _spec(name)
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    config = builtin_config(name)
    policy_config = parse_policy_config(config)

    model = build_model(policy_config.architecture)
    _init_weights(model, spec.seed)
    tensors = {
        "model." + key: value.detach().clone().contiguous()
        for key, value in model.state_dict().items()
    }
    save_file(tensors, str(directory / "model.safetensors"), metadata={"format": "pt"})

    files = _processor_files(spec, config)
    stats: dict[str, Any] = {}
    for feature, dim in (("observation.state", spec.state_dim), ("action", spec.action_dim)):
        for stat, values in _stats(dim).items():
            stats[f"{feature}.{stat}"] = np.asarray(values, dtype=np.float32)
    save_numpy(stats, str(directory / files["pre_state"]))
    save_numpy(stats, str(directory / files["post_state"]))
    _write_json(directory / "policy_preprocessor.json", files["pre"])
    _write_json(directory / "policy_postprocessor.json", files["post"])
    build_tiny_tokenizer().save(str(directory / "tokenizer.json"))
    _write_json(directory / "config.json", config)
    return directory


def _write_json(path: Path, value: Any) -> None:
    path.write_text(json.dumps(value, indent=2) + "\n", encoding="utf-8")


def builtin_cache_root() -> Path:
    """``$REFLEX_CACHE_DIR/checkpoints`` or ``$XDG_CACHE_HOME/reflex/checkpoints`` (~/.cache)."""
    root = os.environ.get("REFLEX_CACHE_DIR")
    if root:
        return Path(root) / "checkpoints"
    xdg = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(xdg) / "reflex" / "checkpoints"


def ensure_builtin_checkpoint(name: str, cache_root: str | Path | None = None) -> Path:
    """The cached directory of built-in ``name``, written once (atomically) if absent."""
    spec = _spec(name)
    root = Path(cache_root) if cache_root is not None else builtin_cache_root()
    target = root / f"{spec.name}-{spec.digest()}"
    if (target / "config.json").is_file():
        return target
    root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{spec.name}-", dir=root))
    try:
        write_builtin_checkpoint(name, staging)
        staging.chmod(0o755)  # mkdtemp makes it private; the cache is shared like ~/.cache/hf
        try:
            staging.rename(target)
        except OSError:
            # Another process won the race (or a partial dir sits there): use/replace it.
            if not (target / "config.json").is_file():
                shutil.rmtree(target, ignore_errors=True)
                staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    return target
