"""SmolVLA family: checkpoint layout, lerobot's key set at real size, refusals, the plugin seam."""

from __future__ import annotations

import copy
import json
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
import torch
from reflex_smolvla.builtin import TINY_SMOLVLA, write_builtin_checkpoint
from reflex_smolvla.checkpoint import checkpoint_keys, legacy_stats, load_weights
from reflex_smolvla.config import (
    KNOWN_VLM_CONFIGS,
    SMOLVLM2_500M,
    build_arch,
    parse_policy_config,
)
from reflex_smolvla.loader import load_smolvla_checkpoint
from reflex_smolvla.modeling import _patch_position_ids, build_model
from safetensors.torch import load_file, save_file

from reflex_core.errors import CheckpointError, ReflexError
from reflex_core.models.family import LoadOptions
from reflex_core.plugin.manager import make_plugin_manager

DATA = Path(__file__).parent / "data"
REAL_PARAMETERS = 450_046_176


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_builtin_checkpoint("tiny-smolvla", tmp_path_factory.mktemp("ckpt") / "tiny")


def _inputs(batch: int = 2, seed: int = 0) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    size, length = TINY_SMOLVLA.image_size, TINY_SMOLVLA.tokenizer_max_length
    valid = torch.tensor([9, 5, 7, 3][:batch])
    inputs = {
        "images": torch.rand(batch, 2, 3, size, size, generator=g) * 2 - 1,
        "image_masks": torch.ones(batch, 2, dtype=torch.bool),
        "tokens": torch.randint(4, 300, (batch, length), generator=g),
        "token_masks": torch.arange(length)[None, :] < valid[:, None],
        "state": torch.randn(batch, 32, generator=g),
    }
    noise = torch.randn(batch, TINY_SMOLVLA.chunk_size, 32, generator=g)
    return inputs, noise


# -- checkpoint layout ----------------------------------------------------------------------------


def test_tiny_checkpoint_is_a_lerobot_directory(tiny_dir: Path) -> None:
    names = {p.name for p in tiny_dir.iterdir()}
    assert {
        "config.json",
        "model.safetensors",
        "policy_preprocessor.json",
        "policy_postprocessor.json",
        "policy_preprocessor_step_5_normalizer_processor.safetensors",
        "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
        "tokenizer.json",
        "vlm",
    } <= names
    config = json.loads((tiny_dir / "config.json").read_text())
    assert config["type"] == "smolvla" and not any(k.startswith("reflex") for k in config)
    keys = load_file(str(tiny_dir / "model.safetensors")).keys()
    assert all(k.startswith("model.") for k in keys)
    assert "model.vlm_with_expert.lm_expert.layers.1.self_attn.k_proj.weight" in keys


def test_own_checkpoint_loads_strict(tiny_dir: Path) -> None:
    config = json.loads((tiny_dir / "config.json").read_text())
    arch = parse_policy_config(config, tiny_dir).arch
    model = build_model(arch, device="meta")
    file_keys = {
        k: tuple(v.shape) for k, v in load_file(str(tiny_dir / "model.safetensors")).items()
    }
    assert checkpoint_keys(model) == file_keys  # no missing, no unexpected, same shapes
    report = load_weights(model, tiny_dir / "model.safetensors")
    assert report.loaded == len(file_keys) and report.layout == "lerobot"
    # Expert: layers 0, 2 self-attention (k_proj from the expert width), 1, 3 cross-attention
    # (k_proj from the VLM's kv_heads * head_dim).
    expert = model.vlm_with_expert.lm_expert
    assert expert.layers[0].self_attn.k_proj.in_features == arch.expert_width
    assert expert.layers[1].self_attn.k_proj.in_features == arch.num_kv_heads * arch.head_dim
    assert arch.cross_attn == (False, True, False, True)


