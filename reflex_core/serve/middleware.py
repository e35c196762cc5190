"""The server's ASGI middleware, outermost first:

``RequestIdMiddleware`` -> ``ErrorBoundaryMiddleware`` -> ``ConcurrencyLimitMiddleware`` ->
(CORS, only with ``--cors-origin``) -> ``BearerAuthMiddleware`` (only with an API key) ->
``BodyLimitMiddleware`` -> routes.

Pure ASGI classes rather than ``BaseHTTPMiddleware``: they add no task or body copy per
request, which matters on the /act hot path. CORS sits outside auth so that preflights are
answered and a 401 still carries the CORS headers a browser needs to read it.
"""

from __future__ import annotations

import contextvars
import hmac
import itertools
import logging
import os
import re
from collections.abc import Callable, Collection
from typing import Any

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from reflex_core.errors import AuthError, BadRequest, PayloadTooLarge, ReflexError, Unavailable
from reflex_core.serve.errors import (
    CLIENT_CLOSED_STATUS,
    CLIENT_DISCONNECTED,
    INVALID_REQUEST_ID,
    SERVER_BUSY,
    InternalError,
    error_response,
)

log = logging.getLogger("reflex.serve")

REQUEST_ID_HEADER = b"x-request-id"
REQUEST_ID_SCOPE_KEY = "reflex.request_id"
SLUG_SCOPE_KEY = "reflex.slug"
_REQUEST_ID_RE = re.compile(r"[A-Za-z0-9._:\-]{1,128}")

request_id_var: contextvars.ContextVar[str] = contextvars.ContextVar(
    "reflex_request_id", default="-"
)
"""The request id of the request being handled, for log lines (see :class:`RequestIdLogFilter`)."""


def header_value(scope: Scope, name: bytes) -> bytes | None:
    """The first value of header ``name`` (lower-case, as ASGI servers deliver them)."""
    for key, value in scope.get("headers", ()):
        if key == name:
            return value
    return None


# Generated ids: a random per-process prefix and a counter. Unique like a uuid4 without its
# getrandom() system call and UUID object on every request; they are correlation ids, not secrets.
_id_prefix = ""
_id_counter = itertools.count(1)


def _reset_request_ids() -> None:
    global _id_prefix, _id_counter
    _id_prefix, _id_counter = os.urandom(8).hex(), itertools.count(1)


_reset_request_ids()
os.register_at_fork(after_in_child=_reset_request_ids)  # a forked worker gets its own prefix


def new_request_id() -> str:
    """32 hex digits, like a uuid4: 16 random ones for this process, then a counter."""
    return f"{_id_prefix}{next(_id_counter):016x}"


def request_id_of(scope: Scope) -> str | None:
    return scope.get(REQUEST_ID_SCOPE_KEY)


async def send_error(exc: ReflexError, scope: Scope, receive: Receive, send: Send) -> None:
    """Answer an HTTP request with the one error shape, or refuse a WebSocket handshake."""
    scope[SLUG_SCOPE_KEY] = exc.slug
    if scope["type"] == "websocket":
        # The denial-response extension lets a client see the status and the JSON body;
        # without it the only option is a bare close (the server answers 403).
        if "websocket.http.response" in scope.get("extensions", {}):
            await error_response(exc, request_id_of(scope))(scope, receive, send)
        else:
            await send({"type": "websocket.close", "code": 1008, "reason": exc.slug})
        return
    await error_response(exc, request_id_of(scope))(scope, receive, send)


