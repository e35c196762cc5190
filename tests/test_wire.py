"""The wire format: observation parsing, images, action chunks, error frames, the slug table."""

from __future__ import annotations

import base64
import io
import json
import re
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from PIL import Image

from reflex_core.errors import ReflexError, Unavailable, ValidationError
from reflex_core.wire import (
    SLUGS,
    ActionChunk,
    Observation,
    decode_image,
    encode_image,
    encode_image_bytes,
    error_frame,
    error_from_frame,
    observation_to_dict,
    parse_action_chunk,
    parse_json_body,
    parse_observation,
)

DOCS = Path(__file__).resolve().parents[1] / "docs" / "wire.md"


def png(array: np.ndarray) -> str:
    return encode_image(array, "PNG")


def rejects(payload: Any, slug: str, field: str | None = "", **limits: Any) -> ReflexError:
    """Parse, expect a rejection with ``slug`` (and ``field`` unless left ""), return it."""
    with pytest.raises(ReflexError) as info:
        parse_observation(payload, **limits)
    exc = info.value
    assert exc.slug == slug, exc
    assert exc.status == SLUGS[slug][0]
    if field != "":
        assert exc.field == field
    return exc


# --- valid observations ----------------------------------------------------------------------


def test_full_observation(rgb: np.ndarray) -> None:
    # JPEG is lossy (and chroma-subsampled): compare on a smooth image, not on noise
    yy, xx = np.mgrid[0:32, 0:48]
    smooth = np.stack([xx * 5, yy * 7, xx + yy], axis=2).astype(np.uint8)
    obs = parse_observation(
        {
            "state": [0.1, 2, -3.5],
            "images": {"wrist": png(rgb), "overhead": encode_image(smooth, "JPEG", quality=95)},
            "prompt": "pick up the red block",
            "seq": 17,
            "capture_time_ns": 1737830400000000000,
            "request_id": "step-17",
            "max_gpu_seconds": 0.25,
            "episode_id": "ep-42",
        }
    )
    assert isinstance(obs, Observation)
    assert obs.state.dtype == np.float32
    np.testing.assert_array_equal(obs.state, np.float32([0.1, 2, -3.5]))
    assert sorted(obs.images) == ["overhead", "wrist"]
    np.testing.assert_array_equal(obs.images["wrist"], rgb)  # PNG is lossless
    assert obs.images["overhead"].shape == smooth.shape
    assert obs.images["overhead"].dtype == np.uint8
    assert np.abs(obs.images["overhead"].astype(int) - smooth.astype(int)).mean() < 3
    assert (obs.prompt, obs.seq, obs.capture_time_ns) == (
        "pick up the red block",
        17,
        1737830400000000000,
    )
    assert (obs.request_id, obs.max_gpu_seconds, obs.episode_id) == ("step-17", 0.25, "ep-42")


def test_minimal_observation_and_nulls_mean_absent() -> None:
    obs = parse_observation({"state": [1.0]})
    assert obs.images == {} and obs.prompt is None and obs.seq is None
    nulls = {
        k: None
        for k in (
            "images",
            "image",
            "prompt",
            "instruction",
            "task",
            "seq",
            "capture_time_ns",
            "request_id",
            "max_gpu_seconds",
            "episode_id",
        )
    }
    obs = parse_observation({"state": [1.0], **nulls})
    assert obs.images == {} and obs.prompt is None and obs.request_id is None


@pytest.mark.parametrize("alias", ["instruction", "task"])
def test_prompt_aliases(alias: str) -> None:
    assert parse_observation({"state": [0], alias: "stack the cups"}).prompt == "stack the cups"
    same = parse_observation({"state": [0], "prompt": "a", alias: "a"})
    assert same.prompt == "a"
    exc = rejects({"state": [0], "prompt": "a", alias: "b"}, "conflicting-fields")
    assert exc.details["fields"] == sorted(["prompt", alias])


def test_single_camera_shorthand(rgb: np.ndarray) -> None:
    obs = parse_observation({"state": [0], "image": png(rgb)})
    assert list(obs.images) == ["image"]
    np.testing.assert_array_equal(obs.images["image"], rgb)
    both = parse_observation({"state": [0], "image": png(rgb), "images": {"wrist": png(rgb)}})
    assert sorted(both.images) == ["image", "wrist"]
    rejects(
        {"state": [0], "image": png(rgb), "images": {"image": png(rgb)}},
        "conflicting-fields",
        "image",
    )


