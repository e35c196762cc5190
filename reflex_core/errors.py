"""Errors a user can act on.

Every error that reaches a user (a CLI message, an HTTP/WebSocket error frame) is a
``ReflexError`` with a stable ``slug``: tools and docs key on the slug, never on the message.
Internal bugs are not ReflexErrors: they stay tracebacks in the log and become a generic 500.
"""

from __future__ import annotations

from typing import Any


class ReflexError(Exception):
    """Base class: a stable slug, an HTTP status and a human message."""

    slug: str = "reflex-error"
    status: int = 500

    def __init__(
        self,
        message: str,
        *,
        slug: str | None = None,
        status: int | None = None,
        field: str | None = None,
        details: dict[str, Any] | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if slug is not None:
            self.slug = slug
        if status is not None:
            self.status = status
        self.field = field
        self.details = details or {}
        self.retry_after_s = retry_after_s

    def to_dict(self, request_id: str | None = None) -> dict[str, Any]:
        """The one JSON error shape (DESIGN §5)."""
        body: dict[str, Any] = {
            "type": "error",
            "error": self.slug,
            "message": self.message,
            "request_id": request_id,
        }
        if self.field is not None:
            body["field"] = self.field
        if self.details:
            body["details"] = self.details
        return body

    def __str__(self) -> str:
        return f"[{self.slug}] {self.message}"


class ValidationError(ReflexError):
    """Bad input: the request or file does not match its schema (422)."""

    slug = "validation-error"
    status = 422


class BadRequest(ReflexError):
    """Malformed input that cannot even be parsed (400)."""

    slug = "bad-request"
    status = 400


class AuthError(ReflexError):
    slug = "unauthorized"
    status = 401


class PayloadTooLarge(ReflexError):
    slug = "payload-too-large"
    status = 413


class Conflict(ReflexError):
    """The request contradicts one the server already holds (409), e.g. a reused request id."""

    slug = "conflict"
    status = 409


class Unavailable(ReflexError):
    """The server cannot take this request now (503); clients may retry after ``retry_after_s``."""

    slug = "unavailable"
    status = 503


class DeadlineExceeded(ReflexError):
    slug = "deadline-exceeded"
    status = 504


class PluginError(ReflexError):
    """A plugin failed to load or registered something invalid."""

    slug = "plugin-error"


class ConfigError(ReflexError):
    """A configuration (CLI flags, config file, embodiment) is invalid."""

    slug = "config-error"
    status = 400


class ArtifactError(ReflexError):
    """An export artifact is missing, corrupted, or failed its parity gate."""

    slug = "artifact-error"


class ParityError(ArtifactError):
    slug = "parity-failed"


class CheckpointError(ReflexError):
    """A model checkpoint does not match the architecture (missing/unexpected key, wrong shape)."""

    slug = "checkpoint-mismatch"
