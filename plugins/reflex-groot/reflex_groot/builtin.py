"""``tiny-groot``: a seeded GR00T N1.5 checkpoint directory at toy size, written as lerobot 0.4.4
writes a fine-tuned GR00T policy, plus the two configs lerobot would fetch from the Hub:

- ``config.json`` — lerobot ``GrootConfig`` (``"type": "groot"``), 2 cameras ``front`` and
  ``wrist`` at 28x28, franka-sized 8-dim state and action, padded to 64 / 32 as in N1.5;
  ``base_model_path: "base"`` and ``tokenizer_assets_repo: "eagle"`` name the two sub-directories
  below (relative to the checkpoint);
- ``base/config.json`` — the ``GR00TN15`` config (``backbone_cfg``, ``action_head_cfg``): the N1.5
  layout (no ``eagle_linear``, VL self-attention, interleaved cross/self-attention DiT, 4 flow
  steps, 16-action chunks, 32 embodiment slots) at toy widths;
- ``eagle/config.json`` — the Eagle 2.5 VL config: SigLIP 32 x 1 at 28 px / 14 (4 tokens per
  image, N1.5's one-layer connector without pixel shuffle), Qwen3 64 x 3 of which ``select_layer``
  2 are kept;
- ``model.safetensors`` — ``_groot_model.``-prefixed keys, the tied embedding stored as
  ``lm_head.weight`` (what ``safetensors.save_model`` keeps);
- ``policy_preprocessor.json`` / ``policy_postprocessor.json`` with lerobot's GR00T steps and
  their min/max stats files; ``tokenizer.json`` (word-level, :mod:`reflex_groot.prompt`).

Embodiment mapping (the pack step's ``embodiment_mapping``): lerobot's defaults
(``new_embodiment`` 31, ``oxe_droid`` 17, ``agibot_genie1`` 26, ``gr1`` 24, ``so100`` 2,
``unitree_g1`` 3) plus ``franka`` -> 4, the tag it was "fine-tuned" with: ``reflex export
tiny-groot --embodiment franka`` selects projector slot 4 (the default without
``--embodiment`` too). torch is imported only when writing.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

from reflex_core.models.lerobot_writer import (
    FRANKA_CAMERAS,
    FRANKA_HIGH,
    FRANKA_LOW,
    cycle,
    lerobot_policy_fields,
    save_weights,
    write_json,
    write_processors,
)
from reflex_groot.config import (
    DEFAULT_EMBODIMENT_MAPPING,
    EAGLE_N15_ASSETS,
    KNOWN_EAGLE_CONFIGS,
    PACK_STEP,
    UNPACK_STEP,
    WEIGHTS_PREFIX,
)
from reflex_groot.prompt import IMAGE_TOKEN, build_tiny_tokenizer, tiny_vocabulary

WRITER_VERSION = 1
TINY_NAME = "tiny-groot"
TINY_SEED = 5
CAMERAS = FRANKA_CAMERAS
STATE_DIM = ACTION_DIM = 8
TINY_EMBODIMENT = "franka"
TINY_MAPPING = {**DEFAULT_EMBODIMENT_MAPPING, TINY_EMBODIMENT: 4}
TOKENIZER_MAX_LENGTH = 48


#: What ``tiny-groot`` changes in N1.5's Eagle 2.5 config: toy widths and depths at 28 px.
_TINY_VISION = {
    "hidden_size": 32,
    "image_size": 28,
    "intermediate_size": 64,
    "num_attention_heads": 2,
    "num_hidden_layers": 1,
}
_TINY_TEXT = {
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 3,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "head_dim": 16,
    "max_position_embeddings": 512,
    "use_sliding_window": False,
}


def tiny_eagle_config() -> dict[str, Any]:
    """N1.5's Eagle config (:data:`~reflex_groot.config.KNOWN_EAGLE_CONFIGS`) at toy size, with
    the tiny tokenizer's vocabulary."""
    vocab = tiny_vocabulary()
    config = copy.deepcopy(KNOWN_EAGLE_CONFIGS[EAGLE_N15_ASSETS])
    config.update(force_image_size=28, image_token_index=vocab.index(IMAGE_TOKEN), template=None)
    config["vision_config"].update(_TINY_VISION)
    config["text_config"].update(_TINY_TEXT, vocab_size=len(vocab))
    return config