def test_integral_float_seq_is_an_int() -> None:
    obs = parse_observation({"state": [0], "seq": 3.0, "capture_time_ns": 5.0})
    assert obs.seq == 3 and isinstance(obs.seq, int) and isinstance(obs.capture_time_ns, int)


def test_msgpack_raw_image_bytes(rgb: np.ndarray) -> None:
    payload = {"state": [0.5], "images": {"wrist": encode_image_bytes(rgb, "PNG")}}
    decoded = msgpack.unpackb(msgpack.packb(payload), raw=False)
    assert isinstance(decoded["images"]["wrist"], bytes)
    obs = parse_observation(decoded)
    np.testing.assert_array_equal(obs.images["wrist"], rgb)
    obs = parse_observation({"state": [0.5], "image": bytearray(encode_image_bytes(rgb, "PNG"))})
    np.testing.assert_array_equal(obs.images["image"], rgb)


def test_base64_variants(rgb: np.ndarray) -> None:
    b64 = png(rgb)
    wrapped = "\n".join(b64[i : i + 76] for i in range(0, len(b64), 76)) + "\n"
    for value in (
        b64,
        wrapped,
        b64.rstrip("="),
        f"data:image/png;base64,{b64}",
        f"data:;base64,{b64}",
    ):
        np.testing.assert_array_equal(decode_image(value), rgb)


def test_round_trip_through_observation_to_dict(rgb: np.ndarray) -> None:
    obs = Observation(
        state=np.float32([1.5, -2.25]),
        images={"wrist": rgb},
        prompt="go",
        seq=4,
        request_id="r-1",
        episode_id="e",
    )
    wire = json.loads(json.dumps(observation_to_dict(obs, image_format="PNG")))
    back = parse_observation(wire)
    np.testing.assert_array_equal(back.state, obs.state)
    np.testing.assert_array_equal(back.images["wrist"], rgb)
    assert (back.prompt, back.seq, back.request_id, back.episode_id) == ("go", 4, "r-1", "e")
    assert back.capture_time_ns is None and back.max_gpu_seconds is None


# --- structural rejections -------------------------------------------------------------------


@pytest.mark.parametrize("payload", [[], "state", 3, None, [{"state": [1]}]])
def test_not_an_object(payload: Any) -> None:
    rejects(payload, "invalid-type", None)


def test_unknown_field_names_it_with_a_hint() -> None:
    exc = rejects({"state": [0], "promt": "x"}, "unknown-field", "promt")
    assert "did you mean 'prompt'" in exc.message
    exc = rejects({"state": [0], "zzz": 1, "aaa": 2}, "unknown-field", "aaa")
    assert exc.details["unknown"] == ["aaa", "zzz"]
    # openpi-style keys are not accepted here (their mapper translates them)
    rejects({"observation/state": [0], "state": [0]}, "unknown-field", "observation/state")
    rejects({"state": [0], 7: 1}, "invalid-type")