class RequestIdMiddleware:
    """Accepts a valid ``X-Request-ID`` or makes one, and echoes it on every response.

    The id must be 1-128 characters of ``A-Za-z0-9._:-`` (it ends up in log lines; anything
    else is refused with 400 ``invalid-request-id`` rather than logged).
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        raw = header_value(scope, REQUEST_ID_HEADER)
        invalid = False
        if raw is None:
            request_id = new_request_id()
        else:
            request_id = raw.decode("latin-1")
            if _REQUEST_ID_RE.fullmatch(request_id) is None:
                invalid, request_id = True, new_request_id()
        scope[REQUEST_ID_SCOPE_KEY] = request_id
        header = (REQUEST_ID_HEADER, request_id.encode())

        async def send_with_id(message: Message) -> None:
            if message["type"] in (
                "http.response.start",
                "websocket.accept",
                "websocket.http.response.start",
            ):
                message = {**message, "headers": [*message.get("headers", ()), header]}
            await send(message)

        token = request_id_var.set(request_id)
        try:
            if invalid:
                exc = BadRequest(
                    "X-Request-ID must be 1-128 characters of A-Z a-z 0-9 . _ : -",
                    slug=INVALID_REQUEST_ID,
                    field="X-Request-ID",
                )
                await send_error(exc, scope, receive, send_with_id)
                return
            await self.app(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)


class ErrorBoundaryMiddleware:
    """Turns every escaped exception into the one JSON error shape and counts responses.

    A ``ReflexError`` keeps its status and slug; anything else is a bug: its traceback goes to
    the log with the request id, the client gets 500 ``internal-error`` and the id.

    :param count: ``(route, status, slug) -> None``, called once per HTTP response.
    :param routes: route paths counted by name; anything else is counted as ``other`` so an
        attacker probing paths cannot grow the label set.
    """

    def __init__(
        self,
        app: ASGIApp,
        count: Callable[[str, int, str], None] | None = None,
        routes: Collection[str] = (),
    ) -> None:
        self.app = app
        self.count = count
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        started = False
        status = 500

        async def tracking_send(message: Message) -> None:
            nonlocal started, status
            mtype = message["type"]
            if mtype in ("http.response.start", "websocket.http.response.start"):
                started, status = True, message["status"]
            elif mtype in ("websocket.accept", "websocket.close"):
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except ClientDisconnect:
            # the client's doing, not a bug: one line, no traceback, nobody left to answer
            log.info(
                "request %s: the client disconnected before its body arrived", request_id_of(scope)
            )
            scope[SLUG_SCOPE_KEY] = CLIENT_DISCONNECTED
            if not started:
                status = CLIENT_CLOSED_STATUS
        except Exception as exc:
            if isinstance(exc, ReflexError) and not isinstance(exc, InternalError):
                error: ReflexError = exc
                log.info("request %s failed: %s", request_id_of(scope), exc)
            else:
                error = InternalError()
                log.exception("unhandled error in request %s", request_id_of(scope))
            if not started:
                status = error.status
                await send_error(error, scope, receive, tracking_send)
            elif kind == "websocket":
                try:
                    await send({"type": "websocket.close", "code": 1011, "reason": error.slug})
                except Exception:  # the socket may already be gone
                    pass
            scope[SLUG_SCOPE_KEY] = error.slug
        if kind == "http" and self.count is not None:
            path = scope.get("path", "")
            route = path if path in self.routes else "other"
            self.count(route, status, scope.get(SLUG_SCOPE_KEY, "ok") if status >= 400 else "ok")


class ConcurrencyLimitMiddleware:
    """At most ``max_requests`` HTTP requests inside the app at once, from their headers to the
    end of their answer (a half-sent body holds its place until ``--body-timeout-s``); past it,
    503 ``server-busy`` with ``Retry-After`` before the body is read. The open paths (/health,
    /metrics) are not counted, so probes still answer under load."""

    def __init__(self, app: ASGIApp, max_requests: int, open_paths: Collection[str] = ()) -> None:
        self.app = app
        self.max_requests = max_requests
        self.open_paths = frozenset(open_paths)
        self.active = 0  # only the event loop's thread touches it

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        if self.active >= self.max_requests:
            exc = Unavailable(
                f"the server is handling {self.active} requests, its limit "
                "(--max-concurrent-requests); retry shortly",
                slug=SERVER_BUSY,
                retry_after_s=1.0,
            )
            await send_error(exc, scope, receive, send)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


def open_route(route: Any) -> Any:
    """Mark a route a transport adds as reachable without the API key, like /health (openpi's
    ``/healthz``, which its clients poll before they authenticate anything)."""
    route.reflex_open = True
    return route


def is_open_route(route: Any) -> bool:
    return bool(getattr(route, "reflex_open", False))


class BearerAuthMiddleware:
    """``Authorization: Bearer <key>`` (or openpi's ``Api-Key <key>``) on every route but the
    open ones (/health, /metrics).

    The key is compared with :func:`hmac.compare_digest` (constant time) so response timing
    does not leak how much of a guess was right.
    """

    def __init__(self, app: ASGIApp, api_key: str, open_paths: Collection[str] = ()) -> None:
        self.app = app
        self._key = api_key.encode()
        self.open_paths = frozenset(open_paths)

    def _authorized(self, scope: Scope) -> bool:
        header = header_value(scope, b"authorization")
        if header is None:
            return False
        scheme, _, token = header.partition(b" ")
        # openpi's client sends "Api-Key <key>"; accept it so openpi robots can authenticate.
        if scheme.lower() not in (b"bearer", b"api-key"):
            return False
        return hmac.compare_digest(token.strip(), self._key)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in self.open_paths:
            await self.app(scope, receive, send)
            return
        if not self._authorized(scope):
            exc = AuthError("missing or wrong API key: send 'Authorization: Bearer <key>'")
            await send_error(exc, scope, receive, send)
            return
        await self.app(scope, receive, send)


class BodyLimitMiddleware:
    """Refuses request bodies above ``max_bytes`` with 413 ``payload-too-large``.

    A declared ``Content-Length`` above the limit is refused before reading anything; otherwise
    the body is counted as it streams in and reading stops at the first chunk past the limit,
    so a huge chunked upload never sits in memory.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    def _too_large(self) -> PayloadTooLarge:
        return PayloadTooLarge(
            f"request body exceeds the server's limit of {self.max_bytes} bytes (--max-body-bytes)",
            details={"max_body_bytes": self.max_bytes},
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = header_value(scope, b"content-length")
        if declared is not None:
            try:
                too_large = int(declared) > self.max_bytes
            except ValueError:
                too_large = False  # the server's HTTP parser rejects a bad Content-Length
            if too_large:
                await send_error(self._too_large(), scope, receive, send)
                return
        seen = 0

        async def counting_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise self._too_large()
            return message

        await self.app(scope, counting_receive, send)


class RequestIdLogFilter(logging.Filter):
    """Adds ``record.request_id`` (``-`` outside a request) so log formats can include it."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = request_id_var.get()
        return True


def install_request_id_logging(fmt: str | None = None) -> None:
    """Put the request id into every log line of the root handlers."""
    fmt = fmt or "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
    root = logging.getLogger()
    for handler in root.handlers:
        handler.addFilter(RequestIdLogFilter())
        handler.setFormatter(logging.Formatter(fmt))


def cors_middleware_kwargs(origins: Collection[str]) -> dict[str, Any]:
    """Arguments for starlette's CORSMiddleware: only what a robot dashboard needs."""
    return {
        "allow_origins": list(origins),
        "allow_methods": ["GET", "POST", "OPTIONS"],
        "allow_headers": ["authorization", "content-type", "x-request-id"],
        "expose_headers": ["x-request-id", "retry-after"],
        "max_age": 600,
    }
