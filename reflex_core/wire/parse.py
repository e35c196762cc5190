"""Parse wire payloads (decoded JSON or msgpack dicts) into the wire types, strictly.

Every rejection is a :class:`~reflex_core.errors.ReflexError` with a stable slug from
:data:`reflex_core.wire.schema.SLUGS`, a 4xx status and the offending ``field`` (a path such as
``state[3]`` or ``images.wrist``). Unknown top-level fields are rejected so a typo
(``promt``) surfaces instead of being ignored; peers' formats (openpi's msgpack keys) go through
their own mappers, never through this strict parser.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import fastjsonschema
import numpy as np

from reflex_core.errors import BadRequest, PayloadTooLarge, ReflexError, ValidationError
from reflex_core.wire import schema
from reflex_core.wire.images import (
    DEFAULT_MAX_IMAGE_BYTES,
    DEFAULT_MAX_IMAGE_PIXELS,
    decode_image,
    encode_image,
)
from reflex_core.wire.types import ActionChunk, Observation

DEFAULT_MAX_STATE_DIM = 1024
DEFAULT_MAX_IMAGES = 8
SHORTHAND_CAMERA = "image"
"""The camera name the single-camera ``image`` field maps to: a policy whose only camera is
called something else sees an unknown camera and says so (``unknown-camera``)."""

_F32_MAX = float(np.finfo(np.float32).max)
_BYTES_LIKE = (bytes, bytearray, memoryview)
# JSON Schema's "$" means end of string; Python's also matches before a final newline.
_CAMERA_NAME = re.compile(schema.CAMERA_NAME_PATTERN.replace("$", r"\Z"))


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range
        return False


def parse_json_body(
    body: bytes | bytearray | memoryview | str, *, max_bytes: int | None = None
) -> Any:
    """Decode a request body as JSON.

    ``NaN`` / ``Infinity`` literals are accepted here (Python's ``json.dumps`` writes them) so
    that a non-finite state gets its precise slug from :func:`parse_observation`.

    :raises PayloadTooLarge: ``payload-too-large`` when ``max_bytes`` is given and exceeded.
    :raises BadRequest: ``malformed-json`` for anything that is not UTF-8 JSON,
        ``duplicate-key`` for an object that names a key twice (JSON leaves the meaning open;
        Python's parser would silently keep the last).
    """
    size = len(body.encode("utf-8")) if isinstance(body, str) else len(body)
    if max_bytes is not None and size > max_bytes:
        raise PayloadTooLarge(
            f"request body is {size} bytes, limit {max_bytes}",
            slug="payload-too-large",
            details={"bytes": size, "limit": max_bytes},
        )
    try:
        text = body if isinstance(body, str) else bytes(body).decode("utf-8")
        return json.loads(text, object_pairs_hook=_unique_keys)
    except _DuplicateKey as exc:
        raise BadRequest(
            f"JSON object has the key {exc.key!r} twice; which one counts is not defined, so "
            "neither is taken",
            slug="duplicate-key",
            field=exc.key,
        ) from None
    except UnicodeDecodeError as exc:
        raise BadRequest(f"request body is not UTF-8: {exc}", slug="malformed-json") from exc
    except json.JSONDecodeError as exc:
        raise BadRequest(f"request body is not valid JSON: {exc}", slug="malformed-json") from exc
    except (RecursionError, ValueError) as exc:  # absurd nesting, over-long integer literals
        raise BadRequest(f"request body is not usable JSON: {exc}", slug="malformed-json") from exc


class _DuplicateKey(Exception):
    def __init__(self, key: str) -> None:
        self.key = key


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):  # Python's json keeps the last silently; a typo'd retry
        seen: set[str] = set()  # must not pass as a different observation
        for key, _value in pairs:
            if key in seen:
                raise _DuplicateKey(key)
            seen.add(key)
    return obj


def _path(exc: fastjsonschema.JsonSchemaValueException) -> str | None:
    """``data.images.wrist`` / ``data.state[3]`` -> ``images.wrist`` / ``state[3]``."""
    name = exc.name or "data"
    path = name[len("data") :].lstrip(".") if name.startswith("data") else name
    return path or None


def _schema_error(exc: fastjsonschema.JsonSchemaValueException, what: str) -> ValidationError:
    field = _path(exc)
    message = exc.message.replace("data.", "", 1).replace("data", what, 1)
    slug = {"type": "invalid-type", "required": "missing-field"}.get(
        exc.rule or "", "invalid-value"
    )
    if exc.rule == "additionalProperties":
        slug = "unknown-field"
    if exc.rule == "required" and isinstance(exc.rule_definition, list):
        present = exc.value if isinstance(exc.value, dict) else {}
        missing = [k for k in exc.rule_definition if k not in present] or exc.rule_definition
        field = f"{field}.{missing[0]}" if field else str(missing[0])
    if exc.rule == "propertyNames":
        bad = [k for k in exc.value if not _CAMERA_NAME.match(k)] or ["?"]
        message = f"camera name {bad[0]!r} must match {schema.CAMERA_NAME_PATTERN}"
        field = f"{field}.{bad[0]}" if field else bad[0]
    return ValidationError(message, slug=slug, field=field)


def _check_keys(payload: Mapping[Any, Any]) -> None:
    bad_types = [k for k in payload if not isinstance(k, str)]
    if bad_types:
        raise ValidationError(
            f"observation keys must be strings, got {bad_types[0]!r}", slug="invalid-type"
        )
    # at most a handful named: a body of junk keys must not echo back as a huge error
    unknown = sorted(k for k in payload if k not in schema.OBSERVATION_FIELDS)[:10]
    if unknown:
        hints = difflib.get_close_matches(unknown[0], sorted(schema.OBSERVATION_FIELDS), n=1)
        hint = f" (did you mean {hints[0]!r}?)" if hints else ""
        raise ValidationError(
            f"unknown observation field(s) {', '.join(map(repr, unknown))}{hint}; "
            f"known: {', '.join(sorted(schema.OBSERVATION_FIELDS))}",
            slug="unknown-field",
            field=unknown[0],
            details={"unknown": unknown},
        )
    if "state" not in payload:
        raise ValidationError(
            "observation needs a 'state' list", slug="missing-field", field="state"
        )


def _check_sizes(payload: Mapping[str, Any], max_state_dim: int, max_images: int) -> None:
    """Limits first, so an oversized payload is not walked by the schema validator."""
    state = payload.get("state")
    if isinstance(state, list | tuple) and len(state) > max_state_dim:
        raise PayloadTooLarge(
            f"state has {len(state)} values, limit {max_state_dim}",
            slug="state-too-long",
            field="state",
            details={"length": len(state), "limit": max_state_dim},
        )
    images = payload.get("images")
    count = (len(images) if isinstance(images, Mapping) else 0) + (payload.get("image") is not None)
    if count > max_images:
        raise PayloadTooLarge(
            f"{count} images, limit {max_images}",
            slug="too-many-images",
            field="images",
            details={"count": count, "limit": max_images},
        )
    if isinstance(images, Mapping):
        for name in images:
            if not isinstance(name, str):
                raise ValidationError(
                    f"camera names must be strings, got {name!r}",
                    slug="invalid-type",
                    field="images",
                )


def _schema_view(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The payload as the JSON Schema sees it: raw image bytes (msgpack) stand in as strings,
    since JSON has no bytes type; they are decoded as images right after."""
    view = dict(payload)
    if isinstance(view.get("image"), _BYTES_LIKE):
        view["image"] = ""
    images = view.get("images")
    if isinstance(images, Mapping) and any(isinstance(v, _BYTES_LIKE) for v in images.values()):
        view["images"] = {k: ("" if isinstance(v, _BYTES_LIKE) else v) for k, v in images.items()}
    return view


def _prompt(payload: Mapping[str, Any]) -> str | None:
    given = {k: payload[k] for k in schema.PROMPT_ALIASES if payload.get(k) is not None}
    if len(set(given.values())) > 1:
        names = sorted(given)
        raise ValidationError(
            f"{' and '.join(map(repr, names))} are aliases but differ; send one",
            slug="conflicting-fields",
            field=names[0],
            details={"fields": names},
        )
    return next(iter(given.values()), None)


def parse_observation(
    payload: Any,
    *,
    max_image_bytes: int = DEFAULT_MAX_IMAGE_BYTES,
    max_image_pixels: int = DEFAULT_MAX_IMAGE_PIXELS,
    max_images: int = DEFAULT_MAX_IMAGES,
    max_state_dim: int = DEFAULT_MAX_STATE_DIM,
) -> Observation:
    """Turn a decoded JSON/msgpack observation into an :class:`Observation`.

    Fields (docs/wire.md): ``state`` (required), ``images`` (camera -> base64 / data URL /
    bytes), ``image`` (shorthand for camera ``"image"``), ``prompt`` (aliases ``instruction``,
    ``task``), ``seq``, ``capture_time_ns``, ``request_id``, ``max_gpu_seconds``, ``episode_id``.
    ``null`` means absent for every optional field.

    Whether ``state`` has the policy's length and the cameras are the policy's is checked by the
    runtime (``Policy.validate``), which knows the model.
    """
    if not isinstance(payload, Mapping):
        raise ValidationError(
            f"an observation is a JSON object, got {type(payload).__name__}", slug="invalid-type"
        )
    _check_keys(payload)
    _check_sizes(payload, max_state_dim, max_images)
    try:
        schema.validate_observation(_schema_view(payload))
    except fastjsonschema.JsonSchemaValueException as exc:
        raise _schema_error(exc, "observation") from exc

    gpu = payload.get("max_gpu_seconds")
    if gpu is not None and not _finite(gpu):
        raise ValidationError(
            "max_gpu_seconds must be finite", slug="invalid-value", field="max_gpu_seconds"
        )
    seq = payload.get("seq")
    capture = payload.get("capture_time_ns")
    images: dict[str, np.ndarray] = {}
    # Built before the images are decoded, so a bad state is refused before any pixel work:
    # building it is the state's one check (finite float32, else non-finite-state).
    observation = Observation(
        state=payload["state"],
        images=images,
        prompt=_prompt(payload),
        seq=None if seq is None else int(seq),
        capture_time_ns=None if capture is None else int(capture),
        request_id=payload.get("request_id"),
        max_gpu_seconds=None if gpu is None else float(gpu),
        episode_id=payload.get("episode_id"),
    )
    limits = {"max_bytes": max_image_bytes, "max_pixels": max_image_pixels}
    for name, value in sorted((payload.get("images") or {}).items()):
        images[name] = decode_image(value, field=f"images.{name}", **limits)
    if payload.get("image") is not None:
        if SHORTHAND_CAMERA in images:
            raise ValidationError(
                f"'image' is shorthand for images.{SHORTHAND_CAMERA}, which is also given",
                slug="conflicting-fields",
                field="image",
                details={"fields": ["image", f"images.{SHORTHAND_CAMERA}"]},
            )
        images[SHORTHAND_CAMERA] = decode_image(payload["image"], field="image", **limits)
    return observation


def observation_to_dict(observation: Observation, *, image_format: str = "JPEG") -> dict[str, Any]:
    """The JSON form of an observation (what the SDK sends); absent fields are left out.
    Use ``image_format="PNG"`` for a lossless round trip."""
    out: dict[str, Any] = {"state": np.asarray(observation.state, dtype=np.float64).tolist()}
    if observation.images:
        out["images"] = {
            name: encode_image(array, image_format) for name, array in observation.images.items()
        }
    for key in ("prompt", "seq", "capture_time_ns", "request_id", "max_gpu_seconds", "episode_id"):
        value = getattr(observation, key)
        if value is not None:
            out[key] = value
    return out


def _chunk_error(message: str, field: str | None = None) -> ValidationError:
    return ValidationError(message, slug="invalid-action-chunk", field=field)


def parse_action_chunk(payload: Any) -> ActionChunk:
    """Parse a server reply (decoded JSON) into an :class:`ActionChunk` (clients use this).

    An error frame (``{"type": "error", ...}``) is raised as the server's error
    (:func:`error_from_frame`), so a client sees the server's slug. Actions must form a
    non-empty (T, D) table of finite numbers (``non-finite-actions`` otherwise: a robot must
    never be handed NaN).
    """
    if isinstance(payload, Mapping) and payload.get("type") == "error":
        raise error_from_frame(payload)
    if not isinstance(payload, Mapping):
        raise _chunk_error(f"an action chunk is a JSON object, got {type(payload).__name__}")
    try:
        schema.validate_action_chunk(payload)
    except fastjsonschema.JsonSchemaValueException as exc:
        detail = _schema_error(exc, "action chunk")
        raise _chunk_error(detail.message, detail.field) from exc
    rows = payload["actions"]
    width = len(rows[0])
    for i, row in enumerate(rows):
        if len(row) != width:
            raise _chunk_error(
                f"actions[{i}] has {len(row)} values, actions[0] has {width}", f"actions[{i}]"
            )
    try:
        actions = np.asarray(rows, dtype=np.float64)
    except OverflowError as exc:
        raise ValidationError(
            "actions hold a value beyond float range", slug="non-finite-actions", field="actions"
        ) from exc
    bad = ~np.isfinite(actions) | (np.abs(actions) > _F32_MAX)
    if bad.any():
        t, d = (int(x) for x in np.argwhere(bad)[0])
        raise ValidationError(
            f"actions[{t}][{d}] is not a finite float32",
            slug="non-finite-actions",
            field=f"actions[{t}][{d}]",
        )
    seq = payload.get("seq")
    return ActionChunk(
        actions=actions.astype(np.float32),
        seq=None if seq is None else int(seq),
        metadata=dict(payload.get("metadata") or {}),
    )


def error_frame(exc: BaseException, request_id: str | None = None) -> dict[str, Any]:
    """The error frame for ``exc``: :meth:`ReflexError.to_dict` plus its ``status`` (a
    WebSocket has no status line) and ``retry_after_s`` when set. Anything that is not a
    ReflexError is a server bug: the frame says ``internal-error`` and carries no detail (the
    traceback belongs in the server log, not in a response)."""
    if isinstance(exc, ReflexError):
        frame = exc.to_dict(request_id)
        frame["status"] = exc.status
        if exc.retry_after_s is not None:
            frame["retry_after_s"] = exc.retry_after_s
        return frame
    return {
        "type": "error",
        "error": "internal-error",
        "message": "internal server error",
        "request_id": request_id,
        "status": 500,
    }


def error_from_frame(frame: Mapping[str, Any]) -> ReflexError:
    """Rebuild the :class:`ReflexError` an error frame describes (the client side of
    :func:`error_frame`)."""
    status = frame.get("status")
    retry = frame.get("retry_after_s")
    details = frame.get("details")
    return ReflexError(
        str(frame.get("message") or "server error"),
        slug=str(frame.get("error") or "server-error"),
        # a frame without a usable error status is still an error: 502, the server misbehaved
        status=status if type(status) is int and 400 <= status <= 599 else 502,
        field=frame.get("field") if isinstance(frame.get("field"), str) else None,
        details=dict(details) if isinstance(details, Mapping) else None,
        retry_after_s=float(retry) if type(retry) in (int, float) and retry >= 0 else None,
    )