def test_missing_state() -> None:
    rejects({}, "missing-field", "state")
    rejects({"prompt": "x"}, "missing-field", "state")


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"state": "0.1 0.2"}, "state"),
        ({"state": {"a": 1}}, "state"),
        ({"state": None}, "state"),
        ({"state": [1, "2"]}, "state[1]"),
        ({"state": [1, True]}, "state[1]"),
        ({"state": [[1.0]]}, "state[0]"),
        ({"state": [1], "images": ["abc"]}, "images"),
        ({"state": [1], "images": "abc"}, "images"),
        ({"state": [1], "images": {"wrist": 3}}, "images.wrist"),
        ({"state": [1], "images": {"wrist": ["abc"]}}, "images.wrist"),
        ({"state": [1], "image": {"wrist": "abc"}}, "image"),
        ({"state": [1], "prompt": 3}, "prompt"),
        ({"state": [1], "seq": "1"}, "seq"),
        ({"state": [1], "seq": True}, "seq"),
        ({"state": [1], "seq": 1.5}, "seq"),
        ({"state": [1], "capture_time_ns": "now"}, "capture_time_ns"),
        ({"state": [1], "request_id": 5}, "request_id"),
        ({"state": [1], "max_gpu_seconds": "1s"}, "max_gpu_seconds"),
        ({"state": [1], "episode_id": 12}, "episode_id"),
    ],
)
def test_wrong_types_name_the_path(payload: dict[str, Any], field: str) -> None:
    rejects(payload, "invalid-type", field)


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"state": []}, "state"),
        ({"state": [1], "seq": -1}, "seq"),
        ({"state": [1], "seq": 2**63}, "seq"),
        ({"state": [1], "capture_time_ns": -5}, "capture_time_ns"),
        ({"state": [1], "request_id": ""}, "request_id"),
        ({"state": [1], "request_id": "has space"}, "request_id"),
        ({"state": [1], "request_id": "trailing-newline\n"}, "request_id"),
        ({"state": [1], "request_id": "x" * 129}, "request_id"),
        ({"state": [1], "request_id": "naïve"}, "request_id"),
        ({"state": [1], "max_gpu_seconds": 0}, "max_gpu_seconds"),
        ({"state": [1], "max_gpu_seconds": -1.0}, "max_gpu_seconds"),
        ({"state": [1], "max_gpu_seconds": float("inf")}, "max_gpu_seconds"),
        ({"state": [1], "max_gpu_seconds": float("nan")}, "max_gpu_seconds"),
        ({"state": [1], "max_gpu_seconds": 10**400}, "max_gpu_seconds"),
        ({"state": [1], "episode_id": ""}, "episode_id"),
        ({"state": [1], "prompt": "x" * 8193}, "prompt"),
        ({"state": [1], "images": {"wrist cam": "abc"}}, "images.wrist cam"),
        ({"state": [1], "images": {"": "abc"}}, "images."),
        ({"state": [1], "images": {"w\n": "abc"}}, "images.w\n"),
    ],
)
def test_bad_values(payload: dict[str, Any], field: str) -> None:
    rejects(payload, "invalid-value", field)


@pytest.mark.parametrize(
    ("state", "field"),
    [
        ([1.0, float("nan")], "state[1]"),
        ([float("inf")], "state[0]"),
        ([0, 0, float("-inf")], "state[2]"),
        ([1e39], "state[0]"),  # finite as float64, infinite as float32
        ([10**400], "state"),
    ],
)
def test_non_finite_state(state: list[Any], field: str) -> None:
    rejects({"state": state}, "non-finite-state", field)


def test_size_limits(rgb: np.ndarray) -> None:
    rejects({"state": [0.0] * 33}, "state-too-long", "state", max_state_dim=32)
    assert parse_observation({"state": [0.0] * 32}, max_state_dim=32).state.shape == (32,)
    cams = {f"c{i}": png(rgb) for i in range(3)}
    rejects({"state": [0], "images": cams}, "too-many-images", "images", max_images=2)
    rejects(
        {"state": [0], "images": dict(list(cams.items())[:2]), "image": png(rgb)},
        "too-many-images",
        "images",
        max_images=2,
    )
    data = encode_image_bytes(rgb, "PNG")
    rejects(
        {"state": [0], "images": {"w": png(rgb)}},
        "image-too-large",
        "images.w",
        max_image_bytes=len(data) - 10,
    )
    rejects(
        {"state": [0], "images": {"w": data}},
        "image-too-large",
        "images.w",
        max_image_bytes=len(data) - 1,
    )
    assert parse_observation({"state": [0], "images": {"w": data}}, max_image_bytes=len(data))
    exc = rejects(
        {"state": [0], "image": png(rgb)}, "image-too-large", "image", max_image_pixels=6 * 8 - 1
    )
    assert exc.details == {"width": 8, "height": 6, "limit": 47}
    # a huge base64 string is refused from its length, before it is decoded
    rejects(
        {"state": [0], "image": "A" * 4_000_000}, "image-too-large", "image", max_image_bytes=1000
    )


# --- images ----------------------------------------------------------------------------------


