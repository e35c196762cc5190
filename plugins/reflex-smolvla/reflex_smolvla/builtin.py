"""Built-in SmolVLA checkpoints written as real lerobot checkpoint directories.

``tiny-smolvla``: seeded random weights at toy size (2 cameras 32x32, a 4-layer VLM with 2
self-attention and 2 cross-attention expert layers), Franka's 8-dim state and action, so
``reflex export tiny-smolvla --embodiment franka`` fits; exports in seconds.

:func:`write_real_size_checkpoint`: random weights at the real ``lerobot/smolvla_base``
dimensions (450,046,176 parameters, SmolVLM2-500M backbone) for the benchmarks; never in tests.

A directory holds what lerobot 0.4.4 writes and reads: ``config.json`` (every field a
``SmolVLAConfig`` has, nothing else, so lerobot's own parser takes it), ``model.safetensors``
(``model.`` prefix), ``policy_preprocessor.json`` / ``policy_postprocessor.json`` with their
normalizer stats files, plus a ``tokenizer.json`` and, for the tiny one, the backbone's config in
``vlm/config.json`` (``vlm_model_name: "vlm"``, relative to the checkpoint; lerobot needs the
absolute path of that folder as ``vlm_model_name``). Reflex's own facts about the checkpoint go
to ``reflex_builtin.json``, outside lerobot's config.

torch-free at import; writing imports torch.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.models import lerobot_writer as writer

# Bump when the writer's output changes for the same spec.
WRITER_VERSION = 1
BUILTIN_FILE = "reflex_builtin.json"
#: The normalizer statistics lerobot's SmolVLA processors save (MEAN_STD by default).
_STATS = ("mean", "std", "min", "max")


def tiny_vlm_config(vocab_size: int) -> dict[str, Any]:
    """A SmolVLM config (Hugging Face format, loadable by ``AutoConfig``) at toy size."""
    return {
        "architectures": ["SmolVLMForConditionalGeneration"],
        "model_type": "smolvlm",
        "scale_factor": 2,
        "tie_word_embeddings": False,
        "image_token_id": 3,
        "vision_config": {
            "model_type": "smolvlm_vision",
            "hidden_size": 32,
            "intermediate_size": 64,
            "num_hidden_layers": 2,
            "num_attention_heads": 2,
            "num_channels": 3,
            "image_size": 32,
            "patch_size": 8,
            "hidden_act": "gelu_pytorch_tanh",
            "layer_norm_eps": 1e-6,
        },
        "text_config": {
            "model_type": "llama",
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "head_dim": 16,
            "vocab_size": vocab_size,
            "hidden_act": "silu",
            "rms_norm_eps": 1e-5,
            "rope_theta": 100000.0,
            "max_position_embeddings": 512,
            "attention_bias": False,
            "mlp_bias": False,
            "tie_word_embeddings": False,
            "pad_token_id": 0,
        },
    }


@attrs.frozen(kw_only=True)
class SmolVLASpec(writer.BuiltinSpecBase):
    writer_version = WRITER_VERSION

    num_vlm_layers: int


TINY_SMOLVLA = SmolVLASpec(
    name="tiny-smolvla",
    description=(
        "SmolVLA layout at toy size (2 cameras 32x32, 4 VLM layers, interleaved self/cross "
        "attention expert): exports in seconds"
    ),
    image_size=32,
    chunk_size=10,
    tokenizer_max_length=16,
    num_vlm_layers=4,
    seed=11,
)
BUILTIN_SPECS: dict[str, SmolVLASpec] = {TINY_SMOLVLA.name: TINY_SMOLVLA}


def smolvla_config(
    *,
    cameras: tuple[str, ...],
    image_size: int,
    state_dim: int,
    action_dim: int,
    chunk_size: int,
    tokenizer_max_length: int,
    num_vlm_layers: int,
    vlm_model_name: str,
    max_state_dim: int = 32,
    max_action_dim: int = 32,
    num_steps: int = 10,
    pad_language_to: str = "longest",
) -> dict[str, Any]:
    """A lerobot 0.4.4 ``SmolVLAConfig`` as ``config.json`` (every field, lerobot's defaults)."""
    return {
        **writer.lerobot_policy_fields(
            "smolvla",
            cameras=cameras,
            image_size=image_size,
            state_dim=state_dim,
            action_dim=action_dim,
        ),
        "use_peft": False,
        "chunk_size": chunk_size,
        "n_action_steps": chunk_size,
        "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"},
        "max_state_dim": max_state_dim,
        "max_action_dim": max_action_dim,
        "resize_imgs_with_padding": [image_size, image_size],
        "empty_cameras": 0,
        "adapt_to_pi_aloha": False,
        "use_delta_joint_actions_aloha": False,
        "tokenizer_max_length": tokenizer_max_length,
        "num_steps": num_steps,
        "use_cache": True,
        "freeze_vision_encoder": True,
        "train_expert_only": True,
        "train_state_proj": True,
        "optimizer_lr": 0.0001,
        "optimizer_betas": [0.9, 0.95],
        "optimizer_eps": 1e-08,
        "optimizer_weight_decay": 1e-10,
        "optimizer_grad_clip_norm": 10,
        "scheduler_warmup_steps": 1000,
        "scheduler_decay_steps": 30000,
        "scheduler_decay_lr": 2.5e-06,
        "vlm_model_name": vlm_model_name,
        "load_vlm_weights": False,
        "add_image_special_tokens": False,
        "attention_mode": "cross_attn",
        "prefix_length": -1,
        "pad_language_to": pad_language_to,
        "num_expert_layers": -1,
        "num_vlm_layers": num_vlm_layers,
        "self_attn_every_n_layers": 2,
        "expert_width_multiplier": 0.75,
        "min_period": 0.004,
        "max_period": 4.0,
        "rtc_config": None,
        "compile_model": False,
        "compile_mode": "max-autotune",
    }


