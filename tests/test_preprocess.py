"""Preprocessing (reflex_core.runtime.preprocess / tokenizer): images, state, prompts, tokens."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reflex_core.errors import ArtifactError, ValidationError
from reflex_core.runtime.io_spec import ImageIO, IOSpec, PromptIO
from reflex_core.runtime.preprocess import (
    NormStats,
    bilinear_resize,
    build_prompt,
    clean_task,
    discretize_state,
    match_cameras,
    normalize,
    pad_vector,
    prepare_inputs,
    preprocess_images,
    resize_with_pad,
    resized_shape,
    stretch_resize,
    unnormalize,
    unnormalize_actions,
)
from reflex_core.runtime.tokenizer import PromptTokenizer

PI05 = PromptIO(template="Task: {task}, State: {state};\nAction: ", clean_task=True, state_bins=256)
PI0 = PromptIO(template="{task}", task_suffix="\n")


def _images(cameras: list[str], height: int, width: int, **kwargs: object) -> ImageIO:
    return ImageIO(cameras=tuple(cameras), height=height, width=width, **kwargs)  # type: ignore[arg-type]


# -- images -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("src", "dst"),
    [((12, 16), (6, 8)), ((5, 7), (11, 13)), ((480, 640), (168, 224)), ((3, 3), (3, 3))],
)
def test_bilinear_resize_matches_torch_interpolate(src, dst) -> None:
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(0)
    img = rng.random((*src, 3), dtype=np.float32)
    ours = bilinear_resize(img, *dst)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(img).permute(2, 0, 1)[None], size=dst, mode="bilinear", align_corners=False
    )[0].permute(1, 2, 0)
    assert ours.shape == (*dst, 3)
    np.testing.assert_allclose(ours, ref.numpy(), atol=2e-6)


@pytest.mark.parametrize(
    ("src", "dst"),
    [((480, 640), (224, 224)), ((256, 256), (224, 224)), ((30, 40), (224, 224)),
     ((720, 1280), (224, 224)), ((17, 9), (5, 11)), ((224, 300), (224, 224)),
     ((224, 224), (224, 224))],
)  # fmt: skip
def test_stretch_matches_torch_uint8_antialiased_bicubic_bit_for_bit(src, dst) -> None:
    """What torchvision's resize does to the uint8 tensor Eagle's image processor (GR00T) makes."""
    torch = pytest.importorskip("torch")
    img = np.random.default_rng(2).integers(0, 256, (*src, 3), dtype=np.uint8)
    ref = torch.nn.functional.interpolate(
        torch.from_numpy(img).permute(2, 0, 1)[None],
        size=dst,
        mode="bicubic",
        antialias=True,
        align_corners=False,
    )[0].permute(1, 2, 0)
    ours = stretch_resize(img, *dst)
    assert ours.dtype == np.uint8 and ours.shape == (*dst, 3)
    np.testing.assert_array_equal(ours, ref.numpy())


def test_stretch_contract_fills_the_frame_without_padding() -> None:
    img = np.random.default_rng(3).integers(0, 256, (48, 96, 3), dtype=np.uint8)
    spec = _images(["front"], 32, 32, resize="stretch", pad_value=0.7)
    images, masks = preprocess_images([{"front": img}], spec)
    expected = stretch_resize(img, 32, 32).astype(np.float32) / np.float32(255.0) * 2 - 1
    np.testing.assert_allclose(images[0, 0], expected.transpose(2, 0, 1), atol=1e-6)
    assert masks.tolist() == [[True]]
    # the same frame with padding differs: a band of pad value above and below the image
    padded, _ = preprocess_images([{"front": img}], _images(["front"], 32, 32, pad_value=0.7))
    assert np.allclose(padded[0, 0, :, 0], 0.7 * 2 - 1) and not np.allclose(padded, images)
    assert IOSpec.from_json(IOSpec(image=spec, prompt=PromptIO()).to_json()).image == spec
    with pytest.raises(ArtifactError) as exc:
        _images(["front"], 32, 32, resize="crop")
    assert exc.value.slug == "artifact-schema"


def test_resize_with_pad_matches_a_torch_reference_and_centres_the_image() -> None:
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    out = resize_with_pad(img, 24, 24)
    # the openpi/lerobot recipe, in torch: interpolate, then pad the short side centred with 0
    t = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    rh, rw = resized_shape(30, 50, 24, 24)
    assert (rh, rw) == (14, 24)
    r = F.interpolate(t, size=(rh, rw), mode="bilinear", align_corners=False).clamp(0, 1)
    top, rest = divmod(24 - rh, 2)
    ref = F.pad(r, (0, 0, top, top + rest), value=0.0)[0].permute(1, 2, 0).numpy()
    np.testing.assert_allclose(out, ref, atol=2e-6)
    assert out.dtype == np.float32
    assert np.all(out[:5] == 0) and np.all(out[-5:] == 0)  # 10 rows of padding, 5 each side
    assert out[5:19].min() >= 0 and out[5:19].max() <= 1


def test_preprocess_images_maps_to_minus_one_one_and_masks_missing_cameras() -> None:
    white = np.full((4, 4, 3), 255, dtype=np.uint8)
    images, masks = preprocess_images([{"wrist": white}, {}], _images(["base", "wrist"], 4, 4))
    assert images.shape == (2, 2, 3, 4, 4) and images.dtype == np.float32
    assert masks.tolist() == [[False, True], [False, False]]
    assert np.all(images[0, 1] == 1.0)
    assert np.all(images[0, 0] == -1.0) and np.all(images[1] == -1.0)


def _reference_unit(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The documented recipe step by step on the whole frame: /255, bilinear resize keeping the
    aspect ratio, clip, centred zero padding (HWC, [0, 1])."""
    unit = image.astype(np.float32)
    if image.dtype == np.uint8:
        unit = unit / np.float32(255.0)
    if unit.shape[:2] == (height, width):
        return unit
    out = np.zeros((height, width, 3), np.float32)
    rh, rw = resized_shape(*unit.shape[:2], height, width)
    top, left = (height - rh) // 2, (width - rw) // 2
    out[top : top + rh, left : left + rw] = np.clip(bilinear_resize(unit, rh, rw), 0.0, 1.0)
    return out


