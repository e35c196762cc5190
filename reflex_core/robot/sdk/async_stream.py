"""``AsyncActionStream``: the asyncio flavour of :class:`~reflex_core.robot.sdk.stream.ActionStream`.

Same constructor, same semantics (transport choice, readiness wait, reconnect with backoff and
resend, typed errors); every I/O method is a coroutine::

    async with AsyncActionStream("http://127.0.0.1:8000", embodiment="franka") as stream:
        await stream.send_observation(state=joints, images={"front": frame})
        chunk = await stream.recv_action(timeout=1.0)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Any, Unpack

import httpx
from websockets.asyncio.client import ClientConnection
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from reflex_core.robot.sdk.errors import TransportError
from reflex_core.robot.sdk.sansio import (
    NotReady,
    ObservationFields,
    PendingObservation,
    StreamCore,
    chunk_from_payload,
    json_body,
    time_left,
)

_RETRYABLE = (OSError, WebSocketException, httpx.TransportError, asyncio.TimeoutError)


class AsyncActionStream(StreamCore):
    """A session with a Reflex server, for asyncio code. Parameters as
    :class:`~reflex_core.robot.sdk.stream.ActionStream`."""

    _ws: ClientConnection | None
    _http: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------------ lifecycle

    async def connect(self) -> AsyncActionStream:
        self._check_not_closed()
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
        self._check_health(response.status_code, json_body(response))

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
                raise self._handshake_error(exc) from None
            except _RETRYABLE as exc:
                last = exc
            target = f"the server at {self.endpoints.base}"
            await asyncio.sleep(self._retry_delay(delays, last, deadline, target))

    async def _open_once(self, deadline: float) -> None:
        if self._http_only:
            self._use_http()
            return
        try:
            self._ws = await ws_connect(self.endpoints.ws, **self._ws_connect_options(deadline))
        except InvalidStatus as exc:
            if self._falls_back_to_http(exc):
                self._use_http()
                return
            raise
        self.transport = "ws"

    def _use_http(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(**self._http_client_options())
        self.transport = "http"

    async def _reconnect(self, cause: BaseException) -> None:
        if self._closed:
            raise self._closed_error()
        deadline = time.monotonic() + self.backoff.budget_s
        while True:
            if self._ws is not None:
                await self._ws.close()
                self._ws = None
            try:
                await self._open(deadline)
            except TransportError as exc:
                raise self._reconnect_failed(cause, exc) from exc
            try:
                for item in self._reopened():
                    await self._send_ws(item)
                return
            except ConnectionClosed as exc:
                cause = exc
                self._check_resend_deadline(deadline, exc)

    # ------------------------------------------------------------------------ requests

    async def send_observation(
        self,
        state: Any,
        images: Mapping[str, Any] | None = None,
        prompt: str | None = None,
        **fields: Unpack[ObservationFields],
    ) -> int:
        """Send one observation; returns its ``seq``. See ``ActionStream.send_observation``."""
        await self.connect()
        item = self.encoder.encode(state, images, prompt, **fields)
        if self.transport == "http":
            self._send_over_http(item)
            return item.seq
        self._pending.add(item)
        try:
            await self._send_ws(item)
        except ConnectionClosed as exc:
            await self._reconnect(exc)
        return item.seq

    async def _send_ws(self, item: PendingObservation) -> None:
        assert self._ws is not None
        await self._ws.send(self._ws_frame(item))

    def _submit_http(self, item: PendingObservation) -> None:
        task = asyncio.get_running_loop().create_task(self._post(item))
        self._http_pending.append((item, task))

    async def _post(self, item: PendingObservation) -> Any:
        """The HTTP transport's request, as a task. A connection error (the server restarting)
        is retried with backoff within the budget, after waiting for /health to say ready; the
        request_id makes a retry safe."""
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
                return self._http_answer(response)
            if self._closed:
                raise self._closed_error() from last
            deadline = deadline or time.monotonic() + self.backoff.budget_s
            await asyncio.sleep(self._retry_delay(delays, last, deadline, self.endpoints.act))

    async def recv_action(self, timeout: float | None = None) -> dict[str, Any]:
        """The chunk for the oldest unanswered observation. See ``ActionStream.recv_action``."""
        self._check_something_pending()
        if self.transport == "http":
            return await self._recv_http(timeout)
        return await self._recv_ws(timeout)

    async def _recv_http(self, timeout: float | None) -> dict[str, Any]:
        item, task = self._http_pending[0]
        try:
            # shield: a timeout here must not cancel the request; a later recv still gets it
            payload = await asyncio.wait_for(asyncio.shield(task), timeout)
        except TimeoutError:
            raise self._no_chunk(item.seq, timeout) from None
        finally:
            if task.done():
                self._http_pending.popleft()
        return chunk_from_payload(payload, item)

    async def _recv_ws(self, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = self._ws_wait_s(deadline, timeout)
            assert self._ws is not None
            try:
                text = await asyncio.wait_for(self._ws.recv(), remaining)
            except TimeoutError:
                continue  # the deadline check above raises
            except ConnectionClosed as exc:
                await self._reconnect(exc)
                if self.transport == "http":
                    return await self._recv_http(time_left(deadline))
                continue
            chunk = self._ws_answer(text)
            if chunk is not None:
                return chunk

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