def _processor_files(config: Mapping[str, Any], tokenizer_name: str) -> dict[str, Any]:
    """The processor JSONs as lerobot 0.4.x's ``make_smolvla_pre_post_processors`` saves them."""
    features = {**config["input_features"], **config["output_features"]}
    norm_map = dict(config["normalization_mapping"])
    pre_state = "policy_preprocessor_step_5_normalizer_processor.safetensors"
    post_state = "policy_postprocessor_step_0_unnormalizer_processor.safetensors"
    pre = {
        "name": "policy_preprocessor",
        "steps": [
            {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
            {"registry_name": "to_batch_processor", "config": {}},
            {"registry_name": "smolvla_new_line_processor", "config": {}},
            {
                "registry_name": "tokenizer_processor",
                "config": {
                    "max_length": config["tokenizer_max_length"],
                    "task_key": "task",
                    "padding_side": "right",
                    "padding": config["pad_language_to"],
                    "truncation": True,
                    "tokenizer_name": tokenizer_name,
                },
            },
            {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
            writer.normalizer_step("normalizer_processor", features, norm_map, pre_state),
        ],
    }
    post = {
        "name": "policy_postprocessor",
        "steps": [
            writer.normalizer_step(
                "unnormalizer_processor", config["output_features"], norm_map, post_state
            ),
            {"registry_name": "device_processor", "config": {"device": "cpu", "float_dtype": None}},
        ],
    }
    return {"pre": pre, "post": post, "pre_state": pre_state, "post_state": post_state}


def init_weights(model: Any, seed: int) -> None:
    """Seeded init that keeps activations O(1): fan-in scaled linears and convs, token
    embeddings at 1/sqrt(width) (the forward scales them by sqrt(width)), norms near identity
    (perturbed, so a test notices a norm that is skipped)."""
    import torch
    from torch import nn
    from transformers.models.llama.modeling_llama import LlamaRMSNorm

    generator = torch.Generator().manual_seed(seed)

    def normal_(tensor: torch.Tensor, std: float, mean: float = 0.0) -> None:
        tensor.copy_(torch.randn(tensor.shape, generator=generator) * std + mean)

    with torch.no_grad():
        for name, module in sorted(model.named_modules(), key=lambda item: item[0]):
            if isinstance(module, nn.Linear):
                normal_(module.weight, module.in_features**-0.5)
                if module.bias is not None:
                    normal_(module.bias, 0.02)
            elif isinstance(module, nn.Conv2d):
                fan_in = module.in_channels * module.kernel_size[0] * module.kernel_size[1]
                normal_(module.weight, fan_in**-0.5)
                if module.bias is not None:
                    normal_(module.bias, 0.02)
            elif isinstance(module, nn.Embedding):
                std = 0.02 if "position_embedding" in name else module.embedding_dim**-0.5
                normal_(module.weight, std)
            elif isinstance(module, nn.LayerNorm):
                normal_(module.weight, 0.1, 1.0)
                normal_(module.bias, 0.02)
            elif isinstance(module, LlamaRMSNorm):
                normal_(module.weight, 0.1, 1.0)


def write_checkpoint_dir(
    directory: Path,
    config: Mapping[str, Any],
    model: Any,
    *,
    tokenizer: Any | None,
    vlm_config: Mapping[str, Any] | None,
    builtin: Mapping[str, Any],
) -> Path:
    """Write weights, config, processors + stats, tokenizer and backbone config."""
    directory.mkdir(parents=True, exist_ok=True)
    writer.save_weights(model.state_dict(), directory / "model.safetensors")
    files = _processor_files(config, str(config["vlm_model_name"]))
    state_dim = config["input_features"]["observation.state"]["shape"][0]
    action_dim = config["output_features"]["action"]["shape"][0]
    stats = {
        feature: {k: v for k, v in writer.franka_stats(dim).items() if k in _STATS}
        for feature, dim in (("observation.state", state_dim), ("action", action_dim))
    }
    writer.write_processors(directory, files, stats)
    if tokenizer is not None:
        tokenizer.save(str(directory / "tokenizer.json"))
    if vlm_config is not None:
        (directory / "vlm").mkdir(exist_ok=True)
        writer.write_json(directory / "vlm" / "config.json", vlm_config)
    writer.write_json(directory / BUILTIN_FILE, dict(builtin))
    writer.write_json(directory / "config.json", dict(config))
    return directory


def builtin_config(name: str) -> dict[str, Any]:
    spec = _spec(name)
    return smolvla_config(
        cameras=spec.cameras,
        image_size=spec.image_size,
        state_dim=spec.state_dim,
        action_dim=spec.action_dim,
        chunk_size=spec.chunk_size,
        tokenizer_max_length=spec.tokenizer_max_length,
        num_vlm_layers=spec.num_vlm_layers,
        vlm_model_name="vlm",
        max_state_dim=spec.max_state_dim,
        max_action_dim=spec.max_action_dim,
        num_steps=spec.num_steps,
    )


def _spec(name: str) -> SmolVLASpec:
    return writer.lookup_spec(BUILTIN_SPECS, name)


def write_builtin_checkpoint(name: str, directory: str | Path) -> Path:
    """Write built-in checkpoint ``name`` (seeded) into ``directory``."""
    from reflex_core.models.tiny_tokenizer import build_tiny_tokenizer, tiny_vocabulary
    from reflex_smolvla.config import build_arch
    from reflex_smolvla.modeling import build_model

    spec = _spec(name)
    config = builtin_config(name)
    vlm_config = tiny_vlm_config(len(tiny_vocabulary()))
    model = build_model(build_arch(config, vlm_config))
    init_weights(model, spec.seed)
    return write_checkpoint_dir(
        Path(directory),
        config,
        model,
        tokenizer=build_tiny_tokenizer(),
        vlm_config=vlm_config,
        builtin={"name": spec.name, "seed": spec.seed, "digest": spec.digest()},
    )


def write_real_size_checkpoint(
    directory: str | Path,
    *,
    cameras: tuple[str, ...] = ("camera1", "camera2", "camera3"),
    state_dim: int = 6,
    action_dim: int = 6,
    seed: int = 0,
    tokenizer_file: str | Path | None = None,
) -> Path:
    """Random weights at the real ``lerobot/smolvla_base`` dimensions (SmolVLM2-500M backbone
    named by its Hub id, resolved offline from :data:`KNOWN_VLM_CONFIGS`), 1.8 GB fp32.

    :param tokenizer_file: the SmolVLM2 ``tokenizer.json`` to copy in, if you have it.
    """
    import shutil

    import torch

    from reflex_smolvla.config import KNOWN_VLM_CONFIGS, SMOLVLM2_500M, build_arch
    from reflex_smolvla.modeling import build_model

    config = smolvla_config(
        cameras=cameras,
        image_size=512,
        state_dim=state_dim,
        action_dim=action_dim,
        chunk_size=50,
        tokenizer_max_length=48,
        num_vlm_layers=16,
        vlm_model_name=SMOLVLM2_500M,
        pad_language_to="max_length",
    )
    config["load_vlm_weights"] = True  # as smolvla_base says (lerobot then skips the Hub VLM)
    arch = build_arch(config, copy.deepcopy(KNOWN_VLM_CONFIGS[SMOLVLM2_500M]))
    with torch.device("meta"):
        model = build_model(arch, device="meta")
    model = model.to_empty(device="cpu")
    model.reset_nonpersistent_buffers()
    init_weights(model, seed)
    directory = Path(directory)
    write_checkpoint_dir(
        directory,
        config,
        model,
        tokenizer=None,
        vlm_config=None,
        builtin={"name": "smolvla-base-random", "seed": seed, "real_size": True},
    )
    if tokenizer_file is not None:
        shutil.copyfile(tokenizer_file, directory / "tokenizer.json")
    return directory