def _reference_image(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """:func:`_reference_unit` as a graph input: CHW, ``x * 2 - 1``."""
    unit = _reference_unit(image, height, width)
    return unit.transpose(2, 0, 1) * np.float32(2.0) - np.float32(1.0)


def test_batched_image_preprocessing_is_bit_identical_to_the_recipe() -> None:
    rng = np.random.default_rng(3)
    frames = [
        rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),  # downscale, pad rows
        rng.integers(0, 256, (20, 90, 3), dtype=np.uint8),  # wide
        rng.integers(0, 256, (32, 32, 3), dtype=np.uint8),  # already the model's size
        rng.integers(0, 256, (7, 5, 3), dtype=np.uint8),  # upscale
        rng.random((17, 33, 3)),  # float64 in [0, 1]
    ]
    batch = [{"base": f, "wrist": frames[(i + 2) % len(frames)]} for i, f in enumerate(frames)]
    batch.append({"wrist": frames[0]})
    images, masks = preprocess_images(batch, _images(["base", "wrist"], 32, 32))
    for b, obs in enumerate(batch):
        for c, name in enumerate(["base", "wrist"]):
            if name in obs:
                assert np.array_equal(images[b, c], _reference_image(obs[name], 32, 32))
            else:
                assert not masks[b, c] and np.all(images[b, c] == -1.0)
    for frame in frames:
        assert np.array_equal(resize_with_pad(frame, 32, 32), _reference_unit(frame, 32, 32))


def test_black_padding_becomes_minus_one() -> None:
    img = np.full((2, 4, 3), 255, dtype=np.uint8)
    images, _ = preprocess_images([{"base": img}], _images(["base"], 4, 4))
    assert np.all(images[0, 0, :, 0] == -1.0) and np.all(images[0, 0, :, 3] == -1.0)
    assert np.all(images[0, 0, :, 1:3] == 1.0)


def test_lerobot_04_padding_lands_at_minus_three() -> None:
    """lerobot 0.4.4's pi pipeline pads the [0, 1] image with -1 before mapping to [-1, 1]."""
    img = np.full((2, 4, 3), 255, dtype=np.uint8)
    spec = _images(["base", "wrist"], 4, 4, pad_value=-1.0)
    images, masks = preprocess_images([{"base": img}], spec)
    assert np.all(images[0, 0, :, 0] == -3.0) and np.all(images[0, 0, :, 1:3] == 1.0)
    assert not masks[0, 1] and np.all(images[0, 1] == -1.0)  # missing camera: missing_fill