def tiny_base_config() -> dict[str, Any]:
    return {
        "model_type": "gr00t_n1_5",
        "architectures": ["GR00T_N1_5"],
        "action_horizon": 16,
        "action_dim": 32,
        "compute_dtype": "float32",
        "backbone_cfg": {
            "project_to_dim": None,
            "reproject_vision": False,
            "select_layer": 2,
            "tune_llm": False,
            "tune_visual": False,
            "use_flash_attention": False,
            "load_bf16": False,
        },
        "action_head_cfg": {
            "action_dim": 32,
            "action_horizon": 16,
            "add_pos_embed": True,
            "backbone_embedding_dim": 64,
            "diffusion_model_cfg": {
                "attention_head_dim": 24,
                "cross_attention_dim": 64,
                "dropout": 0.2,
                "final_dropout": True,
                "interleave_self_attention": True,
                "norm_type": "ada_norm",
                "num_attention_heads": 2,
                "num_layers": 4,
                "output_dim": 32,
                "positional_embeddings": None,
            },
            "hidden_size": 32,
            "input_embedding_dim": 48,
            "max_action_dim": 32,
            "max_state_dim": 64,
            "max_seq_len": 32,
            "max_num_embodiments": 32,
            "model_dtype": "float32",
            "noise_beta_alpha": 1.5,
            "noise_beta_beta": 1.0,
            "noise_s": 0.999,
            "num_inference_timesteps": 4,
            "num_target_vision_tokens": 4,
            "num_timestep_buckets": 1000,
            "tune_diffusion_model": True,
            "tune_projector": True,
            "use_vlln": True,
            "vl_self_attention_cfg": {
                "attention_head_dim": 32,
                "dropout": 0.2,
                "final_dropout": True,
                "num_attention_heads": 2,
                "num_layers": 1,
                "positional_embeddings": None,
            },
        },
    }


def tiny_policy_config() -> dict[str, Any]:
    size = tiny_eagle_config()["force_image_size"]
    return {
        **lerobot_policy_fields(
            "groot", cameras=CAMERAS, image_size=size, state_dim=STATE_DIM, action_dim=ACTION_DIM
        ),
        "chunk_size": 16,
        "n_action_steps": 16,
        "max_state_dim": 64,
        "max_action_dim": 32,
        "normalization_mapping": {"VISUAL": "IDENTITY", "STATE": "MEAN_STD", "ACTION": "MEAN_STD"},
        "image_size": [size, size],
        "base_model_path": "base",
        "tokenizer_assets_repo": "eagle",
        "embodiment_tag": TINY_EMBODIMENT,
        "tune_llm": False,
        "tune_visual": False,
        "tune_projector": True,
        "tune_diffusion_model": True,
        "lora_rank": 0,
        "lora_alpha": 16,
        "lora_dropout": 0.1,
        "lora_full_model": False,
        "use_bf16": False,
        "reflex_builtin": {"name": TINY_NAME, "seed": TINY_SEED, "writer": WRITER_VERSION},
    }


def cache_key() -> str:
    text = json.dumps(
        [WRITER_VERSION, TINY_SEED, tiny_policy_config(), tiny_base_config(), tiny_eagle_config()],
        sort_keys=True,
    )
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def stats(dim: int) -> dict[str, list[float]]:
    """min/max (what the pack step normalizes with) of a Franka-like feature, cycled to
    ``dim``; mean and std from the same range."""
    span = [h - lo for lo, h in zip(FRANKA_LOW, FRANKA_HIGH, strict=True)]
    base = {
        "min": list(FRANKA_LOW),
        "max": list(FRANKA_HIGH),
        "mean": [lo + 0.5 * s for lo, s in zip(FRANKA_LOW, span, strict=True)],
        "std": [0.25 * s for s in span],
    }
    return {stat: cycle(values, dim) for stat, values in base.items()}


def processor_files(env_action_dim: int, mapping: dict[str, int], tag: str) -> dict[str, Any]:
    """lerobot 0.4.4 ``make_groot_pre_post_processors`` as saved by ``save_pretrained``."""
    pre_state = f"policy_preprocessor_step_2_{PACK_STEP}.safetensors"
    post_state = f"policy_postprocessor_step_0_{UNPACK_STEP}.safetensors"
    pre = {
        "name": "policy_preprocessor",
        "steps": [
            {"registry_name": "rename_observations_processor", "config": {"rename_map": {}}},
            {"registry_name": "to_batch_processor", "config": {}},
            {
                "registry_name": PACK_STEP,
                "config": {
                    "state_horizon": 1,
                    "action_horizon": 16,
                    "max_state_dim": 64,
                    "max_action_dim": 32,
                    "language_key": "task",
                    "formalize_language": False,
                    "embodiment_tag": tag,
                    "embodiment_mapping": mapping,
                    "normalize_min_max": True,
                },
                "state_file": pre_state,
            },
            {
                "registry_name": "groot_eagle_encode_v3",
                "config": {"tokenizer_assets_repo": "eagle"},
            },
            {
                "registry_name": "groot_eagle_collate_v3",
                "config": {"tokenizer_assets_repo": "eagle"},
            },
            {"registry_name": "device_processor", "config": {"device": "cpu"}},
        ],
    }
    post = {
        "name": "policy_postprocessor",
        "steps": [
            {
                "registry_name": UNPACK_STEP,
                "config": {"env_action_dim": env_action_dim, "normalize_min_max": True},
                "state_file": post_state,
            },
            {"registry_name": "device_processor", "config": {"device": "cpu"}},
        ],
    }
    return {"pre": pre, "post": post, "pre_state": pre_state, "post_state": post_state}


