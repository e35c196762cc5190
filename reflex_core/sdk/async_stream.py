"""``AsyncActionStream``: the asyncio flavour of :class:`~reflex_core.sdk.stream.ActionStream`.

Same constructor, same semantics (transport choice, readiness wait, reconnect with backoff and
resend, typed errors); every I/O method is a coroutine::

    async with AsyncActionStream("http://127.0.0.1:8000", embodiment="franka") as stream:
        await stream.send_observation(state=joints, images={"front": frame})
        chunk = await stream.recv_action(timeout=1.0)
"""

from __future__ import annotations

import asyncio
import collections
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from reflex_core.errors import ConfigError, ReflexError
from reflex_core.sdk.common import (
    MAX_FRAME_BYTES,
    TRANSPORTS,
    Backoff,
    NotReady,
    ObservationEncoder,
    PendingObservation,
    PendingTable,
    auth_headers,
    chunk_from_payload,
    endpoints_from_url,
    handshake_body,
    json_body,
    not_ready_error,
    refused_by_reflex,
    resolve_embodiment,
    typed_error_frame,
)
from reflex_core.sdk.errors import RequestTimeout, ServerError, TransportError, error_from_payload

_RETRYABLE = (OSError, WebSocketException, httpx.TransportError, asyncio.TimeoutError)


