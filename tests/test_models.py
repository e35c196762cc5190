"""pi0 / pi0.5 modules, checkpoint loading and the built-in tiny checkpoints (Model API)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")

from reflex_core.errors import CheckpointError  # noqa: E402
from reflex_core.models import (  # noqa: E402
    BUILTIN_CHECKPOINTS,
    load_policy_checkpoint,
    parse_policy_config,
    write_builtin_checkpoint,
)
from reflex_core.models.checkpoint import VLM_EMBED_KEY, VLM_LM_HEAD_KEY, checkpoint_keys  # noqa: E402
from reflex_core.models.config import (  # noqa: E402
    GEMMA_VARIANTS,
    PALIGEMMA_VOCAB_SIZE,
    PiArchitecture,
    siglip_so400m,
)
from reflex_core.models.modeling import build_model  # noqa: E402
from reflex_core.models.tiny_checkpoints import builtin_config  # noqa: E402

FAMILIES = {"pi0": "tiny-pi0", "pi05": "tiny-pi05"}


@pytest.fixture(autouse=True)
def _one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="module")
def checkpoint_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("checkpoints")
    return {name: write_builtin_checkpoint(name, root / name) for name in FAMILIES.values()}


@pytest.fixture(scope="module")
def policies(checkpoint_dirs: dict[str, Path]):
    return {
        family: load_policy_checkpoint(checkpoint_dirs[name]) for family, name in FAMILIES.items()
    }


def _inputs(policy, batch: int = 1, seed: int = 0, valid_tokens: int = 10):
    g = torch.Generator().manual_seed(seed)
    cameras = len(policy.camera_names)
    height, width = policy.image_size
    length = policy.tokenizer.max_length
    images = torch.rand(batch, cameras, 3, height, width, generator=g) * 2 - 1
    image_masks = torch.ones(batch, cameras, dtype=torch.bool)
    tokens = torch.randint(4, 100, (batch, length), generator=g)
    token_masks = torch.zeros(batch, length, dtype=torch.bool)
    token_masks[:, :valid_tokens] = True
    tokens[~token_masks] = 0
    state = torch.randn(batch, policy.max_state_dim, generator=g)
    noise = torch.randn(batch, policy.chunk_size, policy.max_action_dim, generator=g)
    return {
        "images": images,
        "image_masks": image_masks,
        "tokens": tokens,
        "token_masks": token_masks,
        "state": state,
        "noise": noise,
    }


def model_of(policy):
    """The pi family's torch model, behind its prefix graph."""
    return policy.graphs.prefix.model


def _sample(policy, inputs) -> torch.Tensor:
    with torch.no_grad():
        return model_of(policy).sample_actions(**inputs, num_steps=policy.num_steps)


def _features(policy, inputs) -> torch.Tensor:
    """The pooled prefix ``features`` of ``inputs`` (the state is not in the pi prefix)."""
    with torch.no_grad():
        return model_of(policy).prefix_kv(
            inputs["images"], inputs["image_masks"], inputs["tokens"], inputs["token_masks"]
        )[3]


def _copy_checkpoint(src: Path, dst: Path, tensors: dict[str, torch.Tensor]) -> Path:
    dst.mkdir(parents=True)
    for path in src.iterdir():
        if path.name != "model.safetensors":
            (dst / path.name).write_bytes(path.read_bytes())
    safetensors_torch.save_file(tensors, str(dst / "model.safetensors"))
    return dst


# -- plugin registration --------------------------------------------------------------------------


def test_builtin_plugin_registers_both_families_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from reflex_core.plugin.manager import make_plugin_manager\n"
        "loaders = make_plugin_manager(load_entrypoints=False).registry.model_loaders\n"
        "assert sorted(loaders) == ['pi0', 'pi05'], loaders\n"
        "assert sorted(loaders['pi05'].builtin_checkpoints) == ['tiny-pi05', 'tiny-pi05-heavy']\n"
        "assert loaders['pi0'].matches({'type': 'pi0'}) and not loaders['pi0'].matches({'type': 'pi05'})\n"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