def test_bottom_right_padding_matches_lerobot_smolvla_recipe() -> None:
    """SmolVLA pads on the left and top: ``F.pad(img, (pad_w, 0, pad_h, 0))``."""
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    rng = np.random.default_rng(7)
    img = rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)
    spec = _images(["base"], 24, 24, pad_position="bottom_right")
    images, _ = preprocess_images([{"base": img}], spec)
    t = torch.from_numpy(img.astype(np.float32) / 255.0).permute(2, 0, 1)[None]
    rh, rw = resized_shape(30, 50, 24, 24)
    r = F.interpolate(t, size=(rh, rw), mode="bilinear", align_corners=False)
    ref = F.pad(r, (24 - rw, 0, 24 - rh, 0), value=0.0) * 2.0 - 1.0
    np.testing.assert_allclose(images[0, 0], ref[0].numpy(), atol=3e-6)
    assert np.all(images[0, 0, :, : 24 - rh] == -1.0)  # the top rows are the padding


def test_range_and_missing_fill_are_data() -> None:
    white = np.full((4, 4, 3), 255, dtype=np.uint8)
    spec = _images(["base", "wrist"], 4, 4, range=(0.0, 1.0), missing_fill=0.5)
    images, masks = preprocess_images([{"base": white}], spec)
    assert np.all(images[0, 0] == 1.0) and np.all(images[0, 1] == 0.5)
    assert masks.tolist() == [[True, False]]
    empty, _ = preprocess_images([{}], spec)
    assert np.all(empty == 0.5)


def test_camera_shorthand_unknown_and_duplicate_names() -> None:
    a = np.zeros((2, 2, 3), np.uint8)
    assert match_cameras({"image": a}, ["front", "wrist"])[0] is a
    assert match_cameras({"wrist": a}, ["front", "wrist"]) == [None, a]
    # a camera really called "image" is matched by its own name
    assert match_cameras({"image": a}, ["wrist", "image"]) == [None, a]
    with pytest.raises(ValidationError) as exc:
        match_cameras({"left": a}, ["front", "wrist"])
    assert exc.value.slug == "unknown-camera" and exc.value.status == 422
    assert exc.value.details["known"] == ["front", "wrist"]
    with pytest.raises(ValidationError) as exc:
        match_cameras({"image": a, "front": a}, ["front", "wrist"])
    assert exc.value.slug == "conflicting-fields"  # the wire format's slug for the same thing


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((4, 4), np.uint8),
        np.zeros((4, 4, 4), np.uint8),
        np.zeros((0, 4, 3), np.uint8),
        np.zeros((4, 4, 3), np.int32),
    ],
)
def test_bad_images_are_rejected(bad) -> None:
    with pytest.raises(ValidationError) as exc:
        preprocess_images([{"base": bad}], _images(["base"], 4, 4))
    assert exc.value.slug == "image-invalid" and exc.value.field == "images.base"


# -- normalization ----------------------------------------------------------------------------


def test_quantiles_normalization_formula_and_zero_denominator() -> None:
    stats = {"mode": "QUANTILES", "q01": [0.0, 1.0, 2.0], "q99": [2.0, 3.0, 2.0]}
    x = np.array([1.0, 3.0, 2.5], np.float32)
    y = normalize(x, stats)
    assert y.dtype == np.float32
    np.testing.assert_allclose(y[:2], [0.0, 1.0])
    assert y[2] == pytest.approx(2 * 0.5 / 1e-8 - 1, rel=1e-5)  # eps replaces the zero span
    np.testing.assert_allclose(
        unnormalize(
            np.array([-1.0, 0.0], np.float32), {**stats, "q01": [0.0, 1.0], "q99": [2.0, 3.0]}
        ),
        [0.0, 2.0],
    )


def test_mean_std_and_identity() -> None:
    stats = NormStats.mean_std([1.0, -2.0], [2.0, 0.5])
    np.testing.assert_allclose(normalize(np.array([3.0, -1.0]), stats), [1.0, 2.0], rtol=1e-6)
    np.testing.assert_allclose(unnormalize(np.array([1.0, 2.0]), stats), [3.0, -1.0], rtol=1e-6)
    x = np.array([5.0, 6.0], np.float32)
    assert np.array_equal(normalize(x, {"mode": "IDENTITY"}), x)
    assert np.array_equal(normalize(x, None), x)


