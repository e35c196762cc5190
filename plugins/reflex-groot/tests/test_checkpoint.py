"""Loading GR00T checkpoints: strict keys, the real-size layout, embodiments and refusals."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import torch
from reflex_groot.builtin import TINY_MAPPING, tiny_base_config, tiny_eagle_config
from reflex_groot.config import (
    EAGLE_N15_ASSETS,
    GROOT_N15_3B,
    KNOWN_BASE_CONFIGS,
    KNOWN_EAGLE_CONFIGS,
    parse_arch,
)
from reflex_groot.loader import load_groot_checkpoint
from reflex_groot.modeling import GrootModel
from reflex_groot.weights import checkpoint_keys
from safetensors.torch import load_file, save_file

from reflex_core.errors import CheckpointError
from reflex_core.models.family import LoadOptions

REPO = Path(__file__).resolve().parents[3]
#: lerobot 0.4.4's GR00TN15 at N1.5-3B dims, built on the meta device in .venv-reference
#: (state dict of a module holding ``_groot_model``; the tied embedding counted once).
LEROBOT_N15_PARAMETERS = 2_413_522_880


def _load(directory: Path, embodiment: object = None):
    return load_groot_checkpoint(
        directory, LoadOptions(source=str(directory), embodiment=embodiment)
    )


def _copy(tiny_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "ckpt"
    shutil.copytree(tiny_dir, target)
    return target


def _inputs(policy, batch: int = 1, seed: int = 0) -> dict[str, torch.Tensor]:
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(policy.tokenizer.file))
    ids = tokenizer.encode(
        policy.io.prompt.template.format(task="pick up the cube"), add_special_tokens=False
    ).ids
    length = policy.tokenizer.max_length
    gen = torch.Generator().manual_seed(seed)
    size = policy.image_size[0]
    state = torch.zeros(batch, policy.max_state_dim)
    state[:, : policy.state_dim] = torch.rand(batch, policy.state_dim, generator=gen)
    return {
        "images": torch.rand(batch, len(policy.camera_names), 3, size, size, generator=gen) * 2 - 1,
        "image_masks": torch.ones(batch, len(policy.camera_names), dtype=torch.bool),
        "tokens": torch.tensor([ids + [policy.tokenizer.pad_id] * (length - len(ids))] * batch),
        "token_masks": torch.tensor(
            [[True] * len(ids) + [False] * (length - len(ids))] * batch, dtype=torch.bool
        ),
        "state": state,
    }


def _noise(policy, batch: int = 1) -> torch.Tensor:
    gen = torch.Generator().manual_seed(3)
    return torch.randn(batch, policy.chunk_size, policy.max_action_dim, generator=gen)


def test_tiny_checkpoint_loads_strictly_with_lerobot_key_names(tiny_dir: Path) -> None:
    policy = _load(tiny_dir)
    file_keys = set(load_file(str(tiny_dir / "model.safetensors")))
    arch = parse_arch(tiny_base_config(), tiny_eagle_config())
    with torch.device("meta"):
        expected = checkpoint_keys(GrootModel(arch))
    assert file_keys == set(expected)
    assert all(k.startswith("_groot_model.") for k in file_keys)
    report = policy.load_report
    assert report.layout == "lerobot" and report.embed_tokens_from_lm_head
    assert report.loaded == len(file_keys)
    assert "_groot_model.backbone.eagle_model.language_model.lm_head.weight" in file_keys
    assert not any(".layers.2." in k for k in file_keys if "language_model" in k)  # select_layer 2
    assert policy.chunk_size == 16 and policy.num_steps == 4
    assert (policy.max_state_dim, policy.max_action_dim) == (64, 32)
    assert (policy.state_dim, policy.action_dim) == (8, 8)
    assert policy.io.flow.t_start == 0.0 and policy.io.flow.t_end == 1.0
    assert policy.camera_names == ("front", "wrist")
    assert policy.normalization["state"]["mode"] == "MIN_MAX"
    assert policy.details["embodiment_tag"] == "franka" and policy.details["embodiment_id"] == 4


@pytest.mark.parametrize("change", ["missing", "unexpected", "shape"])
def test_a_checkpoint_that_does_not_match_is_refused_naming_the_key(
    tiny_dir: Path, tmp_path: Path, change: str
) -> None:
    directory = _copy(tiny_dir, tmp_path)
    tensors = load_file(str(directory / "model.safetensors"))
    key = "_groot_model.action_head.model.proj_out_2.weight"
    if change == "missing":
        del tensors[key]
    elif change == "unexpected":
        key = "_groot_model.action_head.extra.weight"
        tensors[key] = torch.zeros(2)
    else:
        tensors[key] = torch.zeros(3, 3)
    save_file(tensors, str(directory / "model.safetensors"))
    with pytest.raises(CheckpointError) as info:
        _load(directory)
    assert info.value.slug == "checkpoint-mismatch"
    assert key in str(info.value)


def test_real_size_layout_has_lerobots_parameter_count() -> None:
    """Our N1.5-3B module tree on the meta device has lerobot's ``GR00TN15`` parameter count (the
    key-by-key comparison against lerobot itself is in reference/check.py, which CI runs in
    .venv-reference after the tests)."""
    base = KNOWN_BASE_CONFIGS[GROOT_N15_3B]
    eagle = KNOWN_EAGLE_CONFIGS[EAGLE_N15_ASSETS]
    with torch.device("meta"):
        model = GrootModel(parse_arch(base, eagle))
    ours = checkpoint_keys(model)
    # lerobot's state dict holds both tied twins; the file (and our count) holds one.
    count = sum(p.numel() for p in model.parameters())
    assert count == LEROBOT_N15_PARAMETERS
    assert (
        len(
            [k for k in ours if "language_model.model.layers." in k and k.endswith("q_proj.weight")]
        )
        == 12
    )


def test_embodiment_selects_the_projector_slice(tiny_dir: Path) -> None:
    default = _load(tiny_dir)
    franka = _load(tiny_dir, embodiment="franka")
    so100 = _load(tiny_dir, embodiment=type("E", (), {"name": "so100", "raw": {}})())
    assert franka.details["embodiment_id"] == 4 and so100.details["embodiment_id"] == 2
    inputs, noise = _inputs(default), _noise(default)
    a = default.graphs.sample_actions(inputs, noise, default.num_steps)
    b = franka.graphs.sample_actions(inputs, noise, franka.num_steps)
    c = so100.graphs.sample_actions(inputs, noise, so100.num_steps)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert (a - c).abs().max() > 1e-2
    head = franka.graphs.step.model.action_head
    assert head.state_encoder.layer1.W.shape[0] == 1  # only the selected slice is exported
    # An embodiment config may name its GR00T tag explicitly.
    aliased = _load(
        tiny_dir,
        embodiment=type("E", (), {"name": "myarm", "raw": {"groot_embodiment_tag": "so100"}})(),
    )
    assert aliased.details["embodiment_id"] == 2


def test_unknown_embodiment_is_a_slugged_error(tiny_dir: Path) -> None:
    with pytest.raises(CheckpointError) as info:
        _load(tiny_dir, embodiment=type("E", (), {"name": "ur5", "raw": {}})())
    assert info.value.slug == "groot-embodiment-unknown"
    assert "ur5" in str(info.value) and "franka=4" in str(info.value)


def _with_config(tiny_dir: Path, tmp_path: Path, sub: str, edit) -> Path:
    directory = _copy(tiny_dir, tmp_path)
    path = directory / sub / "config.json"
    config = json.loads(path.read_text())
    edit(config)
    path.write_text(json.dumps(config))
    return directory


@pytest.mark.parametrize(
    ("sub", "edit", "slug"),
    [
        (
            "base",
            lambda c: c["action_head_cfg"]["diffusion_model_cfg"].update(
                positional_embeddings="sinusoidal"
            ),
            "groot-option-unsupported",
        ),
        ("eagle", lambda c: c.update(use_llm_lora=8), "groot-option-unsupported"),
        (
            "base",
            lambda c: c["backbone_cfg"].update(reproject_vision=True),
            "groot-option-unsupported",
        ),
        ("base", lambda c: c["backbone_cfg"].update(select_layer=9), "groot-option-unsupported"),
        ("", lambda c: c.update(base_model_path="someone/unknown-base"), "groot-base-unknown"),
    ],
)
def test_unimplemented_options_are_refused_with_a_slug(
    tiny_dir: Path, tmp_path: Path, sub: str, edit, slug: str
) -> None:
    directory = _with_config(tiny_dir, tmp_path, sub, edit)
    with pytest.raises(CheckpointError) as info:
        _load(directory)
    assert info.value.slug == slug


def test_padding_and_missing_cameras_are_masked(tiny_dir: Path) -> None:
    policy = _load(tiny_dir)
    inputs, noise = _inputs(policy, batch=2), _noise(policy, batch=2)
    full = policy.graphs.sample_actions(inputs, noise, policy.num_steps)
    valid = int(inputs["token_masks"][0].sum())
    trimmed = dict(
        inputs, tokens=inputs["tokens"][:, :valid], token_masks=inputs["token_masks"][:, :valid]
    )
    torch.testing.assert_close(
        policy.graphs.sample_actions(trimmed, noise, 4), full, rtol=0, atol=1e-6
    )
    # Garbage in the padding changes nothing.
    noisy = dict(inputs, tokens=torch.where(inputs["token_masks"], inputs["tokens"], 7))
    torch.testing.assert_close(
        policy.graphs.sample_actions(noisy, noise, 4), full, rtol=0, atol=1e-6
    )
    # A missing camera: its pixels do not matter, and the result differs from seeing it.
    masks = inputs["image_masks"].clone()
    masks[1, 1] = False
    images = inputs["images"].clone()
    images[1, 1] = 0.3
    a = policy.graphs.sample_actions(dict(inputs, image_masks=masks), noise, 4)
    b = policy.graphs.sample_actions(dict(inputs, image_masks=masks, images=images), noise, 4)
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    torch.testing.assert_close(a[0], full[0], rtol=0, atol=1e-6)
    assert (a[1] - full[1]).abs().max() > 1e-3


@pytest.mark.parametrize("num_steps", [1, 2, 3, 4, 5, 7, 8, 10, 16, 20, 32, 50, 64, 100])
def test_time_buckets_match_lerobots_integer_timesteps(tiny_dir: Path, num_steps: int) -> None:
    """lerobot: ``int(k / N * 1000)`` in Python floats; the runtime feeds float32 ``k * (1/N)``."""
    head = _load(tiny_dir).graphs.step.model.action_head
    dt = 1.0 / num_steps
    t = torch.tensor([0.0 + k * dt for k in range(num_steps)], dtype=torch.float32)
    ours = head.bucket(t).to(torch.int64).tolist()
    assert ours == [int(k / float(num_steps) * 1000) for k in range(num_steps)]


def test_real_size_configs_are_self_consistent() -> None:
    arch = parse_arch(KNOWN_BASE_CONFIGS[GROOT_N15_3B], KNOWN_EAGLE_CONFIGS[EAGLE_N15_ASSETS])
    assert arch.backbone_dim == 2048 and arch.eagle.tokens_per_image == 256
    assert arch.head.dit.inner_dim == 1536 and arch.select_layer == 12


def test_tiny_mapping_extends_lerobots_default() -> None:
    assert TINY_MAPPING["franka"] == 4 and TINY_MAPPING["new_embodiment"] == 31


def test_an_observation_without_a_task_gets_lerobots_default_task(tiny_dir: Path) -> None:
    """lerobot 0.4.4's GrootPackInputsStep turns a missing or empty task into "Perform the
    task."; the contract carries it, so the runtime does the same."""
    from reflex_core.runtime.preprocess import build_prompt

    spec = _load(tiny_dir).io.prompt
    assert spec.default_task == "Perform the task."
    expected = build_prompt("Perform the task.", None, spec)
    assert "['Perform the task.']" in expected
    assert build_prompt(None, None, spec) == build_prompt("", None, spec) == expected


def test_frames_are_stretched_like_eagles_one_tile_resize(tiny_dir: Path) -> None:
    """Eagle's processor (one tile, no thumbnail) resizes the uint8 frame straight to the tile
    with torchvision's antialiased bicubic (torch's uint8 kernel on the CPU) and maps it with
    mean = std = 0.5; a non-square frame is stretched, not padded."""
    from reflex_core.runtime.preprocess import preprocess_images

    spec = _load(tiny_dir).io.image
    assert spec.resize == "stretch"
    frame = torch.randint(0, 256, (40, 90, 3), generator=torch.Generator().manual_seed(5))
    frame = frame.to(torch.uint8)
    images, masks = preprocess_images([{"front": frame.numpy()}], spec)
    tile = torch.nn.functional.interpolate(
        frame.permute(2, 0, 1)[None],
        size=(spec.height, spec.width),
        mode="bicubic",
        antialias=True,
        align_corners=False,
    )[0]
    expected = (tile.float() / 255 - 0.5) / 0.5
    torch.testing.assert_close(torch.from_numpy(images[0, 0]), expected, rtol=0, atol=1e-6)
    assert masks.tolist() == [[True, False]]  # the wrist camera is missing


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__]))