def test_builtin_checkpoints_are_listed() -> None:
    assert set(BUILTIN_CHECKPOINTS) == {"tiny-pi0", "tiny-pi05", "tiny-pi05-heavy"}


# -- the written checkpoint directory ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["tiny-pi0", "tiny-pi05"])
def test_builtin_checkpoint_is_a_real_lerobot_directory(checkpoint_dirs, name) -> None:
    directory = checkpoint_dirs[name]
    config = json.loads((directory / "config.json").read_text())
    assert config["type"] == name.removeprefix("tiny-")
    pre = json.loads((directory / "policy_preprocessor.json").read_text())
    post = json.loads((directory / "policy_postprocessor.json").read_text())
    state_files = [s["state_file"] for s in pre["steps"] + post["steps"] if "state_file" in s]
    expected_pre = (
        "policy_preprocessor_step_2_normalizer_processor.safetensors"
        if name == "tiny-pi05"
        else "policy_preprocessor_step_5_normalizer_processor.safetensors"
    )
    assert state_files == [
        expected_pre,
        "policy_postprocessor_step_0_unnormalizer_processor.safetensors",
    ]
    stats = safetensors_torch.load_file(str(directory / expected_pre))
    assert {"observation.state.q01", "action.q99", "action.mean", "observation.state.std"} <= set(
        stats
    )
    keys = safetensors_torch.load_file(str(directory / "model.safetensors")).keys()
    assert all(k.startswith("model.") for k in keys)
    assert "model." + VLM_EMBED_KEY in keys


def test_tokenizer_follows_gemma_conventions(policies) -> None:
    from tokenizers import Tokenizer

    policy = policies["pi05"]
    tokenizer = Tokenizer.from_file(str(policy.tokenizer.file))
    assert tokenizer.token_to_id("<pad>") == 0
    assert tokenizer.token_to_id("<eos>") == 1
    assert tokenizer.token_to_id("<bos>") == 2
    embed_rows = model_of(policy).language_model.embed_tokens.weight.shape[0]
    assert tokenizer.get_vocab_size() == embed_rows
    encoding = tokenizer.encode("Task: pick up the red block, State: 0 17 255;\nAction: ")
    assert encoding.ids[0] == 2
    assert "<unk>" not in encoding.tokens
    assert encoding.tokens[1:4] == ["task", ":", "pick"]
    assert "\n" in encoding.tokens and "255" in encoding.tokens


# -- LoadedPolicy ------------------------------------------------------------------------------------


def test_loaded_policy_facts(policies) -> None:
    pi05, pi0 = policies["pi05"], policies["pi0"]
    assert pi05.family == "pi05" and pi0.family == "pi0"
    for policy in (pi0, pi05):
        assert policy.action_dim == 8 and policy.state_dim == 8
        assert policy.max_action_dim == 32 and policy.max_state_dim == 32
        assert policy.camera_names == ("front", "wrist")
        assert policy.image_size == (32, 32)
        assert policy.num_steps == 10
        assert policy.details == {"num_layers": 2}
        assert policy.provenance == {"pipeline": "reflex-builtin", "weights_layout": "lerobot"}
        assert policy.feature_dim == 64
        assert policy.load_report.layout == "lerobot"
        assert not model_of(policy).training and not policy.graphs.step.training
        assert all(p.dtype == torch.float32 for p in model_of(policy).parameters())
    assert pi0.chunk_size == 10 and pi05.chunk_size == 16

    state = pi05.normalization["state"]
    assert state["mode"] == "QUANTILES" and set(state) == {"mode", "q01", "q99"}
    assert state["q01"].shape == (8,) and state["q01"].dtype == np.float32
    assert np.all(state["q99"] > state["q01"])
    action = pi0.normalization["action"]
    assert action["mode"] == "MEAN_STD" and action["std"].shape == (8,)
    stats = safetensors_torch.load_file(
        str(pi0.checkpoint_dir / "policy_postprocessor_step_0_unnormalizer_processor.safetensors")
    )
    np.testing.assert_array_equal(action["mean"], stats["action.mean"].numpy())


