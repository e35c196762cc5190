"""The openpi-compatible WebSocket endpoint at ``/`` (and ``GET /healthz``).

A session, in openpi's order: the server sends one metadata frame; then per binary frame in,
one binary frame out: ``{"actions": (T, D) float32, "server_timing": {"infer_ms",
"prev_total_ms"}, "reflex": <the chunk's metadata>}``.

The transport reaches the server only through :class:`reflex_core.plugin.TransportHost`:
the key-mapped observation is admitted (``host.admit``: the policy's validation) and run
through ``host.submit``, so every enabled wedge (guard, deadline, ...) and the idempotency window
apply exactly as for ``/act`` and ``/ws``; ``reflex`` is ``host.chunk_metadata``, the metadata
an ``/act`` chunk carries (the wedges' notes, the server's ``timings``: ``server_receive_ns``,
``total_ms``, the policy's own; ``request_id``; ``embodiment`` or ``raw_actions``).

On any error the server sends a TEXT frame (the Reflex error frame as JSON: slug and message,
never a traceback) and closes the connection with code 1011, as openpi's server does, keeping
the closing handshake so the text frame is read before the close; an openpi client raises it
as ``RuntimeError``.

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

from reflex_core.errors import BadRequest, ReflexError
from reflex_core.plugin import ActRequest
from reflex_core.plugin.kit.websocket import close_websocket
from reflex_core.serve.errors import dumps
from reflex_core.serve.middleware import open_route
from reflex_openpi.codec import BAD_FRAME, CodecError, packb, unpackb
from reflex_openpi.keymap import effective_key_map, to_observation

if TYPE_CHECKING:
    from reflex_core.plugin import TransportHost

log = logging.getLogger("reflex.openpi")

ROUTE = "/"
INTERNAL_ERROR_CLOSE = 1011
GOING_AWAY = 1001


def _plain(metadata: dict[str, Any]) -> Any:
    """Wedge metadata as plain msgpack-able values (no tuples, sets or numpy scalars)."""
    return json.loads(dumps(metadata))


class OpenpiSession:
    """One openpi client connection."""

    def __init__(self, host: TransportHost, websocket: WebSocket, key_map: dict[str, str]):
        self.host = host
        self.websocket = websocket
        self.key_map = key_map
        self.session_id = uuid.uuid4().hex
        self.frames = 0
        self._closing = asyncio.Event()

    def metadata(self) -> dict[str, Any]:
        """The first frame: what a client may want to know about the policy it talks to."""
        host = self.host
        policy = host.policies.get("default")
        info = dict(policy.info) if policy is not None else {}
        return {
            "server": "reflex",
            "protocol": "openpi-websocket",
            "ready": host.ready,
            "embodiment": host.embodiment.name if host.embodiment is not None else None,
            "model": info.get("family"),
            "model_version": info.get("model_version"),
            "chunk_size": info.get("chunk_size"),
            "action_dim": info.get("action_dim"),
            "state_dim": info.get("state_dim"),
            "cameras": info.get("cameras"),
            "key_map": self.key_map,
            "wedges": list(host.wedge_names),
        }

    def request_close(self) -> None:
        """The server is stopping: close the session (1001) rather than wait for the client."""
        self._closing.set()

    async def run(self) -> None:
        websocket = self.websocket
        # before the handshake: a server at its session limit refuses it (503), and a stopping
        # one asks this session to close (request_close)
        self.host.open_session(self)
        closing = asyncio.ensure_future(self._closing.wait())
        try:
            await websocket.accept()
            await websocket.send_bytes(packb(self.metadata()))
            await self._serve_frames(closing)
        finally:
            closing.cancel()
            self.host.close_session(self)

    async def _serve_frames(self, closing: asyncio.Future[Any]) -> None:
        websocket = self.websocket
        prev_total_ms: float | None = None
        while True:
            receiving = asyncio.ensure_future(websocket.receive())
            await asyncio.wait({receiving, closing}, return_when=asyncio.FIRST_COMPLETED)
            if not receiving.done():
                receiving.cancel()
                with contextlib.suppress(Exception):
                    await close_websocket(websocket, GOING_AWAY, "server shutting down")
                return
            try:
                message = receiving.result()
            except WebSocketDisconnect:
                return
            if message["type"] == "websocket.disconnect":
                return
            started = time.monotonic_ns()
            started_wall = time.time_ns()
            self.frames += 1
            request_id = f"{self.session_id}.{self.frames}"
            try:
                reply = await self._answer(
                    message.get("bytes"), request_id, started, started_wall, prev_total_ms
                )
            except Exception as exc:
                await self._fail(exc, request_id)
                return
            await websocket.send_bytes(reply)
            self.host.metrics.count_request(ROUTE, 200, "ok")
            prev_total_ms = (time.monotonic_ns() - started) / 1e6

    async def _answer(
        self,
        data: bytes | None,
        request_id: str,
        started: int,
        started_wall: int,
        prev_total_ms: float | None,
    ) -> bytes:
        host = self.host
        request: ActRequest | None = None
        try:
            if data is None:
                raise BadRequest(
                    "openpi frames are binary msgpack; got a text frame", slug=BAD_FRAME
                )
            host.check_frame_size(len(data))
            raw = unpackb(data)
            if not isinstance(raw, dict):
                raise CodecError(f"an observation is a map, got {type(raw).__name__}")
            host.check_ready()
            request = host.admit(
                to_observation(raw, self.key_map), request_id=request_id, received_ns=started
            )
        except ReflexError as exc:  # refused before the chain, whose span covers the rest
            host.trace_outside_chain(request_id, exc, started_wall)
            raise
        infer_started = time.perf_counter()
        result, replayed = await host.submit(request)
        timing: dict[str, float] = {"infer_ms": (time.perf_counter() - infer_started) * 1e3}
        if prev_total_ms is not None:
            timing["prev_total_ms"] = prev_total_ms
        metadata = host.chunk_metadata(
            request, result, received_wall_ns=started_wall, replayed=replayed
        )
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
            status, slug = exc.status, exc.slug
        else:
            log.exception("openpi frame %s failed", request_id)
            status, slug = 500, "internal-error"
        self.host.metrics.count_request(ROUTE, status, slug)
        try:
            # the server's one error frame (internal-error carries no detail), as text
            await self.websocket.send_text(self.host.encode_error(exc, request_id).decode())
            # then the closing handshake, so the client reads the text frame before the close
            await close_websocket(self.websocket, INTERNAL_ERROR_CLOSE, slug[:120])
        except Exception:  # the client may already be gone
            log.debug("could not report the error to the openpi client", exc_info=True)


def openpi_routes(host: TransportHost) -> list[BaseRoute]:
    """``/`` (WebSocket, openpi protocol) and ``GET /healthz``, bound to ``host``."""
    options = host.transport_options("openpi")
    key_map = effective_key_map(options.get("openpi_key_map"))

    async def endpoint(websocket: WebSocket) -> None:
        await OpenpiSession(host, websocket, key_map).run()

    async def healthz(request: Request) -> Response:
        # openpi clients poll this until the policy is up; ours loads after the port opens
        if host.ready:
            return PlainTextResponse("OK\n")
        return PlainTextResponse(f"{host.state}\n", status_code=503)

    return [
        WebSocketRoute(ROUTE, endpoint, name="openpi"),
        # open like /health: openpi clients poll it before they send any key
        open_route(Route("/healthz", healthz, methods=["GET"], name="openpi-healthz")),
    ]
