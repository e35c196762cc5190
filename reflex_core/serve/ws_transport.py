"""``GET /ws``: a WebSocket session per connection (the built-in streaming transport).

Observations arrive as JSON text frames (or binary frames holding UTF-8 JSON); each gets an
``action_chunk`` frame back, in the order received. A bad frame gets an error frame
``{"type": "error", "error": slug, ...}`` (with its ``seq`` when it had one) and the socket stays
open.

A reader task moves frames into a bounded queue; one worker answers them in order. When the
client sends faster than the server answers and the queue is full, the reader either stops
reading (``--ws-when-full wait``: TCP back-pressure reaches the client) or answers the extra
frame with ``queue-full`` (``reject``). Memory per connection stays bounded either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState

from reflex_core.errors import ReflexError, Unavailable
from reflex_core.plugin.kit.websocket import close_websocket
from reflex_core.serve.errors import QUEUE_FULL, WS_IDLE, InternalError
from reflex_core.serve.middleware import new_request_id, request_id_of, request_id_var
from reflex_core.wire.parse import parse_json_body

if TYPE_CHECKING:
    from reflex_core.plugin.contracts import TransportHost

log = logging.getLogger("reflex.serve.ws")

_CLOSE = object()
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001


class WebSocketSession:
    """One connection: reader -> bounded queue -> in-order worker."""

    def __init__(
        self,
        server: TransportHost,
        websocket: WebSocket,
        queue_size: int,
        reject_when_full: bool,
        idle_timeout_s: float = 0.0,
    ) -> None:
        self.server = server
        self.websocket = websocket
        self.queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self.reject_when_full = reject_when_full
        self.request_id = request_id_of(websocket.scope) or new_request_id()
        self.closing = False
        self.frames = 0
        self.pending = 0  # frames queued, not yet taken by the worker
        self.answering = False  # the worker is answering a frame
        self.idle_timeout_s = idle_timeout_s
        self._send_lock = asyncio.Lock()
        self._reader: asyncio.Task[None] | None = None

    async def run(self) -> None:
        server = self.server
        # before the handshake is accepted: past --max-ws-sessions it is refused (503
        # too-many-sessions, answered by the error boundary)
        server.open_session(self)
        try:
            await self.websocket.accept()
        except BaseException:
            server.close_session(self)
            raise
        self._reader = asyncio.create_task(self._read())
        worker = asyncio.create_task(self._work())
        try:
            await asyncio.wait({self._reader, worker}, return_when=asyncio.FIRST_COMPLETED)
            if self.closing or worker.done():
                # the server is stopping: answer the frames already read, then say goodbye
                self._reader.cancel()
                try:
                    await worker
                except Exception as exc:  # the client left while we were draining
                    log.debug("session %s ended while draining: %r", self.request_id, exc)
                    return
                if self.websocket.application_state == WebSocketState.CONNECTED:
                    with contextlib.suppress(Exception):
                        await close_websocket(self.websocket, GOING_AWAY, "server shutting down")
            else:
                # the client went away: nobody is left to answer
                worker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await worker
                self._reader.result()
        finally:
            for task in (self._reader, worker):
                task.cancel()
            server.metrics.ws_queue_depth.dec(self.pending)
            server.close_session(self)

    def request_close(self) -> None:
        """Stop reading; the worker answers the frames already queued, then the socket closes."""
        self.closing = True
        if self._reader is not None:
            self._reader.cancel()
        if self.queue.empty():
            self.queue.put_nowait(_CLOSE)

    async def _read(self) -> None:
        receive = self.websocket.receive
        depth = self.server.metrics.ws_queue_depth
        idle_s = self.idle_timeout_s or None
        while True:
            try:
                message = await asyncio.wait_for(receive(), idle_s)
            except TimeoutError:
                if self.pending or self.answering:  # the client is waiting for us, not idle
                    continue
                log.info("session %s: no frame for %ss, closing", self.request_id, idle_s)
                with contextlib.suppress(Exception):
                    await close_websocket(self.websocket, NORMAL_CLOSURE, WS_IDLE)
                return
            if message["type"] == "websocket.disconnect":
                return
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            self.frames += 1
            item = (data, time.monotonic_ns(), time.time_ns(), self.frames)
            if self.queue.full() and self.reject_when_full:
                exc = Unavailable(
                    f"this session already holds {self.queue.maxsize} unanswered frames; "
                    "wait for answers before sending more",
                    slug=QUEUE_FULL,
                    retry_after_s=0.1,
                )
                await self._send_error(exc, f"{self.request_id}.{self.frames}", _peek_seq(data))
                continue
            await self.queue.put(item)
            self.pending += 1
            depth.inc()

    async def _work(self) -> None:
        depth = self.server.metrics.ws_queue_depth
        while True:
            if self.closing and self.queue.empty():
                return
            item = await self.queue.get()
            if item is _CLOSE:
                return
            self.pending -= 1
            depth.dec()
            self.answering = True
            try:
                await self._answer(*item)
            finally:
                self.answering = False

    async def _answer(
        self, data: str | bytes, received_ns: int, received_wall_ns: int, n: int
    ) -> None:
        server = self.server
        request_id = f"{self.request_id}.{n}"
        token = request_id_var.set(request_id)
        seq = None
        act_request = None
        try:
            try:
                server.check_frame_size(len(data))
                payload = parse_json_body(data)
                if isinstance(payload, dict):
                    candidate = payload.get("seq")
                    seq = candidate if type(candidate) is int else None
                act_request = server.prepare(
                    payload, request_id=request_id, received_ns=received_ns
                )
                result, replayed = await server.submit(act_request)
                text = server.encode_chunk(
                    act_request, result, received_wall_ns=received_wall_ns, replayed=replayed
                ).decode()
            except ReflexError as exc:
                if act_request is None:  # rejected before the chain, whose span covers the rest
                    server.trace_outside_chain(request_id, exc, received_wall_ns)
                await self._send_error(exc, request_id, seq)
                return
            except Exception:
                log.exception("frame %s failed", request_id)
                await self._send_error(InternalError(), request_id, seq)
                return
            async with self._send_lock:
                await self.websocket.send_text(text)
            server.metrics.count_request("/ws", 200, "ok")
        finally:
            request_id_var.reset(token)

    async def _send_error(self, exc: ReflexError, request_id: str, seq: int | None) -> None:
        text = self.server.encode_error(exc, request_id, seq=seq).decode()
        async with self._send_lock:
            await self.websocket.send_text(text)
        self.server.metrics.count_request("/ws", exc.status, exc.slug)


def _peek_seq(data: str | bytes) -> int | None:
    """The ``seq`` of a frame refused unparsed (queue full), so the client can match the error
    to its observation; only on that rare path is the frame decoded here."""
    try:
        seq = json.loads(data).get("seq")
    except (ValueError, AttributeError):
        return None
    return seq if isinstance(seq, int) and not isinstance(seq, bool) else None


def ws_routes(server: TransportHost) -> list[BaseRoute]:
    """The ``/ws`` route bound to ``server``."""
    options = server.transport_options("ws")
    queue_size = int(options.get("ws_queue_size") or 4)
    reject = options.get("ws_when_full") == "reject"
    idle_s = float(options.get("ws_idle_timeout_s") or 0.0)

    async def ws(websocket: WebSocket) -> None:
        await WebSocketSession(server, websocket, queue_size, reject, idle_s).run()

    return [WebSocketRoute("/ws", ws, name="ws")]
