"""Property tests: whatever a client sends, the parser answers with an Observation or a typed
4xx error whose slug is in the table — never any other exception (which would be a 500)."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reflex_core.errors import ReflexError
from reflex_core.wire import (
    SLUGS,
    Observation,
    encode_image,
    encode_image_bytes,
    observation_to_dict,
    parse_action_chunk,
    parse_json_body,
    parse_observation,
)
from reflex_core.wire.schema import OBSERVATION_FIELDS

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# A few real images, encoded once: generating pixels per example would dominate the run time.
_rng = np.random.default_rng(7)
IMAGES = [
    _rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8) for h, w in [(4, 4), (5, 7), (8, 3)]
]
PNG_B64 = [encode_image(im, "PNG") for im in IMAGES]
PNG_BYTES = [encode_image_bytes(im, "PNG") for im in IMAGES]
JPEG_BYTES = encode_image_bytes(IMAGES[0], "JPEG")

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)


def _nested(leaves: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=8), children, max_size=4)
        ),
        max_leaves=12,
    )


pure_json = _nested(json_scalars)
json_values = _nested(json_scalars | st.binary(max_size=20))  # msgpack also carries bytes
f32 = st.floats(
    min_value=-float(np.finfo(np.float32).max), max_value=float(np.finfo(np.float32).max), width=32
)
camera_names = st.from_regex(r"\A[A-Za-z0-9_.:/-]{1,12}\Z")
printable_ids = st.from_regex(r"\A[!-~]{1,20}\Z")


@st.composite
def valid_observations(draw: st.DrawFn) -> dict[str, Any]:
    obs: dict[str, Any] = {"state": draw(st.lists(f32, min_size=1, max_size=16))}
    cams = draw(st.dictionaries(camera_names, st.integers(0, len(IMAGES) - 1), max_size=3))
    if cams:
        obs["images"] = {
            name: draw(
                st.sampled_from([PNG_B64[i], PNG_BYTES[i], "data:image/png;base64," + PNG_B64[i]])
            )
            for name, i in cams.items()
        }
    optional = {
        "prompt": st.text(max_size=30),
        "seq": st.integers(0, 2**63 - 1),
        "capture_time_ns": st.integers(0, 2**63 - 1),
        "request_id": printable_ids,
        "max_gpu_seconds": st.floats(min_value=1e-6, max_value=1e6),
        "episode_id": st.text(min_size=1, max_size=30),
    }
    for key, strategy in optional.items():
        if draw(st.booleans()):
            obs[key] = draw(strategy)
    return obs


def _mutations(obs: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    keys = sorted(obs)
    any_key = st.sampled_from(sorted(OBSERVATION_FIELDS)) | st.text(max_size=10)

    def with_(key: str, value: Any) -> dict[str, Any]:
        return {**obs, key: value}

    def without(key: str) -> dict[str, Any]:
        return {k: v for k, v in obs.items() if k != key}

    def state_with(value: Any, at: int) -> dict[str, Any]:
        state = list(obs["state"])
        state[at % len(state)] = value
        return with_("state", state)

    garbage_image = (
        st.text(max_size=40)
        | st.binary(max_size=40)
        | st.just(PNG_BYTES[0][: len(PNG_BYTES[0]) // 2])
        | st.just(JPEG_BYTES[: len(JPEG_BYTES) // 3])
        | st.just("data:image/png;base64,@@@")
        | json_values
    )
    return st.one_of(
        st.sampled_from(keys).map(without),
        st.builds(with_, any_key, json_values),
        st.builds(
            state_with,
            st.sampled_from(
                [float("nan"), float("inf"), -float("inf"), 1e39, 10**400, "1", None, True, [1.0]]
            ),
            st.integers(0, 100),
        ),
        st.builds(
            lambda name, img: with_("images", {**obs.get("images", {}), name: img}),
            st.text(max_size=10),
            garbage_image,
        ),
        st.builds(lambda img: with_("image", img), garbage_image),
        st.builds(lambda k: with_(k, [obs.get(k)]), st.sampled_from(keys)),  # wrap in a list
        st.builds(lambda k: with_(k, {"value": obs.get(k)}), st.sampled_from(keys)),  # nest
        st.builds(
            lambda alias, text: with_(alias, text),
            st.sampled_from(["instruction", "task"]),
            st.text(max_size=5),
        ),
        st.builds(lambda n: with_("state", [0.5] * n), st.integers(1000, 3000)),
        st.builds(
            lambda k, v: with_(k, v),
            st.sampled_from(["seq", "capture_time_ns"]),
            st.integers(-(2**80), 2**80) | st.floats(),
        ),
    )


def check_outcome(payload: Any) -> Observation | None:
    """The contract: an Observation, or a ReflexError from the slug table with a 4xx status."""
    try:
        return parse_observation(payload, max_images=4, max_state_dim=1024)
    except ReflexError as exc:
        assert exc.slug in SLUGS, exc.slug
        assert 400 <= exc.status < 500, (exc.slug, exc.status)
        assert exc.status == SLUGS[exc.slug][0], exc
        assert exc.message
        json.dumps(exc.to_dict("rid"))  # the error itself always serialises
        return None


@FAST
@given(json_values)
def test_arbitrary_values_never_crash(payload: Any) -> None:
    check_outcome(payload)


@FAST
@given(
    st.dictionaries(
        st.sampled_from(sorted(OBSERVATION_FIELDS)) | st.text(max_size=6), json_values, max_size=6
    )
)
def test_arbitrary_observation_shaped_dicts_never_crash(payload: dict[str, Any]) -> None:
    check_outcome(payload)


@FAST
@given(valid_observations().flatmap(_mutations))
def test_mutated_observations_never_crash(payload: dict[str, Any]) -> None:
    check_outcome(payload)


@FAST
@given(valid_observations())
def test_valid_observations_parse_and_round_trip(payload: dict[str, Any]) -> None:
    obs = check_outcome(payload)
    assert obs is not None, payload
    np.testing.assert_array_equal(obs.state, np.asarray(payload["state"], dtype=np.float32))
    for name, value in payload.get("images", {}).items():
        index = next(
            i for i, enc in enumerate(PNG_BYTES) if value == enc or PNG_B64[i] in str(value)
        )
        np.testing.assert_array_equal(obs.images[name], IMAGES[index])
    for key in ("prompt", "seq", "capture_time_ns", "request_id", "max_gpu_seconds", "episode_id"):
        assert getattr(obs, key) == payload.get(key)
    # and back through JSON: the same observation again
    again = parse_observation(json.loads(json.dumps(observation_to_dict(obs, image_format="PNG"))))
    np.testing.assert_array_equal(again.state, obs.state)
    assert again.images.keys() == obs.images.keys()
    for name in obs.images:
        np.testing.assert_array_equal(again.images[name], obs.images[name])
    for key in ("prompt", "seq", "capture_time_ns", "request_id", "max_gpu_seconds", "episode_id"):
        assert getattr(again, key) == getattr(obs, key)


@FAST
@given(st.binary(max_size=200) | pure_json.map(lambda v: json.dumps(v).encode()))
def test_any_body_is_json_or_malformed_json(body: bytes) -> None:
    try:
        value = parse_json_body(body)
    except ReflexError as exc:
        assert (exc.slug, exc.status) == ("malformed-json", 400)
        return
    check_outcome(value)


@FAST
@given(
    json_values
    | st.fixed_dictionaries(
        {"type": st.just("action_chunk"), "actions": json_values},
        optional={"seq": json_values, "metadata": json_values},
    )
)
def test_action_chunk_parser_never_crashes(payload: Any) -> None:
    try:
        chunk = parse_action_chunk(payload)
    except ReflexError as exc:
        assert exc.slug and 400 <= exc.status < 600
        return
    assert chunk.actions.ndim == 2 and np.isfinite(chunk.actions).all()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG"])
def test_image_bytes_at_every_truncation_are_handled(fmt: str) -> None:
    """Exhaustive rather than sampled: every prefix of a small encoded image."""
    data = encode_image_bytes(IMAGES[1], fmt)
    for end in range(len(data) + 1):
        check_outcome({"state": [0.0], "image": data[:end]})