def _pil_bytes(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "value",
    [
        "!!!not base64!!!",
        "aGVsbG8gd29ybGQ=",  # base64 of "hello world": not an image
        "data:image/png,rawtext",  # not a base64 data URL
        "data:text/plain;base64,aGVsbG8=",
        "data:image/png;base64",  # no comma
        "",
        "é" * 8,
        b"",
        b"\x89PNG\r\n\x1a\n garbage",
    ],
)
def test_undecodable_images(value: Any) -> None:
    rejects({"state": [0], "images": {"wrist": value}}, "image-decode-failed", "images.wrist")


def test_truncated_images(rgb: np.ndarray) -> None:
    big = np.random.default_rng(1).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    for fmt in ("PNG", "JPEG"):
        data = encode_image_bytes(big, fmt)
        rejects({"state": [0], "image": data[: len(data) // 2]}, "image-decode-failed", "image")


def test_formats_other_than_jpeg_png_are_refused(rgb: np.ndarray) -> None:
    for fmt in ("GIF", "BMP", "TIFF"):
        data = _pil_bytes(Image.fromarray(rgb), fmt)
        rejects({"state": [0], "image": data}, "image-decode-failed", "image")


def test_16_bit_images_are_refused_not_clipped() -> None:
    depth = Image.fromarray(np.full((4, 4), 1000, dtype=np.uint16))
    exc = rejects({"state": [0], "image": _pil_bytes(depth, "PNG")}, "image-decode-failed", "image")
    assert "8-bit" in exc.message


def test_modes_are_converted_to_rgb(rgb: np.ndarray) -> None:
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    out = decode_image(encode_image(gray, "PNG"))
    assert out.shape == (6, 8, 3)
    np.testing.assert_array_equal(out[..., 0], gray)
    np.testing.assert_array_equal(out[..., 2], gray)
    rgba = np.concatenate([rgb, np.full((6, 8, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(decode_image(encode_image(rgba, "PNG")), rgb)  # alpha dropped
    palette = Image.fromarray(rgb).convert("P")
    np.testing.assert_array_equal(
        decode_image(_pil_bytes(palette, "PNG")), np.asarray(palette.convert("RGB"))
    )
    cmyk_jpeg = _pil_bytes(Image.fromarray(rgb).convert("CMYK"), "JPEG")
    assert decode_image(cmyk_jpeg).shape == (6, 8, 3)


def test_encode_image() -> None:
    gray = np.zeros((3, 4, 1), np.uint8)
    assert decode_image(encode_image(gray, "png")).shape == (3, 4, 3)
    rgba = np.zeros((3, 4, 4), np.uint8)
    assert decode_image(encode_image(rgba, "jpg")).shape == (3, 4, 3)  # alpha dropped for JPEG
    jpeg = encode_image_bytes(np.zeros((3, 4, 3), np.uint8))
    assert jpeg[:2] == b"\xff\xd8"
    assert base64.b64decode(encode_image(jpeg)) == jpeg  # encoded bytes pass through
    for bad, slug in [
        (np.zeros((3, 4, 3), np.float32), "invalid-type"),
        (np.zeros((3, 4, 2), np.uint8), "invalid-value"),
        (np.zeros((3,), np.uint8), "invalid-value"),
        (np.zeros((0, 4, 3), np.uint8), "invalid-value"),
    ]:
        with pytest.raises(ValidationError) as info:
            encode_image(bad)
        assert info.value.slug == slug
    with pytest.raises(ValidationError, match="choose from"):
        encode_image(gray, "WEBP")


# --- JSON bodies -----------------------------------------------------------------------------


def test_parse_json_body() -> None:
    assert parse_json_body(b'{"state": [1, 2]}') == {"state": [1, 2]}
    assert parse_json_body('{"a": 1}') == {"a": 1}
    # Python's json.dumps writes NaN; it must reach parse_observation to get its precise slug
    body = parse_json_body(json.dumps({"state": [float("nan")]}).encode())
    rejects(body, "non-finite-state", "state[0]")
    for bad in (b"{", b"", b"\xff\xfe", b"{'a': 1}", b"[" * 100_000, b"1" * 5000):
        with pytest.raises(ReflexError) as info:
            parse_json_body(bad)
        assert (info.value.slug, info.value.status) == ("malformed-json", 400)
    with pytest.raises(ReflexError) as info:
        parse_json_body(b"{}" + b" " * 100, max_bytes=50)
    assert (info.value.slug, info.value.status) == ("payload-too-large", 413)


# --- action chunks and error frames ----------------------------------------------------------


def test_action_chunk_round_trip() -> None:
    chunk = ActionChunk(actions=np.float32([[0, 0.5], [1, -1]]), seq=3, metadata={"model": "m"})
    back = parse_action_chunk(json.loads(json.dumps(chunk.to_dict())))
    np.testing.assert_array_equal(back.actions, chunk.actions)
    assert back.actions.dtype == np.float32
    assert (back.seq, back.metadata) == (3, {"model": "m"})
    # keys a newer server adds are accepted
    assert parse_action_chunk({**chunk.to_dict(), "server_timing": {}}).seq == 3


@pytest.mark.parametrize(
    ("payload", "slug", "field"),
    [
        ([[1, 2]], "invalid-action-chunk", None),
        ({"actions": [[1.0]]}, "invalid-action-chunk", "type"),
        ({"type": "chunk", "actions": [[1.0]]}, "invalid-action-chunk", "type"),
        ({"type": "action_chunk"}, "invalid-action-chunk", "actions"),
        ({"type": "action_chunk", "actions": []}, "invalid-action-chunk", "actions"),
        ({"type": "action_chunk", "actions": [[]]}, "invalid-action-chunk", "actions[0]"),
        ({"type": "action_chunk", "actions": [1, 2]}, "invalid-action-chunk", "actions[0]"),
        ({"type": "action_chunk", "actions": [[1, 2], [3]]}, "invalid-action-chunk", "actions[1]"),
        ({"type": "action_chunk", "actions": [[1, "x"]]}, "invalid-action-chunk", "actions[0][1]"),
        (
            {"type": "action_chunk", "actions": [[1.0]], "metadata": []},
            "invalid-action-chunk",
            "metadata",
        ),
        (
            {"type": "action_chunk", "actions": [[1], [float("nan")]]},
            "non-finite-actions",
            "actions[1][0]",
        ),
        ({"type": "action_chunk", "actions": [[1e39]]}, "non-finite-actions", "actions[0][0]"),
        ({"type": "action_chunk", "actions": [[10**400]]}, "non-finite-actions", "actions"),
    ],
)
def test_bad_action_chunks(payload: Any, slug: str, field: str | None) -> None:
    with pytest.raises(ReflexError) as info:
        parse_action_chunk(payload)
    assert (info.value.slug, info.value.field) == (slug, field)
    assert info.value.status == SLUGS[slug][0]


def test_error_frames() -> None:
    exc = Unavailable("circuit open", slug="circuit-open", retry_after_s=2.5)
    frame = error_frame(exc, "req-1")
    assert frame == {
        "type": "error",
        "error": "circuit-open",
        "message": "circuit open",
        "request_id": "req-1",
        "status": 503,
        "retry_after_s": 2.5,
    }
    # a client reading that frame as a chunk gets the server's error back
    with pytest.raises(ReflexError) as info:
        parse_action_chunk(json.loads(json.dumps(frame)))
    back = info.value
    assert (back.slug, back.status, back.retry_after_s, back.message) == (
        "circuit-open",
        503,
        2.5,
        "circuit open",
    )
    bad = ValidationError("state[0] is nan", slug="non-finite-state", field="state[0]")
    again = error_from_frame(error_frame(bad))
    assert (again.slug, again.status, again.field) == ("non-finite-state", 422, "state[0]")
    # a frame with a nonsense status still yields an error status
    assert error_from_frame({"type": "error", "error": "x", "status": 200}).status == 502


def test_internal_errors_leak_nothing() -> None:
    frame = error_frame(KeyError("/secret/path/model.onnx"), "r")
    assert frame == {
        "type": "error",
        "error": "internal-error",
        "message": "internal server error",
        "request_id": "r",
        "status": 500,
    }


# --- the slug table --------------------------------------------------------------------------


def test_docs_list_every_slug_with_its_status() -> None:
    rows = re.findall(r"^\| `([a-z0-9-]+)` \| (\d{3}) \|", DOCS.read_text(), flags=re.M)
    assert dict((slug, int(status)) for slug, status in rows) == {
        slug: status for slug, (status, _meaning) in SLUGS.items()
    }
    assert len(rows) == len(SLUGS)