class AsyncActionStream:
    """A session with a Reflex server, for asyncio code. Parameters as
    :class:`~reflex_core.sdk.stream.ActionStream`."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        prompt: str | None = None,
        embodiment: Any = None,
        episode_id: str | None = None,
        transport: str = "auto",
        connect_timeout_s: float = 30.0,
        reconnect: Backoff | None = None,
        wait_ready: bool = True,
        request_timeout_s: float = 60.0,
        image_format: str = "JPEG",
        image_quality: int = 90,
    ) -> None:
        if transport not in TRANSPORTS:
            raise ConfigError(
                f"transport {transport!r}: choose from {', '.join(TRANSPORTS)}",
                slug="invalid-transport",
                field="transport",
            )
        self.endpoints = endpoints_from_url(url)
        self.encoder = ObservationEncoder(
            prompt=prompt,
            embodiment=resolve_embodiment(embodiment),
            episode_id=episode_id,
            image_format=image_format,
            image_quality=image_quality,
        )
        self.requested_transport = transport
        self.transport: str | None = None
        self.connect_timeout_s = connect_timeout_s
        self.backoff = reconnect or Backoff()
        self.wait_ready = wait_ready
        self.request_timeout_s = request_timeout_s
        self.reconnects = 0
        self._headers = auth_headers(api_key)
        self._ws: ClientConnection | None = None
        self._http: httpx.AsyncClient | None = None
        self._pending = PendingTable()
        self._http_pending: collections.deque[tuple[PendingObservation, asyncio.Task[Any]]] = (
            collections.deque()
        )
        self._closed = False

    @property
    def session_id(self) -> str:
        return self.encoder.session_id

    @property
    def embodiment(self) -> Any:
        return self.encoder.embodiment

    @property
    def pending(self) -> int:
        return len(self._http_pending) if self.transport == "http" else len(self._pending)

    # ------------------------------------------------------------------------ lifecycle

    async def connect(self) -> AsyncActionStream:
        if self._closed:
            raise ReflexError("this stream is closed", slug="stream-closed", status=400)
        if self.transport is None:
            await self._open(time.monotonic() + self.connect_timeout_s)
        return self

    async def close(self) -> None:
        self._closed = True
        if self._ws is not None:
            await self._ws.close()
            self._ws = None
        for _, task in self._http_pending:
            task.cancel()
        if self._http is not None:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncActionStream:
        return await self.connect()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _health(self) -> None:
        async with httpx.AsyncClient(headers=self._headers, timeout=5.0) as client:
            response = await client.get(self.endpoints.health)
        error = not_ready_error(response.status_code, json_body(response))
        if error is not None:
            raise NotReady(error)

    async def _open(self, deadline: float) -> None:
        delays = self.backoff.delays()
        last: BaseException | None = None
        while True:
            try:
                if self.wait_ready:
                    await self._health()
                await self._open_once(deadline)
                return
            except NotReady as exc:
                last = exc.error
            except InvalidStatus as exc:
                raise error_from_payload(exc.response.status_code, handshake_body(exc)) from None
            except _RETRYABLE as exc:
                last = exc
            delay = next(delays)
            if time.monotonic() + delay > deadline:
                if isinstance(last, ReflexError):
                    raise last
                raise TransportError(
                    f"cannot reach the server at {self.endpoints.base}: "
                    f"{type(last).__name__}: {last}",
                    details={"url": self.endpoints.base},
                ) from last
            await asyncio.sleep(delay)

    async def _open_once(self, deadline: float) -> None:
        if self.requested_transport == "http" or self.transport == "http":
            self._use_http()
            return
        try:
            self._ws = await ws_connect(
                self.endpoints.ws,
                additional_headers=self._headers,
                open_timeout=max(0.1, min(10.0, deadline - time.monotonic())),
                compression=None,
                max_size=MAX_FRAME_BYTES,
            )
        except InvalidStatus as exc:
            if self.requested_transport == "auto" and not refused_by_reflex(exc):
                # The server (or a proxy in front of it) does not upgrade: use HTTP /act.
                self._use_http()
                return
            raise
        self.transport = "ws"

    def _use_http(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(
                headers=self._headers,
                timeout=httpx.Timeout(self.request_timeout_s, connect=10.0),
            )
        self.transport = "http"

    async def _reconnect(self, cause: BaseException) -> None:
        if self._closed:
            raise TransportError("the stream was closed", details={"url": self.endpoints.base})
        deadline = time.monotonic() + self.backoff.budget_s
        while True:
            if self._ws is not None:
                await self._ws.close()
                self._ws = None
            try:
                await self._open(deadline)
            except TransportError as exc:
                raise TransportError(
                    f"the connection to {self.endpoints.base} dropped ({cause}) and did not "
                    f"come back within {self.backoff.budget_s} s: {exc.message}",
                    details={"url": self.endpoints.base},
                ) from exc
            self.reconnects += 1
            self._pending.forget_orphans()
            if self.transport == "http":
                # came back without WebSockets (auto): the unanswered go over HTTP instead
                for item in self._pending.values():
                    item.sent_ns = time.monotonic_ns()
                    task = asyncio.get_running_loop().create_task(self._post(item))
                    self._http_pending.append((item, task))
                self._pending.clear()
                return
            try:
                for item in self._pending.values():
                    await self._send_ws(item)
                return
            except ConnectionClosed as exc:
                cause = exc
                if time.monotonic() >= deadline:
                    raise TransportError(
                        f"the connection to {self.endpoints.base} keeps dropping: {exc}"
                    ) from exc

    # ------------------------------------------------------------------------ requests

    async def send_observation(
        self,
        state: Any,
        images: Mapping[str, Any] | None = None,
        prompt: str | None = None,
        *,
        seq: int | None = None,
        capture_time_ns: int | None = None,
        request_id: str | None = None,
        max_gpu_seconds: float | None = None,
        episode_id: str | None = None,
    ) -> int:
        """Send one observation; returns its ``seq``. See ``ActionStream.send_observation``."""
        await self.connect()
        item = self.encoder.encode(
            state,
            images,
            prompt,
            seq=seq,
            capture_time_ns=capture_time_ns,
            request_id=request_id,
            max_gpu_seconds=max_gpu_seconds,
            episode_id=episode_id,
        )
        if self.transport == "http":
            item.sent_ns = time.monotonic_ns()
            task = asyncio.get_running_loop().create_task(self._post(item))
            self._http_pending.append((item, task))
            return item.seq
        self._pending.add(item)
        try:
            await self._send_ws(item)
        except ConnectionClosed as exc:
            await self._reconnect(exc)
        return item.seq

    async def _send_ws(self, item: PendingObservation) -> None:
        assert self._ws is not None
        item.sent_ns = time.monotonic_ns()
        await self._ws.send(json.dumps(item.payload))

    async def _post(self, item: PendingObservation) -> Any:
        """The HTTP transport's request, in the worker thread. A connection error (the server
        restarting) is retried with backoff within the budget, after waiting for /health to
        say ready; the request_id makes a retry safe."""
        assert self._http is not None
        delays = self.backoff.delays()
        deadline: float | None = None
        last: BaseException | None = None
        while True:
            try:
                if deadline is not None and self.wait_ready:
                    await self._health()
                response = await self._http.post(self.endpoints.act, json=item.payload)
            except NotReady as exc:
                last = exc.error
            except httpx.TransportError as exc:
                last = exc
            else:
                if deadline is not None:
                    self.reconnects += 1
                if response.status_code == 200:
                    return json_body(response)
                raise error_from_payload(
                    response.status_code,
                    json_body(response),
                    retry_after_header=response.headers.get("retry-after"),
                )
            if self._closed:
                raise TransportError("the stream was closed") from last
            now = time.monotonic()
            deadline = deadline or now + self.backoff.budget_s
            delay = next(delays)
            if now + delay > deadline:
                if isinstance(last, ReflexError):
                    raise last
                raise TransportError(
                    f"cannot reach {self.endpoints.act}: {type(last).__name__}: {last}",
                    details={"url": self.endpoints.base},
                ) from last
            await asyncio.sleep(delay)

    async def recv_action(self, timeout: float | None = None) -> dict[str, Any]:
        """The chunk for the oldest unanswered observation. See ``ActionStream.recv_action``."""
        if self.transport is None or self.pending == 0:
            raise ReflexError(
                "no observation is waiting for a chunk: call send_observation first",
                slug="nothing-pending",
                status=400,
            )
        if self.transport == "http":
            return await self._recv_http(timeout)
        return await self._recv_ws(timeout)

    async def _recv_http(self, timeout: float | None) -> dict[str, Any]:
        item, task = self._http_pending[0]
        try:
            # shield: a timeout here must not cancel the request; a later recv still gets it
            payload = await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise RequestTimeout(f"no action chunk for seq {item.seq} within {timeout} s") from None
        finally:
            if task.done():
                self._http_pending.popleft()
        return chunk_from_payload(payload, item)

    async def _recv_ws(self, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                oldest = self._pending.oldest_seq()
                raise RequestTimeout(f"no action chunk for seq {oldest} within {timeout} s")
            if self._ws is None:
                raise TransportError("the stream was closed", details={"url": self.endpoints.base})
            try:
                text = await asyncio.wait_for(self._ws.recv(), remaining)
            except TimeoutError:
                continue
            except ConnectionClosed as exc:
                await self._reconnect(exc)
                if self.transport == "http":
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    return await self._recv_http(left)
                continue
            try:
                frame = json.loads(text)
            except ValueError as exc:
                raise ServerError(f"the server sent a frame that is not JSON: {exc}") from exc
            if not isinstance(frame, dict):
                raise ServerError("the server sent a frame that is not a JSON object")
            item = self._pending.take(frame)
            if item is None:
                continue  # an answer to an observation already answered (resent on reconnect)
            if frame.get("type") == "error":
                raise typed_error_frame(frame)
            if item is True:
                raise ServerError(f"a seq-less frame that is not an error: {text[:200]!r}")
            return chunk_from_payload(frame, item)

    async def act(
        self,
        state: Any,
        images: Mapping[str, Any] | None = None,
        prompt: str | None = None,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """``send_observation`` then ``recv_action``."""
        await self.send_observation(state, images, prompt, **fields)
        return await self.recv_action(timeout)
