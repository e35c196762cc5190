"""``ActionStream``: the blocking client a robot loop uses.

>>> with ActionStream("http://127.0.0.1:8000", embodiment="franka", prompt="pick") as stream:
...     seq = stream.send_observation(state=joints, images={"wrist": frame})
...     chunk = stream.recv_action(timeout=1.0)
...     for target in chunk["actions"]:
...         apply(target)

Transport: the WebSocket ``/ws`` (one persistent connection, answers in order); ``/act`` over
HTTP when the server or a proxy does not upgrade WebSockets (``transport="auto"``), or when
asked (``transport="http"``). Both speak the same observation and chunk shapes.

Reconnect: a dropped connection is re-opened with exponential backoff within
``reconnect.budget_s``; the observations still waiting for a chunk are sent again (each keeps its
``capture_time_ns``, so a late chunk shows its real age, and its ``request_id``, so the server's
idempotency window answers a retry once). Past the budget: :class:`TransportError`.

Not thread-safe: use one stream from one thread at a time (the control loop gives it a worker
thread of its own).
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Mapping
from typing import Any, Unpack

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

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

# Failures that mean "the server is not there (yet)": worth another try within the budget.
_RETRYABLE = (OSError, WebSocketException, httpx.TransportError)


class ActionStream(StreamCore):
    """A session with a Reflex server: observations out, action chunks back.

    :param url: the server, ``http://host:port`` (or ``ws://host:port/ws``).
    :param api_key: sent as ``Authorization: Bearer KEY``.
    :param prompt: the session's task prompt (an observation's ``prompt`` overrides it).
    :param embodiment: a preset name, a JSON path or an ``EmbodimentConfig``; when given, a
        state of the wrong length is refused before it leaves the robot.
    :param episode_id: sent with every observation (sticky routing, chunk continuity).
    :param transport: ``auto`` (WebSocket, HTTP if the server does not upgrade), ``ws``, ``http``.
    :param connect_timeout_s: how long :meth:`connect` keeps trying (server starting up).
    :param reconnect: backoff and time budget for re-opening a dropped connection.
    :param wait_ready: wait for ``/health`` to report ready before sending (after a restart the
        port opens before the model is loaded).
    :param request_timeout_s: HTTP transport: longest a single POST may take.
    """

    _ws: ClientConnection | None
    _http: httpx.Client | None = None
    _executor: concurrent.futures.ThreadPoolExecutor | None = None

    # ------------------------------------------------------------------------ lifecycle

    def connect(self) -> ActionStream:
        """Open the connection (waiting for the server to be ready, within
        ``connect_timeout_s``). Called by ``with`` and by the first send."""
        self._check_not_closed()
        if self.transport is None:
            self._open(time.monotonic() + self.connect_timeout_s)
        return self

    def close(self) -> None:
        """Close the connection; unanswered observations are abandoned."""
        self._closed = True
        if self._ws is not None:
            self._ws.close()
            self._ws = None
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        if self._http is not None:
            self._http.close()

    def __enter__(self) -> ActionStream:
        return self.connect()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _health(self) -> None:
        response = httpx.get(self.endpoints.health, headers=self._headers, timeout=5.0)
        self._check_health(response.status_code, json_body(response))

    def _open(self, deadline: float) -> None:
        """Connect, retrying with backoff until ``deadline``."""
        delays = self.backoff.delays()
        last: BaseException | None = None
        while True:
            try:
                if self.wait_ready:
                    self._health()
                self._open_once(deadline)
                return
            except NotReady as exc:
                last = exc.error
            except InvalidStatus as exc:
                raise self._handshake_error(exc) from None
            except _RETRYABLE as exc:
                last = exc
            target = f"the server at {self.endpoints.base}"
            time.sleep(self._retry_delay(delays, last, deadline, target))

    def _open_once(self, deadline: float) -> None:
        if self._http_only:
            self._use_http()
            return
        try:
            connection = ws_connect(self.endpoints.ws, **self._ws_connect_options(deadline))
            # The stream owns the connection's lifetime (close()); entering it is what
            # websockets >= 17.1 wants from code that does not use a `with` block.
            self._ws = connection.__enter__()
        except InvalidStatus as exc:
            if self._falls_back_to_http(exc):
                self._use_http()
                return
            raise
        self.transport = "ws"

    def _use_http(self) -> None:
        if self._http is None:
            self._http = httpx.Client(**self._http_client_options())
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="reflex-sdk-http"
            )
        self.transport = "http"

    def _reconnect(self, cause: BaseException) -> None:
        """Re-open a dropped WebSocket and send every unanswered observation again."""
        if self._closed:
            raise self._closed_error()
        deadline = time.monotonic() + self.backoff.budget_s
        while True:
            if self._ws is not None:
                self._ws.close()
                self._ws = None
            try:
                self._open(deadline)
            except TransportError as exc:
                raise self._reconnect_failed(cause, exc) from exc
            try:
                for item in self._reopened():
                    self._send_ws(item)
                return
            except ConnectionClosed as exc:  # dropped again while resending
                cause = exc
                self._check_resend_deadline(deadline, exc)

    # ------------------------------------------------------------------------ requests

    def send_observation(
        self,
        state: Any,
        images: Mapping[str, Any] | None = None,
        prompt: str | None = None,
        **fields: Unpack[ObservationFields],
    ) -> int:
        """Send one observation; returns its ``seq`` (filled in when omitted).

        :param state: proprioception (a sequence or 1-D array), checked against the embodiment.
        :param images: camera name -> uint8 array (H, W, 3) (JPEG-encoded here), encoded
            JPEG/PNG bytes, or a base64 string.
        :param prompt: overrides the session prompt for this observation.
        :param fields: ``seq``, ``capture_time_ns`` (wall-clock capture time, default now; the
            chunk's timings are keyed to it), ``request_id``, ``max_gpu_seconds``,
            ``episode_id`` (see :class:`~reflex_core.robot.sdk.sansio.ObservationFields`).
        """
        self.connect()
        item = self.encoder.encode(state, images, prompt, **fields)
        if self.transport == "http":
            self._send_over_http(item)
            return item.seq
        self._pending.add(item)
        try:
            self._send_ws(item)
        except ConnectionClosed as exc:
            self._reconnect(exc)  # resends it with the others
        return item.seq

    def _send_ws(self, item: PendingObservation) -> None:
        assert self._ws is not None
        self._ws.send(self._ws_frame(item))

    def _submit_http(self, item: PendingObservation) -> None:
        assert self._executor is not None
        self._http_pending.append((item, self._executor.submit(self._post, item)))

    def _post(self, item: PendingObservation) -> Any:
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
                    self._health()
                response = self._http.post(self.endpoints.act, json=item.payload)
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
            time.sleep(self._retry_delay(delays, last, deadline, self.endpoints.act))

    def recv_action(self, timeout: float | None = None) -> dict[str, Any]:
        """The chunk for the oldest unanswered observation (chunks come back in order).

        :param timeout: seconds to wait; None waits as long as it takes.
        :return: ``{"type", "seq", "actions" ((T, D) float32 array), "metadata", "timings"}``;
            ``timings`` holds the server's timings plus ``capture_time_ns``, ``latency_ms``
            (capture to arrival) and ``round_trip_ms``.
        :raises RequestTimeout: nothing arrived in time (the observation stays pending).
        :raises ReflexError: the server's error for that observation, typed (see
            :mod:`reflex_core.robot.sdk.errors`), or :class:`TransportError`.
        """
        self._check_something_pending()
        if self.transport == "http":
            return self._recv_http(timeout)
        return self._recv_ws(timeout)

    def _recv_http(self, timeout: float | None) -> dict[str, Any]:
        item, future = self._http_pending[0]
        try:
            payload = future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise self._no_chunk(item.seq, timeout) from None
        except concurrent.futures.CancelledError as exc:
            raise self._closed_error() from exc
        finally:
            if future.done():
                self._http_pending.popleft()
        return chunk_from_payload(payload, item)

    def _recv_ws(self, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = self._ws_wait_s(deadline, timeout)
            assert self._ws is not None
            try:
                text = self._ws.recv(timeout=remaining)
            except TimeoutError:
                continue  # the deadline check above raises
            except ConnectionClosed as exc:
                self._reconnect(exc)
                if self.transport == "http":
                    return self._recv_http(time_left(deadline))
                continue
            chunk = self._ws_answer(text)
            if chunk is not None:
                return chunk

    def act(
        self,
        state: Any,
        images: Mapping[str, Any] | None = None,
        prompt: str | None = None,
        *,
        timeout: float | None = None,
        **fields: Any,
    ) -> dict[str, Any]:
        """:meth:`send_observation` then :meth:`recv_action` (one request, one chunk)."""
        self.send_observation(state, images, prompt, **fields)
        return self.recv_action(timeout)
