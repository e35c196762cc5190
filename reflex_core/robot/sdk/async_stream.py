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

from reflex_core.robot.sdk.sansio import (
    ObservationFields,
    PendingObservation,
    Plan,
    StreamCore,
    chunk_from_payload,
    json_body,
    resume,
)


class AsyncActionStream(StreamCore):
    """A session with a Reflex server, for asyncio code. Parameters as
    :class:`~reflex_core.robot.sdk.stream.ActionStream`."""

    _ws: ClientConnection | None
    _http: httpx.AsyncClient | None = None

    # ------------------------------------------------------------------------ lifecycle

    async def connect(self) -> AsyncActionStream:
        self._check_not_closed()
        if self.transport is None:
            await self._run(self._open_plan(time.monotonic() + self.connect_timeout_s))
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

    async def _run(self, plan: Plan) -> Any:
        """Run a plan of :class:`StreamCore` (connect, reconnect, retry), awaiting its I/O."""
        outcome: Any = None
        failure: BaseException | None = None
        while True:
            step, value = resume(plan, outcome, failure)
            if step is None:
                return value
            name, args = step
            try:
                outcome, failure = await getattr(self, name)(*args), None
            except BaseException as exc:  # thrown into the plan, which decides
                outcome, failure = None, exc

    async def _health(self) -> None:
        async with httpx.AsyncClient(headers=self._headers, timeout=5.0) as client:
            response = await client.get(self.endpoints.health)
        self._check_health(response.status_code, json_body(response))

    async def _sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)

    async def _ws_connect(self, deadline: float) -> ClientConnection:
        return await ws_connect(self.endpoints.ws, **self._ws_connect_options(deadline))

    def _use_http(self) -> None:
        if self._http is None:
            self._http = httpx.AsyncClient(**self._http_client_options())
        self.transport = "http"

    async def _close_ws(self) -> None:
        assert self._ws is not None
        await self._ws.close()
        self._ws = None

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
        if wait_s := self.back_off_s:
            await asyncio.sleep(wait_s)
        item = self.encoder.encode(state, images, prompt, **fields)
        if self.transport == "http":
            self._send_over_http(item)
            return item.seq
        await self._run(self._send_ws_plan(item))
        return item.seq

    async def _send_ws(self, item: PendingObservation) -> None:
        assert self._ws is not None
        await self._ws.send(self._ws_frame(item))

    def _submit_http(self, item: PendingObservation) -> None:
        task = asyncio.get_running_loop().create_task(self._post(item))
        self._http_pending.append((item, task))

    async def _post(self, item: PendingObservation) -> Any:
        """The HTTP transport's request, as a task (see ``StreamCore._post_plan``)."""
        return await self._run(self._post_plan(item))

    async def _http_post(self, payload: Any) -> httpx.Response:
        assert self._http is not None
        return await self._http.post(self.endpoints.act, json=payload)

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
        chunk: dict[str, Any] = await self._run(self._recv_ws_plan(timeout))
        return chunk

    async def _ws_recv(self, timeout: float | None) -> str | bytes:
        assert self._ws is not None
        return await asyncio.wait_for(self._ws.recv(), timeout)

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