def init_weights(model: Any, seed: int) -> None:
    """Seeded init keeping activations O(1): fan-in scaled linears and per-embodiment weights,
    small random biases and norm gains (so a dropped bias or gain shows in a comparison)."""
    import torch
    from torch import nn

    from reflex_groot.modeling import CategorySpecificLinear

    generator = torch.Generator().manual_seed(seed)

    def normal(shape: Any, std: float) -> torch.Tensor:
        return torch.randn(tuple(shape), generator=generator) * std

    with torch.no_grad():
        for name, param in sorted(model.named_parameters(), key=lambda item: item[0]):
            module = model.get_submodule(name.rpartition(".")[0])
            leaf = name.rpartition(".")[2]
            if isinstance(module, CategorySpecificLinear):
                fan_in = param.shape[1] if leaf == "W" else 1
                param.copy_(normal(param.shape, fan_in**-0.5 if leaf == "W" else 0.05))
            elif isinstance(module, nn.Embedding):
                param.copy_(normal(param.shape, 0.5 if "embed_tokens" in name else 0.1))
            elif leaf == "weight" and param.dim() == 1:  # LayerNorm / RMSNorm gains
                param.copy_(1.0 + normal(param.shape, 0.1))
            elif leaf == "bias" or param.dim() == 1:
                param.copy_(normal(param.shape, 0.05))
            else:
                fan_in = param[0].numel() if param.dim() > 1 else param.shape[0]
                param.copy_(normal(param.shape, fan_in**-0.5))


def write_checkpoint(
    directory: str | Path,
    *,
    policy_config: dict[str, Any],
    base_config: dict[str, Any],
    eagle_config: dict[str, Any],
    seed: int,
    mapping: dict[str, int],
    tokenizer: Any = None,
    device: str = "cpu",
) -> Path:
    """Write a lerobot-layout GR00T checkpoint with seeded random weights."""
    import torch

    from reflex_groot.config import parse_arch
    from reflex_groot.modeling import GrootModel
    from reflex_groot.weights import EMBED_KEY, LM_HEAD_KEY

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "base").mkdir(exist_ok=True)
    (directory / "eagle").mkdir(exist_ok=True)
    policy_config = copy.deepcopy(policy_config)
    policy_config["base_model_path"] = "base"
    policy_config["tokenizer_assets_repo"] = "eagle"
    write_json(directory / "config.json", policy_config)
    write_json(directory / "base" / "config.json", base_config)
    write_json(directory / "eagle" / "config.json", eagle_config)

    arch = parse_arch(base_config, eagle_config)
    with torch.device(device):
        model = GrootModel(arch)
    init_weights(model, seed)
    # The tied embedding is stored once, as lm_head (what safetensors.save_model keeps).
    tensors = {LM_HEAD_KEY if n == EMBED_KEY else n: t for n, t in model.state_dict().items()}
    save_weights(tensors, directory / "model.safetensors", prefix=WEIGHTS_PREFIX)
    del model, tensors

    action_dim = policy_config["output_features"]["action"]["shape"][0]
    state_dim = policy_config["input_features"]["observation.state"]["shape"][0]
    files = processor_files(action_dim, mapping, policy_config.get("embodiment_tag", ""))
    feature_stats = {"observation.state": stats(state_dim), "action": stats(action_dim)}
    write_processors(directory, files, feature_stats)
    if tokenizer is not None:
        tokenizer.save(str(directory / "tokenizer.json"))
    return directory


def write_tiny_groot(directory: str | Path) -> None:
    """The ``tiny-groot`` built-in (see the module doc)."""
    write_checkpoint(
        directory,
        policy_config=tiny_policy_config(),
        base_config=tiny_base_config(),
        eagle_config=tiny_eagle_config(),
        seed=TINY_SEED,
        mapping=TINY_MAPPING,
        tokenizer=build_tiny_tokenizer(),
    )
