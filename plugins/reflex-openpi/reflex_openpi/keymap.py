"""Which openpi observation key feeds which part of a Reflex observation.

An entry maps an openpi key to a target: ``state``, ``prompt``, ``images.<camera>`` (a camera
of the served policy), or ``ignore``. Several keys may map to ``state``: their values are
concatenated in the order the map lists them (DROID sends ``observation/joint_position`` and
``observation/gripper_position``). The defaults follow openpi's examples and the franka
camera names; a ``--openpi-key-map`` (or ``[openpi] openpi-key-map``) adds to and overrides
them. A key the map does not know is refused, so a typo surfaces instead of a camera going
silently missing.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from reflex_core.errors import ValidationError
from reflex_core.wire.images import DEFAULT_MAX_IMAGE_PIXELS
from reflex_core.wire.schema import CAMERA_NAME_PATTERN
from reflex_core.wire.types import Observation

DEFAULT_KEY_MAP: dict[str, str] = {
    "observation/image": "images.front",
    "observation/wrist_image": "images.wrist",
    "observation/state": "state",
    "prompt": "prompt",
}
_CAMERA = re.compile(CAMERA_NAME_PATTERN.replace("$", r"\Z"))


def _check_target(key: str, target: str) -> str:
    if target in ("state", "prompt", "ignore"):
        return target
    if target.startswith("images.") and _CAMERA.match(target[len("images.") :]):
        return target
    raise ValueError(f"{key}={target}: a target is state, prompt, ignore or images.<camera>")


def parse_key_map(value: Any) -> dict[str, str]:
    """``"observation/image=images.front,prompt=prompt"`` (command line) or a TOML table."""
    if isinstance(value, Mapping):
        pairs = [(str(k), str(v)) for k, v in value.items()]
    else:
        pairs = []
        for item in str(value).split(","):
            if not item.strip():
                continue
            key, sep, target = item.partition("=")
            if not sep or not key.strip():
                raise ValueError(f"{item!r}: expected OPENPI_KEY=TARGET")
            pairs.append((key.strip(), target.strip()))
    if not pairs:
        raise ValueError("an empty key map")
    return {key: _check_target(key, target) for key, target in pairs}


def effective_key_map(user: Mapping[str, str] | None) -> dict[str, str]:
    """The defaults, overridden and extended by the user's entries (theirs come last in
    state order when they add state keys)."""
    merged = dict(DEFAULT_KEY_MAP)
    merged.update(user or {})
    return merged


def _invalid(message: str, field: str, slug: str = "openpi-invalid-observation") -> ValidationError:
    return ValidationError(message, slug=slug, field=field)


def _image(key: str, value: Any) -> np.ndarray:
    array = np.asarray(value)
    if array.dtype != np.uint8:
        raise _invalid(f"{key}: images must be uint8, got {array.dtype}", key)
    if array.ndim == 3 and array.shape[0] == 3 and array.shape[-1] != 3:
        array = np.moveaxis(array, 0, -1)  # CHW, as some openpi clients send
    if array.ndim != 3 or array.shape[-1] != 3 or 0 in array.shape:
        raise _invalid(f"{key}: expected an (H, W, 3) or (3, H, W) image, got {array.shape}", key)
    if array.shape[0] * array.shape[1] > DEFAULT_MAX_IMAGE_PIXELS:
        raise _invalid(f"{key}: {array.shape[1]}x{array.shape[0]} is too many pixels", key)
    return np.ascontiguousarray(array)


def _text(key: str, value: Any) -> str:
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, np.ndarray) and value.dtype.kind in "US" and value.size == 1:
        value = str(value.reshape(-1)[0])
    if not isinstance(value, str):
        raise _invalid(f"{key}: the prompt must be a string", key)
    return value


def to_observation(raw: Mapping[Any, Any], key_map: Mapping[str, str]) -> Observation:
    """An openpi observation dict -> a Reflex :class:`Observation` (not yet validated against
    the policy: the server's ``policy.validate`` does that)."""
    values: dict[str, Any] = {}
    for key, value in raw.items():
        name = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
        if not isinstance(name, str):
            raise _invalid(f"observation keys must be strings, got {name!r}", "observation")
        if name not in key_map:
            raise _invalid(
                f"unknown openpi key {name!r}; the key map knows "
                f"{', '.join(sorted(key_map))} (add it with --openpi-key-map {name}=TARGET)",
                name,
                slug="openpi-unknown-key",
            )
        values[name] = value
    parts, images, prompt = [], {}, None
    for key, target in key_map.items():
        if key not in values or target == "ignore":
            continue
        value = values[key]
        if target == "state":
            try:
                part = np.asarray(value, dtype=np.float32).reshape(-1)
            except (TypeError, ValueError) as exc:
                raise _invalid(f"{key}: the state must be numbers", key) from exc
            parts.append(part)
        elif target == "prompt":
            prompt = _text(key, value)
        else:
            camera = target[len("images.") :]
            if camera in images:
                raise _invalid(
                    f"{key}: camera {camera!r} already came from another key of this observation",
                    key,
                    slug="conflicting-fields",
                )
            images[camera] = _image(key, value)
    if not parts:
        state_keys = [k for k, t in key_map.items() if t == "state"]
        raise _invalid(
            f"no state: send {' and '.join(state_keys) or 'a key mapped to state'}",
            "state",
            slug="missing-field",
        )
    return Observation(state=np.concatenate(parts), images=images, prompt=prompt)
