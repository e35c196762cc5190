"""``POST /act``: one JSON observation in, one action chunk out (the built-in HTTP transport).

Order of checks: media type (415) -> JSON (400) -> observation fields (422/413) ->
``policy.validate`` (422) -> the wedge chain. Every rejection is the one JSON error shape.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from reflex_core.errors import ReflexError
from reflex_core.serve.errors import (
    JSONBytesResponse,
    UnsupportedMediaType,
    dumps,
    error_response,
)
from reflex_core.serve.middleware import SLUG_SCOPE_KEY, new_request_id, request_id_of
from reflex_core.wire.parse import parse_json_body

if TYPE_CHECKING:
    from reflex_core.serve.app import ReflexServer


def _check_media_type(request: Request) -> None:
    raw = request.headers.get("content-type")
    media = (raw or "").split(";", 1)[0].strip().lower()
    if media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    ):
        return
    raise UnsupportedMediaType(
        f"POST /act takes Content-Type: application/json, got {raw or 'none'}",
        field="Content-Type",
    )


def act_routes(server: ReflexServer) -> list[BaseRoute]:
    """The ``/act`` route bound to ``server``."""

    async def act(request: Request) -> Response:
        received_ns = time.monotonic_ns()
        received_wall_ns = time.time_ns()
        request_id = request_id_of(request.scope) or new_request_id()
        try:
            _check_media_type(request)
            payload = parse_json_body(await request.body())
            act_request = server.prepare(payload, request_id=request_id, received_ns=received_ns)
            result, replayed = await server.submit(act_request)
            body = dumps(
                server.build_chunk(
                    act_request, result, received_wall_ns=received_wall_ns, replayed=replayed
                )
            )
        except ReflexError as exc:
            request.scope[SLUG_SCOPE_KEY] = exc.slug
            return error_response(exc, request_id)
        return JSONBytesResponse(body)

    return [Route("/act", act, methods=["POST"], name="act")]