@settings(max_examples=50, deadline=None)
@given(
    mode=st.sampled_from(["QUANTILES", "MEAN_STD", "MIN_MAX", "QUANTILE10"]),
    values=st.lists(st.floats(-50, 50, width=32), min_size=3, max_size=3),
)
def test_unnormalize_inverts_normalize(mode, values) -> None:
    names = {
        "QUANTILES": ("q01", "q99"),
        "MEAN_STD": ("mean", "std"),
        "MIN_MAX": ("min", "max"),
        "QUANTILE10": ("q10", "q90"),
    }[mode]
    stats = {"mode": mode, names[0]: [-3.0, 0.0, 10.0], names[1]: [5.0, 0.25, 30.0]}
    x = np.array(values, np.float32)
    np.testing.assert_allclose(unnormalize(normalize(x, stats), stats), x, atol=1e-4, rtol=1e-5)


def test_stats_errors_are_artifact_schema() -> None:
    with pytest.raises(ArtifactError) as exc:
        NormStats.from_dict({"mode": "WEIRD"})
    assert exc.value.slug == "artifact-schema"
    with pytest.raises(ArtifactError):
        NormStats.from_dict({"mode": "QUANTILES", "q01": [0.0]})
    with pytest.raises(ValidationError) as exc2:
        normalize(np.zeros(2), {"mode": "QUANTILES", "q01": [0, 0, 0], "q99": [1, 1, 1]})
    assert exc2.value.slug == "state-length-mismatch"


def test_pad_and_unnormalize_actions_use_the_first_dims() -> None:
    assert pad_vector(np.array([1.0, 2.0]), 4).tolist() == [1.0, 2.0, 0.0, 0.0]
    with pytest.raises(ValidationError):
        pad_vector(np.zeros(5), 4)
    model = np.arange(12, dtype=np.float32).reshape(1, 2, 6)
    out = unnormalize_actions(
        model, 2, {"mode": "MEAN_STD", "mean": [10.0, 20.0], "std": [1.0, 2.0]}
    )
    assert out.shape == (1, 2, 2)
    np.testing.assert_allclose(out[0], [[10.0, 22.0], [16.0, 34.0]])


# -- prompts and tokens -----------------------------------------------------------------------


def test_discretize_state_matches_openpi_bins() -> None:
    x = np.array([-1.5, -1.0, -0.999, 0.0, 0.5, 0.9921875, 1.0, 2.0])
    assert discretize_state(x).tolist() == [-1, 0, 0, 128, 192, 255, 255, 255]


def test_pi05_and_pi0_prompts() -> None:
    state = np.array([-1.0, 0.0, 0.99], np.float32)
    assert (
        build_prompt("  pick_up the\ncube ", state, PI05)
        == "Task: pick up the cube, State: 0 128 254;\nAction: "
    )
    assert build_prompt(None, state, PI05) == "Task: , State: 0 128 254;\nAction: "
    assert build_prompt("pick up", None, PI0) == "pick up\n"
    assert build_prompt("pick up\n", None, PI0) == "pick up\n"
    assert build_prompt(None, None, PI0) == "\n"
    assert clean_task("a_b\nc") == "a b c"
    # lerobot 0.4.x bins the state zero-padded to max_state_dim: 0.0 -> bin 128
    padded = PromptIO(template=PI05.template, clean_task=True, state_bins=256, state_pad_to=5)
    assert build_prompt("go", state, padded) == "Task: go, State: 0 128 254 128 128;\nAction: "
    with pytest.raises(ArtifactError) as exc:
        PromptIO(template="{task} {joints}")
    assert exc.value.slug == "artifact-schema"
    with pytest.raises(ArtifactError):
        PromptIO(template="{task} {state}")  # state without bins


def test_default_task_fills_a_missing_or_empty_prompt_and_is_recorded() -> None:
    groot = PromptIO(template="['{task}']", default_task="Perform the task.")
    assert build_prompt(None, None, groot) == "['Perform the task.']"
    assert build_prompt("", None, groot) == "['Perform the task.']"
    assert build_prompt("pick up", None, groot) == "['pick up']"
    # it passes through cleaning and the suffix like an instruction would
    cleaned = PromptIO(template="{task}", clean_task=True, task_suffix="\n", default_task=" a_b ")
    assert build_prompt(None, None, cleaned) == "a b\n"
    # recorded in the artifact's contract; a contract written before the field reads as ""
    spec = IOSpec(image=ImageIO(cameras=("front",), height=8, width=8), prompt=groot)
    data = spec.to_json()
    assert data["prompt"]["default_task"] == "Perform the task."
    assert IOSpec.from_json(data).prompt == groot
    del data["prompt"]["default_task"]
    assert IOSpec.from_json(data).prompt.default_task == ""
    assert build_prompt(None, None, IOSpec.from_json(data).prompt) == "['']"


