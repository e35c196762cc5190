"""``POST /act``: one JSON observation in, one action chunk out (the built-in HTTP transport).

Order of checks: media type (415) -> JSON (400) -> observation fields (422/413) ->
``policy.validate`` (422) -> the wedge chain. Every rejection is the one JSON error shape.

The endpoint is a plain ASGI app rather than a Starlette ``Request -> Response`` function: /act is
the hot path, and the request/response objects and the extra exception wrapper around them cost
more than the three header lookups and two ``send`` calls they would save writing.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from reflex_core.errors import ReflexError
from reflex_core.serve.errors import JSON_MEDIA_TYPE, UnsupportedMediaType, error_response
from reflex_core.serve.middleware import (
    SLUG_SCOPE_KEY,
    header_value,
    new_request_id,
    request_id_of,
)
from reflex_core.wire.parse import parse_json_body

if TYPE_CHECKING:
    from reflex_core.serve.app import ReflexServer

_CONTENT_TYPE = (b"content-type", JSON_MEDIA_TYPE.encode())


def _check_media_type(raw: bytes | None) -> None:
    text = raw.decode("latin-1") if raw is not None else None
    media = (text or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise UnsupportedMediaType(
        f"POST /act takes Content-Type: application/json, got {text or 'none'}",
        field="Content-Type",
    )


async def read_body(receive: Receive) -> bytes:
    """The whole request body (the body-limit middleware stops an oversized one on the way)."""
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

    def __init__(self, server: ReflexServer) -> None:
        self.server = server

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        received_ns = time.monotonic_ns()
        received_wall_ns = time.time_ns()
        server = self.server
        request_id = request_id_of(scope) or new_request_id()
        act_request = None
        try:
            _check_media_type(header_value(scope, b"content-type"))
            payload = parse_json_body(await read_body(receive))
            act_request = server.prepare(payload, request_id=request_id, received_ns=received_ns)
            result, replayed = await server.submit(act_request)
            body = server.encode_chunk(
                act_request, result, received_wall_ns=received_wall_ns, replayed=replayed
            )
        except ReflexError as exc:
            scope[SLUG_SCOPE_KEY] = exc.slug
            if act_request is None:  # rejected before the chain, whose span covers the rest
                server.trace_outside_chain(request_id, exc, received_wall_ns)
            await error_response(exc, request_id)(scope, receive, send)
            return
        headers = [(b"content-length", str(len(body)).encode()), _CONTENT_TYPE]
        # A wedge may ask for response headers (the router: X-Reflex-Policy-Slot,
        # X-Reflex-Model-Version) under metadata["headers"]; they stay in the body too, so a
        # WebSocket client sees the same facts.
        for name, value in (result.metadata.get("headers") or {}).items():
            headers.append((str(name).lower().encode("latin-1"), str(value).encode("latin-1")))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def act_routes(server: ReflexServer) -> list[BaseRoute]:
    """The ``/act`` route bound to ``server``."""
    return [Route("/act", ActEndpoint(server), methods=["POST"], name="act")]
