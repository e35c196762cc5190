"""Typed errors the SDK raises. Server errors keep the server's slug; the class says what kind
of failure it is, so a robot loop can ``except AuthError`` / ``except Unavailable`` without
parsing messages.

=====================  ======  ==============================================================
class                  status  when
=====================  ======  ==============================================================
``AuthError``          401     missing or wrong API key
``ValidationError``    422     the observation was refused (``state-length-mismatch``...)
``BadRequest``         400     malformed request (the SDK never sends one unless misused)
``PayloadTooLarge``    413     images or state over the server's limits
``Unavailable``        503     the server is loading, overloaded, tripped or degraded
``DeadlineExceeded``   504     the server's own deadline passed without a chunk
``RequestTimeout``     504     no chunk arrived within ``recv_action(timeout=...)``
``TransportError``     503     the server cannot be reached and reconnecting gave up
``ServerError``        5xx     a server bug or an answer the SDK cannot read
=====================  ======  ==============================================================
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from reflex_core.errors import (
    AuthError,
    BadRequest,
    DeadlineExceeded,
    PayloadTooLarge,
    ReflexError,
    Unavailable,
    ValidationError,
)

__all__ = [
    "AuthError",
    "BadRequest",
    "DeadlineExceeded",
    "PayloadTooLarge",
    "ReflexError",
    "RequestTimeout",
    "ServerError",
    "TransportError",
    "Unavailable",
    "ValidationError",
    "error_from_payload",
]


class TransportError(ReflexError):
    """The server could not be reached, or the connection dropped and reconnecting within the
    stream's budget failed. Retrying later may work."""

    slug = "transport-error"
    status = 503


class RequestTimeout(DeadlineExceeded):
    """No action chunk arrived within the caller's timeout. The observation stays pending: a
    later ``recv_action`` still returns its chunk if it comes."""

    slug = "timeout"
    status = 504


class ServerError(ReflexError):
    """A 5xx that is not a 503/504, or a reply that is not a chunk nor an error frame."""

    slug = "server-error"
    status = 500


_BY_STATUS: dict[int, type[ReflexError]] = {
    400: BadRequest,
    401: AuthError,
    403: AuthError,
    413: PayloadTooLarge,
    415: BadRequest,
    422: ValidationError,
    429: Unavailable,
    503: Unavailable,
    504: DeadlineExceeded,
}


def _retry_after(value: Any) -> float | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return seconds if seconds >= 0 else None


def error_from_payload(
    status: int, payload: Any, *, retry_after_header: str | None = None
) -> ReflexError:
    """The typed error for an HTTP status and the server's error body (or a WebSocket error
    frame, whose ``status`` field stands in for the status line).

    The server's slug, message, field and details are kept; an unknown 4xx is a
    ``ValidationError``, an unknown 5xx a ``ServerError``.
    """
    frame: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {}
    slug = frame.get("error") if isinstance(frame.get("error"), str) else f"http-{status}"
    message = frame.get("message") if isinstance(frame.get("message"), str) else None
    cls = _BY_STATUS.get(status) or (ValidationError if 400 <= status < 500 else ServerError)
    details = frame.get("details")
    retry = _retry_after(frame.get("retry_after_s"))
    if retry is None:
        retry = _retry_after(retry_after_header)
    return cls(
        message or f"the server answered {status}",
        slug=slug,
        status=status,
        field=frame.get("field") if isinstance(frame.get("field"), str) else None,
        details=dict(details) if isinstance(details, Mapping) else None,
        retry_after_s=retry,
    )