def test_tokenizer_adds_bos_pads_right_and_truncates(runtime_graphs, tmp_path) -> None:
    tok = PromptTokenizer.from_file(
        runtime_graphs.write_tokenizer(tmp_path / "tok.json"), max_length=6, pad_id=0
    )
    tokens, masks = tok.encode(["pick up the red cube", "pick up the red cube place it in box"])
    assert tokens.dtype == np.int64 and masks.dtype == np.bool_
    assert tokens.shape == masks.shape == (2, 6)
    assert tokens[0, 0] == 2 and 0 not in tokens[0].tolist()  # BOS + 5 words fill 6
    assert masks[0].tolist() == [True, True, True, True, True, True]
    assert tokens[1, 0] == 2 and masks[1].all()  # truncated, BOS kept
    short, smask = tok.encode(["pick"])
    assert short[0, 0] == 2 and short[0, 1] not in (0, 3)  # BOS, then a known word
    assert smask[0].tolist() == [True, True, False, False, False, False]
    assert short[0, 2:].tolist() == [0, 0, 0, 0]
    with pytest.raises(ArtifactError) as exc:
        PromptTokenizer.from_file(tmp_path / "missing.json", 4)
    assert exc.value.slug == "artifact-missing"


def test_prepare_inputs_batch_equals_each_observation_alone(runtime_graphs, tmp_path) -> None:
    tok = PromptTokenizer.from_file(
        runtime_graphs.write_tokenizer(tmp_path / "tok.json"), max_length=16
    )
    rng = np.random.default_rng(5)
    stats = {"mode": "QUANTILES", "q01": [-1.0, 0.0, 2.0], "q99": [1.0, 4.0, 2.0]}
    states = [rng.uniform(-3, 5, 3).astype(np.float32) for _ in range(6)]
    prompts = [None, "pick_up the\ncube ", "", "place", "pick up", "stack"]
    for prompt in (PI05, PI0):
        kwargs: dict = dict(
            io=IOSpec(image=_images(["base"], 4, 4), prompt=prompt),
            max_state_dim=5,
            state_stats=stats,
            tokenizer=tok,
        )
        batch = prepare_inputs(images=[{}] * 6, states=states, prompts=prompts, **kwargs)
        for i in range(6):
            alone = prepare_inputs(images=[{}], states=[states[i]], prompts=[prompts[i]], **kwargs)
            assert batch.prompts[i] == alone.prompts[0]
            for name in ("tokens", "token_masks", "state", "images", "image_masks"):
                assert np.array_equal(getattr(batch, name)[i], getattr(alone, name)[0]), name
    empty = prepare_inputs(images=[], states=[], prompts=[], **kwargs)
    assert empty.state.shape == (0, 5) and empty.tokens.shape == (0, 16)


def test_prepare_inputs_uses_the_unpadded_normalized_state_in_the_pi05_prompt(
    runtime_graphs, tmp_path
) -> None:
    tok = PromptTokenizer.from_file(
        runtime_graphs.write_tokenizer(tmp_path / "tok.json"), max_length=32
    )
    stats = {"mode": "QUANTILES", "q01": [0.0, 0.0], "q99": [2.0, 4.0]}
    inputs = prepare_inputs(
        images=[{}],
        states=[np.array([1.0, 4.0], np.float32)],
        prompts=["pick up"],
        io=IOSpec(image=_images(["base"], 4, 4), prompt=PI05),
        max_state_dim=5,
        state_stats=stats,
        tokenizer=tok,
    )
    assert inputs.prompts == ("Task: pick up, State: 128 255;\nAction: ",)
    np.testing.assert_allclose(inputs.state, [[0.0, 1.0, 0.0, 0.0, 0.0]])
    assert inputs.state.dtype == np.float32 and inputs.state.shape == (1, 5)
    assert inputs.tokens.shape == (1, 32) and inputs.image_masks.tolist() == [[False]]