def test_a_mismatched_checkpoint_is_refused_with_the_keys(tiny_dir: Path, tmp_path: Path) -> None:
    tensors = load_file(str(tiny_dir / "model.safetensors"))
    del tensors["model.state_proj.weight"]
    tensors["model.extra.weight"] = torch.zeros(2)
    save_file(tensors, str(tmp_path / "model.safetensors"))
    model = build_model(
        parse_policy_config(json.loads((tiny_dir / "config.json").read_text()), tiny_dir).arch,
        "meta",
    )
    with pytest.raises(CheckpointError) as caught:
        load_weights(model, tmp_path / "model.safetensors")
    assert caught.value.slug == "checkpoint-mismatch"
    assert caught.value.details["missing"] == ["model.state_proj.weight"]
    assert caught.value.details["unexpected"] == ["model.extra.weight"]


def test_legacy_layout_with_stats_in_the_weights_loads(tiny_dir: Path, tmp_path: Path) -> None:
    """lerobot <= 0.3 kept the normalizer buffers in model.safetensors, no processor files."""
    legacy = tmp_path / "legacy"
    legacy.mkdir()
    for name in ("config.json", "tokenizer.json"):
        (legacy / name).write_bytes((tiny_dir / name).read_bytes())
    (legacy / "vlm").mkdir()
    (legacy / "vlm" / "config.json").write_bytes((tiny_dir / "vlm" / "config.json").read_bytes())
    tensors = load_file(str(tiny_dir / "model.safetensors"))
    mean, std = torch.arange(8.0), torch.full((8,), 2.0)
    tensors.update(
        {
            "normalize_inputs.buffer_observation_state.mean": mean,
            "normalize_inputs.buffer_observation_state.std": std.clone(),
            "normalize_targets.buffer_action.mean": mean + 100,
            "normalize_targets.buffer_action.std": std.clone(),
            "unnormalize_outputs.buffer_action.mean": mean + 1,
            "unnormalize_outputs.buffer_action.std": std + 1,
        }
    )
    save_file(tensors, str(legacy / "model.safetensors"))
    assert set(legacy_stats(legacy / "model.safetensors")) == {
        "observation.state.mean",
        "observation.state.std",
        "action.mean",
        "action.std",
    }
    policy = load_smolvla_checkpoint(legacy, LoadOptions(source="legacy"))
    assert policy.provenance["weights_layout"] == "lerobot-legacy"
    assert policy.provenance["stats_source"] == "weights-buffers"
    np.testing.assert_array_equal(policy.normalization["state"]["mean"], mean.numpy())
    np.testing.assert_array_equal(policy.normalization["action"]["mean"], mean.numpy() + 1)
    np.testing.assert_array_equal(policy.normalization["action"]["std"], std.numpy() + 1)


# -- real size --------------------------------------------------------------------------------------


def test_real_size_meta_build_has_lerobots_key_set_and_parameter_count() -> None:
    """The fixture was written by lerobot 0.4.4 itself (reference/dump_lerobot_keys.py)."""
    reference = json.loads((DATA / "lerobot_smolvla_base_keys.json").read_text())
    config = {"type": "smolvla", "resize_imgs_with_padding": [512, 512]}
    model = build_model(build_arch(config, KNOWN_VLM_CONFIGS[SMOLVLM2_500M]), device="meta")
    ours = {k: list(v) for k, v in checkpoint_keys(model).items()}
    assert ours == reference["keys"]
    assert sum(p.numel() for p in model.parameters()) == REAL_PARAMETERS
    assert reference["parameters"] == REAL_PARAMETERS
    assert model.arch.tokens_per_image == 64


# -- the loader's contract --------------------------------------------------------------------------


