"""The wire format (DESIGN §5): one observation shape and one action-chunk shape for every
transport, parsed strictly with a stable slug for every rejection.

The shapes, every slug and its HTTP status are documented in docs/wire.md; the slug table itself
is :data:`reflex_core.wire.schema.SLUGS`.
"""

from reflex_core.wire.images import decode_image, encode_image, encode_image_bytes
from reflex_core.wire.parse import (
    SHORTHAND_CAMERA,
    error_frame,
    error_from_frame,
    observation_to_dict,
    parse_action_chunk,
    parse_json_body,
    parse_observation,
)
from reflex_core.wire.schema import ACTION_CHUNK_SCHEMA, OBSERVATION_SCHEMA, SLUGS
from reflex_core.wire.types import ActionChunk, Observation, SafeStop

__all__ = [
    "ACTION_CHUNK_SCHEMA",
    "OBSERVATION_SCHEMA",
    "SHORTHAND_CAMERA",
    "SLUGS",
    "ActionChunk",
    "Observation",
    "SafeStop",
    "decode_image",
    "encode_image",
    "encode_image_bytes",
    "error_frame",
    "error_from_frame",
    "observation_to_dict",
    "parse_action_chunk",
    "parse_json_body",
    "parse_observation",
]
