"""The msgpack-numpy codec (checked against openpi-client's own packer) and the key map."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest
from openpi_client import msgpack_numpy as openpi_codec
from reflex_openpi.codec import CodecError, packb, unpackb
from reflex_openpi.keymap import (
    DEFAULT_KEY_MAP,
    effective_key_map,
    parse_key_map,
    to_observation,
)

from reflex_core.errors import ConfigError, ValidationError
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.testing import installed_plugin


def test_entry_point_is_installed_and_registers_the_transport() -> None:
    pm = installed_plugin("openpi", "reflex-openpi", "reflex_openpi")
    transport = pm.registry.transports["openpi"]
    assert pm.registry.owner("transports", "openpi") == "openpi"
    assert [o.flag for o in transport.options] == ["--openpi-key-map"]


def test_frames_packed_by_openpi_client_decode_and_ours_decode_there() -> None:
    obs = {
        "observation/image": np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3),
        "observation/state": np.linspace(0, 1, 8),
        "scalar": np.float32(2.5),
        "prompt": "pick",
    }
    decoded = unpackb(openpi_codec.packb(obs))
    np.testing.assert_array_equal(decoded["observation/image"], obs["observation/image"])
    assert decoded["observation/state"].dtype == np.float64
    assert decoded["scalar"] == np.float32(2.5) and isinstance(decoded["scalar"], np.float32)
    reply = {"actions": np.ones((4, 8), np.float32), "server_timing": {"infer_ms": 1.5}}
    back = openpi_codec.unpackb(packb(reply))
    assert back["actions"].shape == (4, 8) and back["actions"].dtype == np.float32
    assert back["server_timing"] == {"infer_ms": 1.5}


@pytest.mark.parametrize("dtype", ["|O", "<c8", "|V4", "[('a', '<i4')]"])
def test_object_void_and_complex_dtypes_are_refused(dtype: str) -> None:
    frame = msgpack.packb(
        {"x": {"__ndarray__": True, "data": b"\0" * 8, "dtype": dtype, "shape": [1]}}
    )
    with pytest.raises(CodecError) as info:
        unpackb(frame)
    assert info.value.slug == "openpi-bad-frame" and info.value.status == 422
    with pytest.raises(TypeError):
        packb({"x": np.array([1 + 2j])})
    with pytest.raises(TypeError):
        packb({"x": np.array([object()], dtype=object)})


@pytest.mark.parametrize(
    "frame",
    [
        b"\xc1not msgpack",
        msgpack.packb(
            {"x": {"__ndarray__": True, "data": b"\0" * 7, "dtype": "<f4", "shape": [2]}}
        ),
        msgpack.packb({"x": {"__ndarray__": True, "data": b"", "dtype": "<f4", "shape": [-1]}}),
        msgpack.packb({"x": {"__ndarray__": True, "data": "text", "dtype": "<f4", "shape": [1]}}),
        msgpack.packb({"x": {"__ndarray__": True, "data": b"", "dtype": "nope", "shape": [0]}}),
    ],
)
def test_inconsistent_frames_are_bad_input(frame: bytes) -> None:
    with pytest.raises(CodecError):
        unpackb(frame)


def test_key_map_parsing_and_defaults() -> None:
    assert parse_key_map("a=state, b=images.top ,c=ignore") == {
        "a": "state", "b": "images.top", "c": "ignore",
    }  # fmt: skip
    assert parse_key_map({"x": "prompt"}) == {"x": "prompt"}
    for bad in ("a", "a=camera", "a=images.bad name", ""):
        with pytest.raises(ValueError):
            parse_key_map(bad)
    merged = effective_key_map({"observation/image": "images.top", "extra": "ignore"})
    assert merged["observation/image"] == "images.top" and merged["prompt"] == "prompt"
    assert set(DEFAULT_KEY_MAP) < set(merged)


def test_observations_map_onto_state_cameras_and_prompt() -> None:
    key_map = effective_key_map(
        {"observation/joint_position": "state", "observation/gripper_position": "state",
         "observation/state": "ignore"}
    )  # fmt: skip
    chw = np.zeros((3, 4, 5), np.uint8)
    chw[0] = 200
    obs = to_observation(
        {
            b"observation/gripper_position": np.array([0.04]),
            "observation/joint_position": np.arange(7.0),
            "observation/state": np.zeros(99),
            "observation/image": chw,
            "observation/wrist_image": np.zeros((6, 8, 3), np.uint8),
            "prompt": b"pick",
        },
        key_map,
    )
    np.testing.assert_allclose(obs.state, [0, 1, 2, 3, 4, 5, 6, 0.04], rtol=1e-6)
    assert obs.state.dtype == np.float32 and obs.prompt == "pick"
    assert obs.images["front"].shape == (4, 5, 3) and obs.images["front"][0, 0, 0] == 200
    assert obs.images["wrist"].shape == (6, 8, 3)


@pytest.mark.parametrize(
    ("raw", "slug"),
    [
        (
            {"observation/state": [0.0], "observation/imgae": np.zeros((2, 2, 3), np.uint8)},
            "openpi-unknown-key",
        ),
        ({"observation/image": np.zeros((2, 2, 3), np.uint8)}, "missing-field"),
        (
            {"observation/state": [0.0], "observation/image": np.zeros((2, 2, 3), np.float32)},
            "openpi-invalid-observation",
        ),
        (
            {"observation/state": [0.0], "observation/image": np.zeros((2, 2), np.uint8)},
            "openpi-invalid-observation",
        ),
        ({"observation/state": ["a"]}, "openpi-invalid-observation"),
        ({"observation/state": [0.0], "prompt": 3}, "openpi-invalid-observation"),
        (
            {
                "observation/state": [0.0],
                "observation/image": np.zeros((2, 2, 3), np.uint8),
                "observation/top": np.zeros((2, 2, 3), np.uint8),
            },
            "conflicting-fields",
        ),
    ],
)
def test_bad_observations_are_validation_errors(raw: dict, slug: str) -> None:
    with pytest.raises(ValidationError) as info:
        to_observation(raw, effective_key_map({"observation/top": "images.front"}))
    assert info.value.slug == slug


def test_the_key_map_comes_from_the_command_line_or_an_openpi_table() -> None:
    from reflex_core.serve.config import resolve_serve_options

    registry = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "openpi"}).registry
    table = {"observation/joint_position": "state", "observation/top": "images.front"}
    from_file = resolve_serve_options({}, {"openpi": {"openpi-key-map": table}}, registry)
    assert from_file.transports["openpi"]["openpi_key_map"] == table
    flag = parse_key_map("observation/top=images.wrist")
    both = resolve_serve_options(
        {"openpi_key_map": flag}, {"openpi": {"openpi-key-map": table}}, registry
    )
    assert both.transports["openpi"]["openpi_key_map"] == {"observation/top": "images.wrist"}
    with pytest.raises(ConfigError) as info:
        resolve_serve_options({}, {"openpi": {"openpi-key-map": {"a": "nowhere"}}}, registry)
    assert info.value.slug == "invalid-config-value"