def test_builtin_name_is_written_once_to_the_cache(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("REFLEX_CACHE_DIR", str(tmp_path))
    first = load_policy_checkpoint("tiny-pi0")
    assert first.checkpoint_dir.parent == tmp_path / "checkpoints"
    assert first.checkpoint_dir.name.startswith("tiny-pi0-")
    weights = first.checkpoint_dir / "model.safetensors"
    stamp = weights.stat().st_mtime_ns
    second = load_policy_checkpoint("tiny-pi0")
    assert second.checkpoint_dir == first.checkpoint_dir
    assert weights.stat().st_mtime_ns == stamp
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == [first.checkpoint_dir.name]
    inputs = _inputs(first)
    torch.testing.assert_close(_sample(first, inputs), _sample(second, inputs), rtol=0, atol=0)


def test_hub_repo_id_resolves_from_the_offline_cache(
    checkpoint_dirs, tmp_path, monkeypatch
) -> None:
    # A Hub cache laid out by hand: models--owner--name/{refs/main, snapshots/<commit>/...}.
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--acme--tiny-pi05"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for path in checkpoint_dirs["tiny-pi05"].iterdir():
        (snapshot / path.name).write_bytes(path.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")

    policy = load_policy_checkpoint("acme/tiny-pi05")
    assert policy.checkpoint_dir == snapshot
    assert policy.family == "pi05"

    with pytest.raises(CheckpointError) as info:
        load_policy_checkpoint("acme/not-cached")
    assert info.value.slug == "checkpoint-not-found"
    assert "HF_HUB_OFFLINE" in info.value.message


def test_unknown_source_is_not_found(tmp_path) -> None:
    with pytest.raises(CheckpointError) as info:
        load_policy_checkpoint("tiny-pi7")
    assert info.value.slug == "checkpoint-not-found"
    with pytest.raises(CheckpointError) as info:
        load_policy_checkpoint(tmp_path)  # a directory without config.json
    assert info.value.slug == "checkpoint-not-found"


# -- strict loading: layouts, renames, mismatches --------------------------------------------------


def test_hub_layout_without_prefix_or_embed_tokens_loads(checkpoint_dirs, policies, tmp_path):
    src = checkpoint_dirs["tiny-pi05"]
    tensors = safetensors_torch.load_file(str(src / "model.safetensors"))
    hub = {k.removeprefix("model."): v for k, v in tensors.items() if k != "model." + VLM_EMBED_KEY}
    # Older pi05 ports name the time MLP like pi0; lerobot renames it.
    for suffix in ("weight", "bias"):
        hub[f"action_time_mlp_in.{suffix}"] = hub.pop(f"time_mlp_in.{suffix}")
    directory = _copy_checkpoint(src, tmp_path / "hub-layout", hub)

    policy = load_policy_checkpoint(directory)
    report = policy.load_report
    assert report.layout == "hub"
    assert report.embed_tokens_from_lm_head
    assert ("action_time_mlp_in.weight", "time_mlp_in.weight") in report.renamed
    model = model_of(policy)
    embed = model.get_parameter(VLM_EMBED_KEY)
    assert embed.data_ptr() == model.get_parameter(VLM_LM_HEAD_KEY).data_ptr()
    inputs = _inputs(policy)
    torch.testing.assert_close(
        _sample(policy, inputs), _sample(policies["pi05"], inputs), rtol=0, atol=0
    )


def test_pi05_skips_the_keys_lerobot_drops(checkpoint_dirs, tmp_path) -> None:
    src = checkpoint_dirs["tiny-pi05"]
    tensors = safetensors_torch.load_file(str(src / "model.safetensors"))
    extra = dict(tensors)
    extra["state_proj.weight"] = torch.zeros(48, 32)
    extra["paligemma_with_expert.gemma_expert.model.norm.weight"] = torch.zeros(48)
    policy = load_policy_checkpoint(_copy_checkpoint(src, tmp_path / "extra", extra))
    assert set(policy.load_report.skipped) == {
        "state_proj.weight",
        "paligemma_with_expert.gemma_expert.model.norm.weight",
    }


def _expect_mismatch(src: Path, dst: Path, tensors) -> CheckpointError:
    with pytest.raises(CheckpointError) as info:
        load_policy_checkpoint(_copy_checkpoint(src, dst, tensors))
    assert info.value.slug == "checkpoint-mismatch"
    return info.value


def test_wrong_shape_missing_and_unexpected_keys_are_named(checkpoint_dirs, tmp_path) -> None:
    src = checkpoint_dirs["tiny-pi0"]
    tensors = safetensors_torch.load_file(str(src / "model.safetensors"))

    key = "model.action_in_proj.weight"
    wrong = dict(tensors)
    wrong[key] = torch.zeros(48, 31)
    error = _expect_mismatch(src, tmp_path / "wrong", wrong)
    assert "action_in_proj.weight expected [48, 32] got [48, 31]" in error.message
    assert error.details["wrong_shape"] == {"action_in_proj.weight": [[48, 32], [48, 31]]}

    missing_key = "model.paligemma_with_expert.gemma_expert.model.layers.1.mlp.down_proj.weight"
    missing = {k: v for k, v in tensors.items() if k != missing_key}
    error = _expect_mismatch(src, tmp_path / "missing", missing)
    assert missing_key.removeprefix("model.") in error.message
    assert error.details["missing"] == [missing_key.removeprefix("model.")]

    unexpected = dict(tensors)
    unexpected["model.paligemma_with_expert.gemma_expert.model.layers.2.mlp.up_proj.weight"] = (
        torch.zeros(1)
    )
    error = _expect_mismatch(src, tmp_path / "unexpected", unexpected)
    assert "layers.2.mlp.up_proj.weight" in error.message
    assert error.details["missing"] == [] and error.details["wrong_shape"] == {}


# -- parameter layout vs the public checkpoints -----------------------------------------------------


def _expected_key_count(family: str, vision_depth: int, depth: int, layout: str) -> int:
    """Per-module tensor counts (notes §1): 777 / 812 for the real hub base ports."""
    vision = 3 + 16 * vision_depth + 2  # embeddings, 16 per layer, post_layernorm
    projector = 2
    language = 1 + 9 * depth + 1  # lm_head, 9 per layer, norm
    if layout == "lerobot":
        language += 1  # embed_tokens stored separately
    if family == "pi0":
        expert = 9 * depth + 1 + 1  # plain norms
        projections = 10  # action in/out, state_proj, action_time_mlp in/out
    else:
        expert = 11 * depth + 2 + 1  # adaRMS norms have dense weight + bias
        projections = 8
    return vision + projector + language + expert + projections


def _real_arch(family: str) -> PiArchitecture:
    return PiArchitecture(
        family=family,
        vision=siglip_so400m(224),
        vlm=GEMMA_VARIANTS["gemma_2b"],
        expert=GEMMA_VARIANTS["gemma_300m"],
        vocab_size=PALIGEMMA_VOCAB_SIZE,
        max_state_dim=32,
        max_action_dim=32,
        chunk_size=50,
    )


@pytest.mark.parametrize(("family", "count"), [("pi0", 777), ("pi05", 812)])
def test_real_architecture_matches_the_public_checkpoints(family, count) -> None:
    model = build_model(_real_arch(family), device="meta")
    hub = checkpoint_keys(model, layout="hub")
    assert len(hub) == count == _expected_key_count(family, 27, 18, "hub")
    assert len(checkpoint_keys(model, layout="lerobot")) == count + 1
    p = "paligemma_with_expert.paligemma."
    v = p + "model.vision_tower.vision_model."
    lm = p + "model.language_model."
    e = "paligemma_with_expert.gemma_expert."
    assert hub[v + "embeddings.patch_embedding.weight"] == (1152, 3, 14, 14)
    assert hub[v + "embeddings.position_embedding.weight"] == (256, 1152)
    assert hub[v + "encoder.layers.26.mlp.fc1.weight"] == (4304, 1152)
    assert hub[p + "model.multi_modal_projector.linear.weight"] == (2048, 1152)
    assert hub[p + "lm_head.weight"] == (257152, 2048)
    assert hub[lm + "layers.17.self_attn.k_proj.weight"] == (256, 2048)
    assert hub[lm + "layers.0.mlp.down_proj.weight"] == (2048, 16384)
    assert hub[e + "model.layers.0.self_attn.q_proj.weight"] == (2048, 1024)
    assert hub[e + "model.layers.0.self_attn.o_proj.weight"] == (1024, 2048)
    assert hub[e + "lm_head.weight"] == (257152, 1024)
    assert hub["action_in_proj.weight"] == (1024, 32)
    if family == "pi0":
        assert hub["action_time_mlp_in.weight"] == (1024, 2048)
        assert hub["state_proj.weight"] == (1024, 32)
        assert hub[e + "model.layers.3.input_layernorm.weight"] == (1024,)
    else:
        assert hub["time_mlp_in.weight"] == (1024, 1024)
        assert hub[e + "model.layers.3.input_layernorm.dense.weight"] == (3072, 1024)
        assert hub[e + "model.norm.dense.bias"] == (3072,)
        assert "state_proj.weight" not in hub
    assert not any("vision_model.head" in k for k in hub)
    assert "paligemma_with_expert.gemma_expert.model.embed_tokens.weight" not in hub


@pytest.mark.parametrize("name", sorted(BUILTIN_CHECKPOINTS))
def test_builtin_key_counts_follow_the_same_formula(name) -> None:
    policy_config = parse_policy_config(builtin_config(name))
    arch = policy_config.architecture
    model = build_model(arch, device="meta")
    for layout in ("hub", "lerobot"):
        assert len(checkpoint_keys(model, layout=layout)) == _expected_key_count(
            arch.family, arch.vision.depth, arch.vlm.depth, layout
        )


# -- forward semantics -------------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["pi0", "pi05"])
def test_sample_actions_is_prefix_once_plus_euler_over_denoise_step(policies, family) -> None:
    policy = policies[family]
    inputs = _inputs(policy, batch=2)
    model = model_of(policy)
    with torch.no_grad():
        past_k, past_v, prefix_mask, features = model.prefix_kv(
            inputs["images"], inputs["image_masks"], inputs["tokens"], inputs["token_masks"]
        )
        steps = policy.num_steps
        dt = -1.0 / steps
        x = inputs["noise"]
        for k in range(steps):
            t = torch.full((2,), 1.0 + k * dt, dtype=torch.float32)
            x = x + dt * model.denoise_step(x, t, inputs["state"], prefix_mask, past_k, past_v)
    actions = _sample(policy, inputs)
    torch.testing.assert_close(actions, x, rtol=0, atol=1e-6)
    assert torch.isfinite(actions).all()
    assert not torch.allclose(actions, inputs["noise"], atol=1e-3)

    prefix_len = 2 * 16 + policy.tokenizer.max_length
    assert len(past_k) == len(past_v) == policy.details["num_layers"]
    arch = parse_policy_config(policy.config).architecture
    assert past_k[0].shape == (2, arch.vlm.num_kv_heads, prefix_len, arch.vlm.head_dim)
    assert prefix_mask.dtype == torch.bool and prefix_mask.shape == (2, prefix_len)
    assert int(prefix_mask[0].sum()) == 2 * 16 + 10
    assert features.shape == (2, policy.feature_dim)


@pytest.mark.parametrize("family", ["pi0", "pi05"])
def test_batch_rows_equal_single_results(policies, family) -> None:
    policy = policies[family]
    first, second = _inputs(policy, seed=1, valid_tokens=5), _inputs(policy, seed=2, valid_tokens=9)
    both = {k: torch.cat([first[k], second[k]]) for k in first}
    both["image_masks"][1, 0] = False  # a missing camera in one row must not leak into the other
    second["image_masks"][0, 0] = False
    batched = _sample(policy, both)
    torch.testing.assert_close(batched[0:1], _sample(policy, first), rtol=0, atol=1e-5)
    torch.testing.assert_close(batched[1:2], _sample(policy, second), rtol=0, atol=1e-5)
    features, single = _features(policy, both), _features(policy, first)
    torch.testing.assert_close(features[0:1], single, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["pi0", "pi05"])
def test_padding_and_missing_cameras_do_not_change_results(policies, family) -> None:
    policy = policies[family]
    inputs = _inputs(policy, valid_tokens=7)
    reference = _sample(policy, inputs)

    # Different ids at padded positions.
    garbage = dict(inputs, tokens=inputs["tokens"].clone())
    garbage["tokens"][~inputs["token_masks"]] = 42
    torch.testing.assert_close(_sample(policy, garbage), reference, rtol=0, atol=1e-6)

    # More padding (a longer tokenizer window) shifts nothing: positions count valid tokens only.
    extra = 6
    longer = dict(
        inputs,
        tokens=torch.cat([inputs["tokens"], torch.full((1, extra), 9)], dim=1),
        token_masks=torch.cat([inputs["token_masks"], torch.zeros(1, extra, dtype=torch.bool)], 1),
    )
    torch.testing.assert_close(_sample(policy, longer), reference, rtol=0, atol=1e-5)

    # A masked-out camera: its pixels do not matter, but masking it does.
    masked = dict(inputs, image_masks=torch.tensor([[True, False]]))
    masked_actions = _sample(policy, masked)
    noisy_pixels = inputs["images"].clone()
    noisy_pixels[:, 1] = torch.rand_like(noisy_pixels[:, 1]) * 2 - 1
    torch.testing.assert_close(
        _sample(policy, dict(masked, images=noisy_pixels)), masked_actions, rtol=0, atol=1e-6
    )
    assert (masked_actions - reference).abs().max() > 1e-4

    torch.testing.assert_close(
        _features(policy, longer), _features(policy, inputs), rtol=0, atol=1e-5
    )


def test_fully_padded_rows_stay_finite(policies) -> None:
    policy = policies["pi05"]
    inputs = _inputs(policy, batch=2)
    inputs["image_masks"][1] = False
    inputs["token_masks"][1] = False
    with torch.no_grad():
        past_k, past_v, prefix_mask, features = model_of(policy).prefix_kv(
            inputs["images"], inputs["image_masks"], inputs["tokens"], inputs["token_masks"]
        )
    assert all(torch.isfinite(k).all() for k in past_k + past_v)
    assert torch.isfinite(features).all()
    assert torch.isfinite(_sample(policy, inputs)).all()


def test_pi05_actions_follow_the_prompt_not_the_state_input(policies) -> None:
    policy = policies["pi05"]
    inputs = _inputs(policy)
    reference = _sample(policy, inputs)
    other_tokens = dict(inputs, tokens=inputs["tokens"].clone())
    other_tokens["tokens"][0, 3] = (int(inputs["tokens"][0, 3]) + 1) % 100 + 4
    assert (_sample(policy, other_tokens) - reference).abs().max() > 1e-4
    # pi0.5 reads its state from the prompt; the state tensor is ignored.
    other_state = dict(inputs, state=inputs["state"] + 1.0)
    torch.testing.assert_close(_sample(policy, other_state), reference, rtol=0, atol=0)


def test_pi0_actions_follow_the_state_through_state_proj(policies) -> None:
    policy = policies["pi0"]
    inputs = _inputs(policy)
    reference = _sample(policy, inputs)
    other_state = dict(inputs, state=inputs["state"] + 0.5)
    assert (_sample(policy, other_state) - reference).abs().max() > 1e-4
    other_tokens = dict(inputs, tokens=inputs["tokens"].clone())
    other_tokens["tokens"][0, 2] = (int(inputs["tokens"][0, 2]) + 1) % 100 + 4
    assert (_sample(policy, other_tokens) - reference).abs().max() > 1e-4


# -- config parsing ----------------------------------------------------------------------------------


def test_real_lerobot_config_parses_to_the_real_sizes() -> None:
    config = {
        "type": "pi05",
        "paligemma_variant": "gemma_2b",
        "action_expert_variant": "gemma_300m",
        "input_features": {
            "observation.images.base_0_rgb": {"type": "VISUAL", "shape": [3, 224, 224]},
            "observation.images.left_wrist_0_rgb": {"type": "VISUAL", "shape": [3, 224, 224]},
            "observation.state": {"type": "STATE", "shape": [8]},
        },
        "output_features": {"action": {"type": "ACTION", "shape": [7]}},
        "empty_cameras": 1,
        "chunk_size": 50,
        "n_action_steps": 10,
    }
    parsed = parse_policy_config(config)
    assert parsed.camera_names == ("base_0_rgb", "left_wrist_0_rgb", "empty_camera_0")
    assert (parsed.action_dim, parsed.state_dim) == (7, 8)
    assert parsed.tokenizer_max_length == 200 and parsed.num_steps == 10
    assert parsed.normalization_mapping["STATE"] == "QUANTILES"
    arch = parsed.architecture
    assert arch.vlm.width == 2048 and arch.expert.width == 1024 and arch.vision.depth == 27
    assert arch.vision.tokens_per_image == 256 and arch.vocab_size == 257152
    assert parse_policy_config({**config, "type": "pi0"}).normalization_mapping == {
        "VISUAL": "IDENTITY",
        "STATE": "MEAN_STD",
        "ACTION": "MEAN_STD",
    }


@pytest.mark.parametrize(
    ("change", "slug", "field"),
    [
        ({"type": "act"}, "checkpoint-unsupported", "type"),
        ({"paligemma_variant": "gemma_7b"}, "checkpoint-config-invalid", "paligemma_variant"),
        ({"paligemma_variant": "reflex_custom"}, "checkpoint-config-invalid", "paligemma_variant"),
        ({"image_resolution": [224, 160]}, "checkpoint-config-invalid", "image_resolution"),
        ({"chunk_size": 0}, "checkpoint-config-invalid", "chunk_size"),
        (
            {"output_features": {"action": {"type": "ACTION", "shape": [33]}}},
            "checkpoint-config-invalid",
            "output_features",
        ),
        (
            {"normalization_mapping": {"STATE": "ZSCORE"}},
            "checkpoint-config-invalid",
            "normalization_mapping",
        ),
    ],
)
def test_bad_configs_are_rejected_naming_the_field(change, slug, field) -> None:
    config = {
        "type": "pi05",
        "input_features": {"observation.images.top": {"type": "VISUAL", "shape": [3, 224, 224]}},
        **change,
    }
    with pytest.raises(CheckpointError) as info:
        parse_policy_config(config)
    assert info.value.slug == slug
    assert info.value.field == field


def test_custom_sizes_must_share_the_joint_attention_shape() -> None:
    config = builtin_config("tiny-pi05")
    config["reflex_architecture"]["expert"]["head_dim"] = 16
    with pytest.raises(CheckpointError, match="head_dim"):
        parse_policy_config(config)


def test_missing_stats_file_is_reported(checkpoint_dirs, tmp_path) -> None:
    src = checkpoint_dirs["tiny-pi05"]
    tensors = safetensors_torch.load_file(str(src / "model.safetensors"))
    directory = _copy_checkpoint(src, tmp_path / "no-stats", tensors)
    (directory / "policy_preprocessor_step_2_normalizer_processor.safetensors").unlink()
    with pytest.raises(CheckpointError) as info:
        load_policy_checkpoint(directory)
    assert info.value.slug == "checkpoint-stats-invalid"
    assert "policy_preprocessor_step_2_normalizer_processor.safetensors" in info.value.message


def test_checkpoint_without_processors_has_no_stats(checkpoint_dirs, tmp_path) -> None:
    src = checkpoint_dirs["tiny-pi0"]
    directory = tmp_path / "bare"
    directory.mkdir()
    for name in ("config.json", "model.safetensors"):
        (directory / name).write_bytes((src / name).read_bytes())
    policy = load_policy_checkpoint(directory)
    assert policy.normalization == {"state": None, "action": None}
    assert policy.tokenizer.file is None


# -- the family seam: resolution through the registry, the preprocessing contract ---------------


def _registry_with(*loaders):
    from reflex_core.plugin.registry import Registry

    registry = Registry()
    for loader in loaders:
        registry.add("model_loaders", loader, f"plugin-{loader.name}")
    return registry


def _loader(name: str, claims):
    from reflex_core.plugin.registry import ModelLoader

    return ModelLoader(name=name, matches=claims, load=lambda d, o: None)


def test_export_resolves_through_the_registered_loaders(checkpoint_dirs) -> None:
    from reflex_core.models.resolve import choose_loader, load_policy_checkpoint

    config = builtin_config("tiny-pi05")
    both = _registry_with(_loader("a", lambda c: True), _loader("b", lambda c: True))
    with pytest.raises(CheckpointError) as info:
        choose_loader(config, both)
    assert info.value.slug == "model-family-ambiguous"
    assert "a (plugin plugin-a)" in info.value.message and info.value.details["candidates"] == [
        "a",
        "b",
    ]
    none = _registry_with(_loader("a", lambda c: False), _loader("b", lambda c: 1 / 0))
    with pytest.raises(CheckpointError) as info:
        choose_loader(config, none)
    assert info.value.slug == "model-family-unknown"
    assert "'pi05'" in info.value.message and "a, b" in info.value.message
    # only the loaders of the registry are consulted: without the pi plugin, pi is unknown
    with pytest.raises(CheckpointError) as info:
        load_policy_checkpoint(checkpoint_dirs["tiny-pi05"], registry=none)
    assert info.value.slug == "model-family-unknown"


@pytest.mark.parametrize(
    ("keys", "extra", "pipeline", "pad", "state_pad_to"),
    [
        (["paligemma_with_expert.x"], {}, "openpi", 0.0, None),
        (["model.paligemma_with_expert.x"], {}, "lerobot<0.5", -1.0, 32),
        (["model.x"], {"use_relative_actions": False}, "lerobot>=0.5", -1.0, None),
        (["model.x"], {"reflex_builtin": {"name": "tiny"}}, "reflex-builtin", 0.0, None),
    ],
)
def test_the_preprocessing_pipeline_follows_the_checkpoint(
    keys, extra, pipeline, pad, state_pad_to
) -> None:
    from reflex_core.models.loading import detect_pipeline, pi_io_spec

    config = {k: v for k, v in builtin_config("tiny-pi05").items() if k != "reflex_builtin"}
    config.update(extra)
    assert detect_pipeline(config, keys) == pipeline
    io = pi_io_spec(parse_policy_config(config), pipeline)
    assert io.image.pad_value == pad and io.prompt.state_pad_to == state_pad_to
    pi0 = pi_io_spec(parse_policy_config({**config, "type": "pi0"}), pipeline)
    assert pi0.prompt.template == "{task}" and pi0.prompt.task_suffix == "\n"
    assert pi0.image.pad_value == pad and not pi0.prompt.uses_state


def test_preprocess_overrides_are_applied_recorded_and_checked(checkpoint_dirs) -> None:
    policy = load_policy_checkpoint(
        checkpoint_dirs["tiny-pi05"],
        preprocess={"image.pad_value": -1.0, "prompt.state_pad_to": 32},
    )
    assert policy.io.image.pad_value == -1.0 and policy.io.prompt.state_pad_to == 32
    assert policy.provenance["overrides"] == {"image.pad_value": -1.0, "prompt.state_pad_to": 32}
    from reflex_core.errors import ConfigError

    for bad in ({"image.colour": 1}, {"image.pad_position": "left"}, {"image.cameras": ["x"]}):
        with pytest.raises(ConfigError) as info:
            load_policy_checkpoint(checkpoint_dirs["tiny-pi05"], preprocess=bad)
        assert info.value.slug == "preprocess-override-invalid"


def test_a_model_option_the_family_does_not_declare_is_refused(checkpoint_dirs) -> None:
    with pytest.raises(CheckpointError) as info:
        load_policy_checkpoint(checkpoint_dirs["tiny-pi05"], model_options={"rope": "x"})
    assert info.value.slug == "model-option-unknown"
    assert "'pi05' has no model option rope; it reads: none" in info.value.message
