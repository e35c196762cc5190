"""The openpi-compatible WebSocket endpoint at ``/`` (and ``GET /healthz``).

A session, in openpi's order: the server sends one metadata frame; then per binary frame in,
one binary frame out: ``{"actions": (T, D) float32, "server_timing": {"infer_ms",
"prev_total_ms"}, "reflex": <the chunk's metadata>}``. Observations go through the server's
``act`` path (``ReflexServer.submit``), so every enabled wedge (guard, deadline, ...) applies
exactly as for ``/act`` and ``/ws``.

On any error the server sends a TEXT frame (the Reflex error frame as JSON: slug and message,
never a traceback) and closes the connection with code 1011, as openpi's server does; an
openpi client raises it as ``RuntimeError``.

``/`` is a WebSocket route only: a plain ``GET /`` still gets the server's 404, and the other
routes are untouched.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from reflex_core.errors import BadRequest, PayloadTooLarge, ReflexError, Unavailable
from reflex_core.wedges import ActRequest
from reflex_core.wire.parse import error_frame
from reflex_openpi.codec import BAD_FRAME, CodecError, packb, unpackb
from reflex_openpi.keymap import effective_key_map, to_observation

if TYPE_CHECKING:
    from reflex_core.serve.app import ReflexServer

log = logging.getLogger("reflex.openpi")

ROUTE = "/"
INTERNAL_ERROR_CLOSE = 1011
GOING_AWAY = 1001


def _plain(metadata: dict[str, Any]) -> Any:
    """Wedge metadata as plain msgpack-able values (no tuples, sets or numpy scalars)."""
    from reflex_core.serve.errors import dumps

    return json.loads(dumps(metadata))


class OpenpiSession:
    """One openpi client connection."""

    def __init__(self, server: ReflexServer, websocket: WebSocket, key_map: dict[str, str]):
        self.server = server
        self.websocket = websocket
        self.key_map = key_map
        self.session_id = uuid.uuid4().hex
        self.frames = 0

    def metadata(self) -> dict[str, Any]:
        """The first frame: what a client may want to know about the policy it talks to."""
        server = self.server
        policy = server.policies.get("default")
        info = dict(getattr(policy, "info", {}) or {}) if policy is not None else {}
        return {
            "server": "reflex",
            "protocol": "openpi-websocket",
            "ready": server.ready,
            "embodiment": getattr(server.embodiment, "name", None),
            "model": info.get("family"),
            "model_version": info.get("model_version"),
            "chunk_size": info.get("chunk_size"),
            "action_dim": info.get("action_dim"),
            "state_dim": info.get("state_dim"),
            "cameras": info.get("cameras"),
            "key_map": self.key_map,
            "wedges": list(server.wedge_names),
        }

    async def run(self) -> None:
        websocket = self.websocket
        await websocket.accept()
        await websocket.send_bytes(packb(self.metadata()))
        # A server shutting down closes the session (1001) rather than waiting for the client.
        stopping = asyncio.ensure_future(self.server.stopping.wait())
        try:
            await self._serve_frames(stopping)
        finally:
            stopping.cancel()

    async def _serve_frames(self, stopping: asyncio.Future[Any]) -> None:
        websocket = self.websocket
        prev_total_ms: float | None = None
        while True:
            receiving = asyncio.ensure_future(websocket.receive())
            await asyncio.wait({receiving, stopping}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(Exception):
                    await websocket.close(code=GOING_AWAY, reason="server shutting down")
                return
            try:
                message = receiving.result()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            started = time.monotonic_ns()
            self.frames += 1
            request_id = f"{self.session_id}.{self.frames}"
            try:
                reply = await self._answer(message, request_id, started, prev_total_ms)
            except Exception as exc:
                await self._fail(exc, request_id)
                return
            await websocket.send_bytes(reply)
            self.server.metrics.count_request(ROUTE, 200, "ok")
            prev_total_ms = (time.monotonic_ns() - started) / 1e6

    async def _answer(
        self, message: dict[str, Any], request_id: str, started: int, prev_total_ms: float | None
    ) -> bytes:
        server = self.server
        data = message.get("bytes")
        if data is None:
            raise BadRequest("openpi frames are binary msgpack; got a text frame", slug=BAD_FRAME)
        if len(data) > server.config.max_body_bytes:
            raise PayloadTooLarge(
                f"frame of {len(data)} bytes exceeds --max-body-bytes "
                f"{server.config.max_body_bytes}"
            )
        raw = unpackb(data)
        if not isinstance(raw, dict):
            raise CodecError(f"an observation is a map, got {type(raw).__name__}")
        if not server.ready:
            raise Unavailable(
                f"the server is {server.state}; retry shortly", slug="not-ready", retry_after_s=1.0
            )
        observation = to_observation(raw, self.key_map)
        server.policies["default"].validate(observation)
        request = ActRequest(observation=observation, request_id=request_id, received_ns=started)
        infer_started = time.perf_counter()
        result, _ = await server.submit(request)
        timing: dict[str, float] = {"infer_ms": (time.perf_counter() - infer_started) * 1e3}
        if prev_total_ms is not None:
            timing["prev_total_ms"] = prev_total_ms
        metadata = dict(result.metadata)
        metadata["request_id"] = request_id
        if server.embodiment is not None:
            metadata["embodiment"] = server.embodiment.name
        return packb(
            {
                "actions": np.asarray(result.actions, dtype=np.float32),
                "server_timing": timing,
                "reflex": _plain(metadata),
            }
        )

    async def _fail(self, exc: Exception, request_id: str) -> None:
        if isinstance(exc, ReflexError):
            log.info("openpi frame %s refused: %s", request_id, exc)
            frame = error_frame(exc, request_id)
            status, slug = exc.status, exc.slug
        else:
            log.exception("openpi frame %s failed", request_id)
            frame = error_frame(exc, request_id)  # internal-error, no detail
            status, slug = 500, "internal-error"
        self.server.metrics.count_request(ROUTE, status, slug)
        try:
            await self.websocket.send_text(json.dumps(frame))
            await self.websocket.close(code=INTERNAL_ERROR_CLOSE, reason=slug[:120])
        except Exception:  # the client may already be gone
            log.debug("could not report the error to the openpi client", exc_info=True)


def openpi_routes(server: ReflexServer) -> list[BaseRoute]:
    """``/`` (WebSocket, openpi protocol) and ``GET /healthz``, bound to ``server``."""
    options = server.transport_options("openpi")
    key_map = effective_key_map(options.get("openpi_key_map"))

    async def endpoint(websocket: WebSocket) -> None:
        await OpenpiSession(server, websocket, key_map).run()

    async def healthz(request: Request) -> Response:
        # openpi clients poll this until the policy is up; ours loads after the port opens
        if server.ready:
            return PlainTextResponse("OK\n")
        return PlainTextResponse(f"{server.state}\n", status_code=503)

    return [
        WebSocketRoute(ROUTE, endpoint, name="openpi"),
        Route("/healthz", healthz, methods=["GET"], name="openpi-healthz"),
    ]