def test_loader_contract(tiny_dir: Path) -> None:
    policy = load_smolvla_checkpoint(tiny_dir, LoadOptions(source="tiny-smolvla"))
    io = policy.io
    assert io.image.cameras == ("front", "wrist")
    assert (io.image.height, io.image.width) == (32, 32)
    assert io.image.pad_value == 0.0 and io.image.pad_position == "bottom_right"
    assert io.image.range == (-1.0, 1.0) and io.image.missing_fill == -1.0
    assert io.prompt.template == "{task}" and io.prompt.task_suffix == "\n"
    assert not io.prompt.uses_state
    assert (io.flow.t_start, io.flow.t_end) == (1.0, 0.0)
    assert policy.tokenizer.file == tiny_dir / "tokenizer.json"
    assert policy.tokenizer.max_length == TINY_SMOLVLA.tokenizer_max_length
    assert policy.normalization["state"]["mode"] == "MEAN_STD"
    assert policy.normalization["action"]["mode"] == "MEAN_STD"
    assert (policy.chunk_size, policy.action_dim, policy.state_dim) == (10, 8, 8)
    graphs = policy.graphs
    assert graphs.prefix_inputs == ("images", "image_masks", "tokens", "token_masks", "state")
    assert "state" not in graphs.step_inputs
    assert graphs.step_inputs[:3] == ("x_t", "t", "prefix_mask")
    assert graphs.prefix_outputs[-2:] == ("prefix_mask", "features")


def test_graphs_compose_to_sample_actions(tiny_dir: Path) -> None:
    policy = load_smolvla_checkpoint(tiny_dir, LoadOptions(source="tiny-smolvla"))
    graphs = policy.graphs
    inputs, noise = _inputs()
    with torch.no_grad():
        reference = graphs.sample_actions(inputs, noise, 4)
        outs = dict(
            zip(
                graphs.prefix_outputs,
                graphs.prefix(*(inputs[n] for n in graphs.prefix_inputs)),
                strict=True,
            )
        )
        x = noise
        for k in range(4):
            feeds = {**outs, "x_t": x, "t": torch.full((2,), 1.0 - k / 4)}
            x = x + (-1 / 4) * graphs.step(*(feeds[n] for n in graphs.step_inputs))
    torch.testing.assert_close(x, reference, rtol=0, atol=0)
    assert outs["features"].shape == (2, 64) and outs["past_k_0"].shape == (2, 25, 2, 16)
    assert torch.isfinite(reference).all() and reference.abs().max() > 0.1


def test_masked_camera_equals_a_dropped_camera_and_padding_is_inert(tiny_dir: Path) -> None:
    """What lerobot does with a missing camera (drop it) and with pad_language_to="longest"
    (no padding) gives the same chunk as our masked camera and max-length padding."""
    policy = load_smolvla_checkpoint(tiny_dir, LoadOptions(source="tiny-smolvla"))
    model = policy.graphs.prefix.model
    inputs, noise = _inputs(batch=1)
    masked = {**inputs, "image_masks": torch.tensor([[True, False]])}
    masked["images"] = masked["images"].clone()
    masked["images"][:, 1] = -1.0
    valid = int(inputs["token_masks"].sum())
    with torch.no_grad():
        ours = model.sample_actions(*masked.values(), noise, 10)
        # The same model on the front camera alone and the unpadded prompt.
        dropped = model.sample_actions(
            inputs["images"][:, :1],
            inputs["image_masks"][:, :1],
            inputs["tokens"][:, :valid],
            inputs["token_masks"][:, :valid],
            inputs["state"],
            noise,
            10,
        )
        garbage = {**masked, "images": masked["images"].clone(), "tokens": masked["tokens"].clone()}
        garbage["images"][:, 1] = 0.7  # whatever sits under a False mask does not matter
        garbage["tokens"][:, valid:] = 5
        other = model.sample_actions(*garbage.values(), noise, 10)
    torch.testing.assert_close(ours, dropped, rtol=0, atol=2e-5)
    torch.testing.assert_close(ours, other, rtol=0, atol=2e-5)


def test_patch_position_rules() -> None:
    assert _patch_position_ids(4, 4, "transformers-5").tolist() == list(range(16))
    assert _patch_position_ids(4, 4, "transformers-4.57").tolist()[:8] == [0, 0, 1, 2, 0, 0, 1, 2]


