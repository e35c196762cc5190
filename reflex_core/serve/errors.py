"""The one JSON error shape at the edge (DESIGN §5) and the slugs the server itself raises.

Every error response, HTTP or WebSocket, is ``ReflexError.to_dict(request_id)``: tools key on
the slug. Internal bugs become ``internal-error`` (500) with the request id; their traceback goes
to the log only.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import orjson
from starlette.responses import Response

from reflex_core.errors import BadRequest, ReflexError

JSON_MEDIA_TYPE = "application/json"

# Slugs raised by the server itself (the parser, the runtime and the wedges add their own).
NOT_FOUND = "not-found"
METHOD_NOT_ALLOWED = "method-not-allowed"
INTERNAL_ERROR = "internal-error"
UNSUPPORTED_MEDIA_TYPE = "unsupported-media-type"
INVALID_REQUEST_ID = "invalid-request-id"
NOT_READY = "not-ready"
QUEUE_FULL = "queue-full"
UNKNOWN_POLICY = "unknown-policy"
NON_FINITE_OUTPUT = "non-finite-output"
INVALID_NOISE_SEED = "invalid-noise-seed"
CLIENT_DISCONNECTED = "client-disconnected"
BODY_TIMEOUT = "body-timeout"
SERVER_BUSY = "server-busy"
TOO_MANY_SESSIONS = "too-many-sessions"
WS_IDLE = "ws-idle"
OVERLOADED = "overloaded"
UNSUPPORTED_CONTENT_ENCODING = "unsupported-content-encoding"
CLIENT_CLOSED_STATUS = 499
"""The status a request the client abandoned is counted under (nginx's convention): nothing
is sent, the client is gone."""


class InternalError(ReflexError):
    """What a client sees for a bug: no message detail, just the slug and the request id."""

    slug = INTERNAL_ERROR
    status = 500

    def __init__(self) -> None:
        super().__init__(
            "internal server error; the server log has the details for this request id"
        )


class UnsupportedMediaType(BadRequest):
    slug = UNSUPPORTED_MEDIA_TYPE
    status = 415


def _json_default(value: Any) -> Any:
    # Wedges may leave numpy scalars/arrays in metadata; JSON has no such types.
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def _non_finite_output() -> ReflexError:
    return ReflexError(
        "the response contains NaN or Infinity (the policy produced non-finite values; "
        "enable a guard wedge to catch them)",
        slug=NON_FINITE_OUTPUT,
        status=500,
    )


def dumps(payload: Any) -> bytes:
    """Compact, strict JSON (no NaN/Infinity tokens, which most JSON parsers reject)."""
    try:
        return json.dumps(
            payload,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
            default=_json_default,
        ).encode()
    except ValueError as exc:
        if "Out of range float" not in str(exc):
            raise
        raise _non_finite_output() from exc


def encode_action_chunk(seq: int | None, actions: Any, metadata: Any) -> bytes:
    """The ``action_chunk`` frame as JSON bytes: ``{"type", "seq", "actions", "metadata"}``.

    The same document :func:`dumps` makes of ``{"type": "action_chunk", "seq": seq, "actions":
    actions.tolist(), "metadata": metadata}`` (every number parses back to the same float64),
    in a tenth of the time: the stdlib writes each float through ``float.__repr__`` (~0.7 us
    apiece, ~90 us for a 16x8 chunk), orjson formats the array in one pass. The metadata, a few
    dozen small values from the server and the wedges, stays with :func:`dumps` and its strict
    rules (orjson would write NaN as ``null`` instead of refusing it).
    """
    array = np.ascontiguousarray(actions, dtype=np.float64)  # exact: every float32 is a float64
    if not np.isfinite(array).all():
        raise _non_finite_output()
    return b'{"type":"action_chunk","seq":%b,"actions":%b,"metadata":%b}' % (
        dumps(seq),
        orjson.dumps(array, option=orjson.OPT_SERIALIZE_NUMPY),
        dumps(metadata),
    )


class JSONBytesResponse(Response):
    """A response whose body is already JSON bytes (we encode once, with our own rules)."""

    media_type = JSON_MEDIA_TYPE


def error_headers(exc: ReflexError) -> dict[str, str]:
    headers: dict[str, str] = {}
    if exc.retry_after_s is not None:
        headers["Retry-After"] = str(max(0, math.ceil(exc.retry_after_s)))
    if exc.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="reflex"'
    return headers


def error_payload(exc: ReflexError, request_id: str | None) -> dict[str, Any]:
    body = exc.to_dict(request_id)
    if exc.retry_after_s is not None:
        body["retry_after_s"] = exc.retry_after_s
    return body


def error_response(
    exc: ReflexError, request_id: str | None, extra_headers: dict[str, str] | None = None
) -> Response:
    """The HTTP form of an error: its status, the one JSON shape, Retry-After when set."""
    headers = error_headers(exc)
    if extra_headers:
        headers.update(extra_headers)
    return JSONBytesResponse(
        dumps(error_payload(exc, request_id)), status_code=exc.status, headers=headers
    )


def http_status_error(status: int, detail: str | None) -> ReflexError:
    """Starlette's own HTTP errors (no route, wrong method) in our shape."""
    if status == 404:
        return ReflexError("no such route", slug=NOT_FOUND, status=404)
    if status == 405:
        return ReflexError("method not allowed on this route", slug=METHOD_NOT_ALLOWED, status=405)
    return ReflexError(detail or "HTTP error", slug=f"http-{status}", status=status)
