"""``POST /act``: one JSON observation in, one action chunk out (the built-in HTTP transport).

Order of checks: media type and charset, content encoding (415) -> the body, within
``--body-timeout-s`` (408) -> JSON (400) -> observation fields (422/413) ->
``policy.validate`` (422) -> the wedge chain. Every rejection is the one JSON error shape.

The endpoint is a plain ASGI app rather than a Starlette ``Request -> Response`` function: /act is
the hot path, and the request/response objects and the extra exception wrapper around them cost
more than the three header lookups and two ``send`` calls they would save writing.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from reflex_core.errors import ReflexError
from reflex_core.serve.errors import (
    BODY_TIMEOUT,
    JSON_MEDIA_TYPE,
    UNSUPPORTED_CONTENT_ENCODING,
    UnsupportedMediaType,
    error_response,
)
from reflex_core.serve.middleware import (
    SLUG_SCOPE_KEY,
    header_value,
    new_request_id,
    request_id_of,
)
from reflex_core.wire.parse import parse_json_body

if TYPE_CHECKING:
    from reflex_core.plugin.contracts import TransportHost

_CONTENT_TYPE = (b"content-type", JSON_MEDIA_TYPE.encode())


def _check_media_type(raw: bytes | None) -> None:
    text = raw.decode("latin-1") if raw is not None else None
    media, _, params = (text or "").partition(";")
    media = media.strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        charset = _charset(params)
        if charset is None or charset in ("utf-8", "utf8"):
            return
        raise UnsupportedMediaType(
            f"POST /act takes UTF-8 JSON, got charset={charset} (send UTF-8, or no charset)",
            field="Content-Type",
        )
    raise UnsupportedMediaType(
        f"POST /act takes Content-Type: application/json, got {text or 'none'}",
        field="Content-Type",
    )


def _charset(params: str) -> str | None:
    for param in params.split(";"):
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            return value.strip().strip('"').lower()
    return None


def _check_content_encoding(raw: bytes | None) -> None:
    """The body is read as it is: a compressed one (gzip, br...) would be parsed as garbage, or
    worse, as something else. Only ``identity`` (or no header) is taken."""
    if raw is None or raw.strip().lower() in (b"", b"identity"):
        return
    raise ReflexError(
        f"this server does not decode Content-Encoding {raw.decode('latin-1')!r}; "
        "send the body uncompressed",
        slug=UNSUPPORTED_CONTENT_ENCODING,
        status=415,
        field="Content-Encoding",
    )


def _body_timeout(seconds: float) -> ReflexError:
    return ReflexError(
        f"the request body did not arrive within {seconds:g} s (--body-timeout-s)",
        slug=BODY_TIMEOUT,
        status=408,
        details={"body_timeout_s": seconds},
    )


async def read_body(receive: Receive, timeout_s: float | None = None) -> bytes:
    """The whole request body (the body-limit middleware stops an oversized one on the way),
    within ``timeout_s`` of the call: a client that stalls mid-body gets 408 ``body-timeout``
    instead of holding its connection and its request slot."""
    if timeout_s is None:
        return await _read_body(receive)
    try:
        async with asyncio.timeout(timeout_s):
            return await _read_body(receive)
    except TimeoutError:
        raise _body_timeout(timeout_s) from None


async def _read_body(receive: Receive) -> bytes:
    message = await receive()
    if message["type"] == "http.disconnect":
        raise ClientDisconnect()
    body: bytes = message.get("body", b"")
    if not message.get("more_body", False):
        return body
    parts = [body]
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnect()
        parts.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(parts)


class ActEndpoint:
    """The ASGI app behind ``POST /act``, bound to one server."""

    def __init__(self, server: TransportHost) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received_ns = time.monotonic_ns()
        received_wall_ns = time.time_ns()
        server = self.server
        request_id = request_id_of(scope) or new_request_id()
        act_request = None
        try:
            _check_media_type(header_value(scope, b"content-type"))
            _check_content_encoding(header_value(scope, b"content-encoding"))
            payload = parse_json_body(await read_body(receive, server.limits.body_timeout_s))
            act_request = server.prepare(payload, request_id=request_id, received_ns=received_ns)
            result, replayed = await server.submit(act_request)
            body = server.encode_chunk(
                act_request, result, received_wall_ns=received_wall_ns, replayed=replayed
            )
        except ReflexError as exc:
            scope[SLUG_SCOPE_KEY] = exc.slug
            if act_request is None:  # rejected before the chain, whose span covers the rest
                server.trace_outside_chain(request_id, exc, received_wall_ns)
            # a body left half-read cannot be skipped: the connection closes after the answer
            extra = {"Connection": "close"} if exc.slug == BODY_TIMEOUT else None
            await error_response(exc, request_id, extra)(scope, receive, send)
            return
        headers = [(b"content-length", str(len(body)).encode()), _CONTENT_TYPE]
        # A wedge may ask for response headers (the router: X-Reflex-Policy-Slot,
        # X-Reflex-Model-Version) under metadata["headers"]; they stay in the body too, so a
        # WebSocket client sees the same facts.
        for name, value in (result.metadata.get("headers") or {}).items():
            headers.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def act_routes(server: TransportHost) -> list[BaseRoute]:
    """The ``/act`` route bound to ``server``."""
    return [Route("/act", ActEndpoint(server), methods=["POST"], name="act")]