def _vision_embeddings(model: torch.nn.Module, pixels: torch.Tensor) -> torch.Tensor:
    vision = model.vlm_body.vision_model.embeddings
    patches = vision.patch_embedding(pixels).flatten(2).transpose(1, 2)
    return patches + vision.position_embedding(model.patch_position_ids)[None]


def test_vision_patch_positions_model_option_reaches_the_graph(tiny_dir: Path) -> None:
    """Both rules through the declared model option; "transformers-5" is checked against the
    stock SmolVLM vision embeddings of the transformers 5 in this venv (the 4.57 rule is checked
    against lerobot 0.4.4 on transformers 4.57 by reference/check.py)."""
    from transformers import __version__ as transformers_version
    from transformers.models.smolvlm.modeling_smolvlm import SmolVLMVisionEmbeddings

    from reflex_core.models.resolve import load_policy_checkpoint

    loader = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "smolvla"}).registry.model_loaders
    assert set(loader["smolvla"].model_options) == {"vision_patch_positions"}

    default = load_policy_checkpoint(tiny_dir)
    assert default.provenance["vision_patch_positions"] == "transformers-4.57"
    assert default.provenance["vision_patch_positions_source"] == "default"
    policies = {"transformers-4.57": default}
    for rule in ("transformers-4.57", "transformers-5"):
        policy = load_policy_checkpoint(tiny_dir, model_options={"vision_patch_positions": rule})
        assert policy.provenance["vision_patch_positions"] == rule
        assert policy.provenance["vision_patch_positions_source"] == "model-option"
        assert policy.provenance["model_options"] == {"vision_patch_positions": rule}
        policies[rule] = policy

    models = {rule: p.graphs.prefix.model for rule, p in policies.items()}
    assert models["transformers-4.57"].patch_position_ids.tolist()[:4] == [0, 0, 1, 2]
    assert models["transformers-5"].patch_position_ids.tolist() == list(range(16))

    pixels = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(3)) * 2 - 1
    stock = SmolVLMVisionEmbeddings(models["transformers-5"].vlm_body.vision_model.config)
    stock.load_state_dict(models["transformers-5"].vlm_body.vision_model.embeddings.state_dict())
    full_grid = torch.ones(2, 4, 4, dtype=torch.bool)
    assert int(transformers_version.split(".")[0]) >= 5  # the rule this venv's stock code runs
    with torch.no_grad():
        expected = stock(pixels, full_grid)
        ours5 = _vision_embeddings(models["transformers-5"], pixels)
        ours457 = _vision_embeddings(models["transformers-4.57"], pixels)
    torch.testing.assert_close(ours5, expected, rtol=0, atol=0)
    assert (ours457 - expected).abs().max() > 1e-3  # the two rules really differ

    inputs, noise = _inputs(batch=1)
    with torch.no_grad():
        chunks = {r: p.graphs.sample_actions(inputs, noise, 4) for r, p in policies.items()}
    assert (chunks["transformers-4.57"] - chunks["transformers-5"]).abs().max() > 1e-3


@pytest.mark.parametrize("value", ["transformers-4.56", "", 5, None])
def test_a_bad_vision_patch_positions_value_is_refused_with_a_slug(
    tiny_dir: Path, value: object
) -> None:
    from reflex_core.models.resolve import load_policy_checkpoint

    with pytest.raises(CheckpointError) as info:
        load_policy_checkpoint(tiny_dir, model_options={"vision_patch_positions": value})
    assert info.value.slug == "model-option-invalid"
    assert "transformers-4.57" in info.value.message and "transformers-5" in info.value.message
    with pytest.raises(CheckpointError) as unknown:
        load_policy_checkpoint(tiny_dir, model_options={"patch_positions": "transformers-5"})
    assert unknown.value.slug == "model-option-unknown"


