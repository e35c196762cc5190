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

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.models.lerobot_writer import (
    BuiltinSpecBase,
    franka_stats,
    lerobot_policy_fields,
    lookup_spec,
    normalizer_step,
    save_weights,
    write_json,
    write_processors,
)

# Bump when the writer's output changes for the same spec (weights init, files written).
WRITER_VERSION = 1


@attrs.frozen(kw_only=True)
class BuiltinSpec(BuiltinSpecBase):
    """Sizes and I/O of one built-in checkpoint (the ``reflex_architecture`` block and more)."""

    writer_version = WRITER_VERSION

    family: str
    vision: Mapping[str, int]
    vlm: Mapping[str, int]
    expert: Mapping[str, int]


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

_TINY_PI0 = BuiltinSpec(
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
)

BUILTIN_SPECS: dict[str, BuiltinSpec] = {
    spec.name: spec
    for spec in (
        _TINY_PI0,
        # pi0.5 at pi0's toy sizes, with a longer chunk.
        attrs.evolve(
            _TINY_PI0,
            name="tiny-pi05",
            family="pi05",
            description="pi0.5 layout at toy size (2 cameras 32x32, 2 layers): exports in seconds",
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
    return lookup_spec(BUILTIN_SPECS, name)


def builtin_config(name: str) -> dict[str, Any]:
    """The lerobot-style ``config.json`` of a built-in checkpoint."""
    from reflex_core.models.tiny_tokenizer import tiny_vocabulary

    spec = _spec(name)
    size = spec.image_size
    mode = "QUANTILES" if spec.family == "pi05" else "MEAN_STD"
    config: dict[str, Any] = {
        **lerobot_policy_fields(
            spec.family,
            cameras=spec.cameras,
            image_size=size,
            state_dim=spec.state_dim,
            action_dim=spec.action_dim,
        ),
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


def _processor_files(spec: BuiltinSpec, config: Mapping[str, Any]) -> dict[str, Any]:
    """The processor JSONs and stats-file names, as lerobot v0.4.x writes them (notes §3)."""
    features = {**config["input_features"], **config["output_features"]}
    norm_map = dict(config["normalization_mapping"])
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
    steps[index] = normalizer_step("normalizer_processor", features, norm_map, pre_state)
    post_state = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
    post = {
        "name": "policy_postprocessor",
        "steps": [
            normalizer_step(
                "unnormalizer_processor", config["output_features"], norm_map, post_state
            ),
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
    save_weights(model.state_dict(), directory / "model.safetensors")

    files = _processor_files(spec, config)
    stats = {
        "observation.state": franka_stats(spec.state_dim),
        "action": franka_stats(spec.action_dim),
    }
    write_processors(directory, files, stats)
    build_tiny_tokenizer().save(str(directory / "tokenizer.json"))
    write_json(directory / "config.json", config)
    return directory
