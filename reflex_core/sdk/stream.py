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

import collections
import concurrent.futures
import json
import time
from collections.abc import Mapping
from typing import Any

import httpx
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

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

# Failures that mean "the server is not there (yet)": worth another try within the budget.
_RETRYABLE = (OSError, WebSocketException, httpx.TransportError)


class ActionStream:
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
        self.transport: str | None = None  # "ws" or "http" once connected
        self.connect_timeout_s = connect_timeout_s
        self.backoff = reconnect or Backoff()
        self.wait_ready = wait_ready
        self.request_timeout_s = request_timeout_s
        self.reconnects = 0
        self._headers = auth_headers(api_key)
        self._ws: ClientConnection | None = None
        self._http: httpx.Client | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending = PendingTable()
        self._http_pending: collections.deque[
            tuple[PendingObservation, concurrent.futures.Future[Any]]
        ] = collections.deque()
        self._closed = False

    # ------------------------------------------------------------------------ properties

    @property
    def session_id(self) -> str:
        return self.encoder.session_id

    @property
    def embodiment(self) -> Any:
        return self.encoder.embodiment

    @property
    def pending(self) -> int:
        """Observations sent and not answered yet."""
        return len(self._http_pending) if self.transport == "http" else len(self._pending)

    # ------------------------------------------------------------------------ lifecycle

    def connect(self) -> ActionStream:
        """Open the connection (waiting for the server to be ready, within
        ``connect_timeout_s``). Called by ``with`` and by the first send."""
        if self._closed:
            raise ReflexError("this stream is closed", slug="stream-closed", status=400)
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
        error = not_ready_error(response.status_code, json_body(response))
        if error is not None:
            raise NotReady(error)

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
            time.sleep(delay)

    def _open_once(self, deadline: float) -> None:
        if self.requested_transport == "http" or self.transport == "http":
            self._use_http()
            return
        try:
            connection = ws_connect(
                self.endpoints.ws,
                additional_headers=self._headers,
                open_timeout=max(0.1, min(10.0, deadline - time.monotonic())),
                compression=None,  # small JSON frames: latency matters more than bytes
                max_size=MAX_FRAME_BYTES,
            )
            # The stream owns the connection's lifetime (close()); entering it is what
            # websockets >= 17.1 wants from code that does not use a `with` block.
            self._ws = connection.__enter__()
        except InvalidStatus as exc:
            if self.requested_transport == "auto" and not refused_by_reflex(exc):
                # The server (or a proxy in front of it) does not upgrade: use HTTP /act.
                self._use_http()
                return
            raise
        self.transport = "ws"

    def _use_http(self) -> None:
        if self._http is None:
            self._http = httpx.Client(
                headers=self._headers,
                timeout=httpx.Timeout(self.request_timeout_s, connect=10.0),
            )
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="reflex-sdk-http"
            )
        self.transport = "http"

    def _reconnect(self, cause: BaseException) -> None:
        """Re-open a dropped WebSocket and send every unanswered observation again."""
        if self._closed:
            raise TransportError("the stream was closed", details={"url": self.endpoints.base})
        deadline = time.monotonic() + self.backoff.budget_s
        while True:
            if self._ws is not None:
                self._ws.close()
                self._ws = None
            try:
                self._open(deadline)
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
                assert self._executor is not None
                for item in self._pending.values():
                    item.sent_ns = time.monotonic_ns()
                    self._http_pending.append((item, self._executor.submit(self._post, item)))
                self._pending.clear()
                return
            try:
                for item in self._pending.values():
                    self._send_ws(item)
                return
            except ConnectionClosed as exc:  # dropped again while resending
                cause = exc
                if time.monotonic() >= deadline:
                    raise TransportError(
                        f"the connection to {self.endpoints.base} keeps dropping: {exc}"
                    ) from exc

    # ------------------------------------------------------------------------ requests

    def send_observation(
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
        """Send one observation; returns its ``seq`` (filled in when omitted).

        :param state: proprioception (a sequence or 1-D array), checked against the embodiment.
        :param images: camera name -> uint8 array (H, W, 3) (JPEG-encoded here), encoded
            JPEG/PNG bytes, or a base64 string.
        :param prompt: overrides the session prompt for this observation.
        :param capture_time_ns: wall-clock capture time (default: now); the chunk's timings
            are keyed to it.
        """
        self.connect()
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
            assert self._executor is not None
            item.sent_ns = time.monotonic_ns()
            self._http_pending.append((item, self._executor.submit(self._post, item)))
            return item.seq
        self._pending.add(item)
        try:
            self._send_ws(item)
        except ConnectionClosed as exc:
            self._reconnect(exc)  # resends it with the others
        return item.seq

    def _send_ws(self, item: PendingObservation) -> None:
        assert self._ws is not None
        item.sent_ns = time.monotonic_ns()
        self._ws.send(json.dumps(item.payload))

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
            time.sleep(delay)

    def recv_action(self, timeout: float | None = None) -> dict[str, Any]:
        """The chunk for the oldest unanswered observation (chunks come back in order).

        :param timeout: seconds to wait; None waits as long as it takes.
        :return: ``{"type", "seq", "actions" ((T, D) float32 array), "metadata", "timings"}``;
            ``timings`` holds the server's timings plus ``capture_time_ns``, ``latency_ms``
            (capture to arrival) and ``round_trip_ms``.
        :raises RequestTimeout: nothing arrived in time (the observation stays pending).
        :raises ReflexError: the server's error for that observation, typed (see
            :mod:`reflex_core.sdk.errors`), or :class:`TransportError`.
        """
        if self.transport is None or self.pending == 0:
            raise ReflexError(
                "no observation is waiting for a chunk: call send_observation first",
                slug="nothing-pending",
                status=400,
            )
        if self.transport == "http":
            return self._recv_http(timeout)
        return self._recv_ws(timeout)

    def _recv_http(self, timeout: float | None) -> dict[str, Any]:
        item, future = self._http_pending[0]
        try:
            payload = future.result(timeout)
        except concurrent.futures.TimeoutError:
            raise RequestTimeout(f"no action chunk for seq {item.seq} within {timeout} s") from None
        except concurrent.futures.CancelledError as exc:
            raise TransportError("the stream was closed") from exc
        finally:
            if future.done():
                self._http_pending.popleft()
        return chunk_from_payload(payload, item)

    def _recv_ws(self, timeout: float | None) -> dict[str, Any]:
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                oldest = self._pending.oldest_seq()
                raise RequestTimeout(f"no action chunk for seq {oldest} within {timeout} s")
            if self._ws is None:
                raise TransportError("the stream was closed", details={"url": self.endpoints.base})
            try:
                text = self._ws.recv(timeout=remaining)
            except TimeoutError:
                continue  # the deadline check above raises
            except ConnectionClosed as exc:
                self._reconnect(exc)
                if self.transport == "http":
                    left = None if deadline is None else max(0.0, deadline - time.monotonic())
                    return self._recv_http(left)
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
