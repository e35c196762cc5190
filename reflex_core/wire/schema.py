"""The wire format's JSON Schemas and its table of error slugs (DESIGN §5, docs/wire.md).

The schemas are compiled once, at import, with fastjsonschema. They check structure and types;
what a schema cannot say (finite numbers, decodable images, size limits that are parameters,
alias conflicts) is checked in :mod:`reflex_core.wire.parse`.

``SLUGS`` is the one list of the slugs the wire format can answer with. docs/wire.md documents
each of them and a test keeps the two in step.
"""

from __future__ import annotations

from typing import Any

import fastjsonschema

INT64_MAX = 2**63 - 1
MAX_PROMPT_CHARS = 8192
MAX_REQUEST_ID_CHARS = 128
MAX_EPISODE_ID_CHARS = 256
# Camera names end up in metric labels, logs and artifact configs: keep them plain.
CAMERA_NAME_PATTERN = r"^[A-Za-z0-9_.:/-]{1,64}$"
# Request ids travel back in the X-Request-ID header: visible ASCII only, no spaces.
REQUEST_ID_PATTERN = rf"^[!-~]{{1,{MAX_REQUEST_ID_CHARS}}}$"

PROMPT_ALIASES = ("prompt", "instruction", "task")

_optional_text = {"type": ["string", "null"], "maxLength": MAX_PROMPT_CHARS}
_image = {
    "type": "string",
    "description": "base64 JPEG/PNG, or a data URL data:image/...;base64,... ; msgpack callers "
    "may send the encoded file as raw bytes instead",
}

OBSERVATION_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Reflex observation",
    "description": "One snapshot of the robot's world, sent to POST /act or over /ws.",
    "type": "object",
    "properties": {
        "state": {
            "type": "array",
            "items": {"type": "number"},
            "minItems": 1,
            "description": "proprioception in robot units; its length must match the policy",
        },
        "images": {
            "type": ["object", "null"],
            "propertyNames": {"pattern": CAMERA_NAME_PATTERN},
            "additionalProperties": _image,
            "description": "camera name -> image",
        },
        "image": {
            **_image,
            "type": ["string", "null"],
            "description": "single-camera shorthand: the camera named 'image'",
        },
        "prompt": _optional_text,
        "instruction": _optional_text,
        "task": _optional_text,
        "seq": {"type": ["integer", "null"], "minimum": 0, "maximum": INT64_MAX},
        "capture_time_ns": {"type": ["integer", "null"], "minimum": 0, "maximum": INT64_MAX},
        "request_id": {"type": ["string", "null"], "pattern": REQUEST_ID_PATTERN},
        "max_gpu_seconds": {"type": ["number", "null"], "exclusiveMinimum": 0},
        "episode_id": {
            "type": ["string", "null"],
            "minLength": 1,
            "maxLength": MAX_EPISODE_ID_CHARS,
        },
    },
    "required": ["state"],
    "additionalProperties": False,
}

OBSERVATION_FIELDS = frozenset(OBSERVATION_SCHEMA["properties"])

ACTION_CHUNK_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Reflex action chunk",
    "type": "object",
    "properties": {
        "type": {"const": "action_chunk"},
        "seq": {"type": ["integer", "null"]},
        "actions": {
            "type": "array",
            "minItems": 1,
            "items": {"type": "array", "minItems": 1, "items": {"type": "number"}},
        },
        "metadata": {"type": "object"},
    },
    "required": ["type", "actions"],
    # Clients accept keys a newer server adds.
    "additionalProperties": True,
}

validate_observation = fastjsonschema.compile(OBSERVATION_SCHEMA)
validate_action_chunk = fastjsonschema.compile(ACTION_CHUNK_SCHEMA)

SLUGS: dict[str, tuple[int, str]] = {
    # slug: (HTTP status, meaning)
    "malformed-json": (400, "the body is not UTF-8 JSON"),
    "duplicate-key": (400, "a JSON object names one key twice"),
    "payload-too-large": (413, "the body is larger than the server accepts"),
    "invalid-type": (422, "a field has the wrong JSON type"),
    "missing-field": (422, "a required field is absent"),
    "unknown-field": (422, "a field the observation does not have (typos surface here)"),
    "invalid-value": (422, "a field has the right type but a value out of its range or pattern"),
    "conflicting-fields": (422, "two fields say different things (prompt vs instruction)"),
    "non-finite-state": (422, "state holds NaN, Infinity or a value beyond float32"),
    "state-too-long": (413, "state is longer than the server accepts"),
    "too-many-images": (413, "more cameras than the server accepts"),
    "image-too-large": (413, "an image's encoded bytes or pixel count is over the limit"),
    "image-decode-failed": (422, "bad base64, not a JPEG/PNG, truncated, or not 8-bit"),
    "state-length-mismatch": (422, "state length differs from the policy's (runtime check)"),
    "unknown-camera": (422, "a camera the policy does not know (runtime check)"),
    "image-invalid": (422, "an image array that is not (H, W, 3) (library callers only)"),
    "invalid-action-chunk": (422, "an action chunk that does not match its schema (clients)"),
    "non-finite-actions": (422, "an action chunk holding NaN or Infinity (clients)"),
    "internal-error": (500, "a server bug; the details are in the server log, never here"),
}