# -- refusals ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ({"adapt_to_pi_aloha": True}, "adapt_to_pi_aloha"),
        ({"use_delta_joint_actions_aloha": True}, "use_delta_joint_actions_aloha"),
        ({"add_image_special_tokens": True}, "add_image_special_tokens"),
        ({"prefix_length": 300}, "prefix_length"),
        ({"rtc_config": {"enabled": True}}, "rtc"),
        ({"attention_mode": "joint"}, "attention_mode"),
        ({"resize_imgs_with_padding": None}, "resize_imgs_with_padding"),
        ({"n_obs_steps": 2}, "n_obs_steps"),
        ({"normalization_mapping": {"VISUAL": "MEAN_STD"}}, "image normalization"),
        ({"vlm_model_name": "someone/unknown-vlm"}, "vlm_model_name"),
        ({"num_expert_layers": 2}, "num_expert_layers"),
    ],
)
def test_unsupported_options_are_refused_with_a_slug(
    tiny_dir: Path, change: dict, needle: str
) -> None:
    config = copy.deepcopy(json.loads((tiny_dir / "config.json").read_text()))
    config.update(change)
    with pytest.raises(ReflexError) as caught:
        parse_policy_config(config, tiny_dir)
    assert caught.value.slug == "checkpoint-unsupported"
    assert needle in caught.value.message


def test_known_backbone_needs_no_download() -> None:
    config = {
        "type": "smolvla",
        "vlm_model_name": SMOLVLM2_500M,
        "resize_imgs_with_padding": [512, 512],
        "input_features": {
            "observation.images.top": {"type": "VISUAL", "shape": [3, 480, 640]},
            "observation.state": {"type": "STATE", "shape": [6]},
        },
        "output_features": {"action": {"type": "ACTION", "shape": [6]}},
        "empty_cameras": 1,
    }
    parsed = parse_policy_config(config)
    assert parsed.vlm_source == f"known:{SMOLVLM2_500M}"
    assert parsed.cameras == ("top", "empty_camera_0")
    assert parsed.arch.num_vlm_layers == 16 and parsed.arch.expert_width == 720


# -- the plugin seam --------------------------------------------------------------------------------


def test_entry_point_is_installed_and_loaded_by_the_host() -> None:
    (ep,) = [e for e in metadata.entry_points(group="reflex.plugins") if e.name == "smolvla"]
    assert ep.value == "reflex_smolvla"
    assert ep.dist is not None and ep.dist.name == "reflex-smolvla"
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "smolvla"})
    assert pm.load_failures == []
    assert pm.registry.owner("model_loaders", "smolvla") == "smolvla"
    loader = pm.registry.model_loaders["smolvla"]
    assert "tiny-smolvla" in loader.builtin_checkpoints
    assert loader.matches({"type": "smolvla"}) and not loader.matches({"type": "pi0"})
    info = {i.name: i for i in pm.plugin_infos()}["smolvla"]
    assert info.distribution == "reflex-smolvla"
    assert "reflex_register_model_loaders" in info.hooks


def test_a_checkpoint_without_a_tokenizer_says_which_one_and_how_to_pass_it(
    tiny_dir: Path, tmp_path: Path
) -> None:
    """Real lerobot repos ship no tokenizer: ``reflex export`` names SmolVLM2's and the flag."""
    import shutil

    from reflex_core.export.pipeline import ExportRequest, export_artifact

    bare = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_dir, bare)
    (bare / "tokenizer.json").unlink()
    with pytest.raises(ReflexError) as info:
        export_artifact(ExportRequest(str(bare), tmp_path / "out"))
    assert info.value.slug == "tokenizer-missing"
    message = info.value.message
    assert "HuggingFaceTB/SmolVLM2-500M-Video-Instruct" in message
    assert "tokenizer.json" in message and "--tokenizer" in message
    assert not (tmp_path / "out").exists()
