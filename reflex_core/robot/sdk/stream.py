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
from websockets.sync.client import ClientConnection
from websockets.sync.client import connect as ws_connect

from reflex_core.robot.sdk.sansio import (
    ObservationFields,
    PendingObservation,
    Plan,
    StreamCore,
    chunk_from_payload,
    json_body,
    resume,
)


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
            self._run(self._open_plan(time.monotonic() + self.connect_timeout_s))
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

    def _run(self, plan: Plan) -> Any:
        """Run a plan of :class:`StreamCore` (connect, reconnect, retry) with blocking I/O."""
        outcome: Any = None
        failure: BaseException | None = None
        while True:
            step, value = resume(plan, outcome, failure)
            if step is None:
                return value
            name, args = step
            try:
                outcome, failure = getattr(self, name)(*args), None
            except BaseException as exc:  # thrown into the plan, which decides
                outcome, failure = None, exc

    def _health(self) -> None:
        response = httpx.get(self.endpoints.health, headers=self._headers, timeout=5.0)
        self._check_health(response.status_code, json_body(response))

    def _sleep(self, seconds: float) -> None:
        time.sleep(seconds)

    def _ws_connect(self, deadline: float) -> ClientConnection:
        connection = ws_connect(self.endpoints.ws, **self._ws_connect_options(deadline))
        # The stream owns the connection's lifetime (close()); entering it is what
        # websockets >= 17.1 wants from code that does not use a `with` block.
        return connection.__enter__()

    def _use_http(self) -> None:
        if self._http is None:
            self._http = httpx.Client(**self._http_client_options())
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=1, thread_name_prefix="reflex-sdk-http"
            )
        self.transport = "http"

    def _close_ws(self) -> None:
        assert self._ws is not None
        self._ws.close()
        self._ws = None

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

        When the server's last chunk asked to back off (:attr:`back_off_s`: it is refusing work),
        this first waits that out.
        """
        self.connect()
        if wait_s := self.back_off_s:
            time.sleep(wait_s)
        item = self.encoder.encode(state, images, prompt, **fields)
        if self.transport == "http":
            self._send_over_http(item)
            return item.seq
        self._run(self._send_ws_plan(item))
        return item.seq

    def _send_ws(self, item: PendingObservation) -> None:
        assert self._ws is not None
        self._ws.send(self._ws_frame(item))

    def _submit_http(self, item: PendingObservation) -> None:
        assert self._executor is not None
        self._http_pending.append((item, self._executor.submit(self._post, item)))

    def _post(self, item: PendingObservation) -> Any:
        """The HTTP transport's request, in the worker thread (see ``StreamCore._post_plan``)."""
        return self._run(self._post_plan(item))

    def _http_post(self, payload: Any) -> httpx.Response:
        assert self._http is not None
        return self._http.post(self.endpoints.act, json=payload)

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
        chunk: dict[str, Any] = self._run(self._recv_ws_plan(timeout))
        return chunk

    def _ws_recv(self, timeout: float | None) -> str | bytes:
        assert self._ws is not None
        return self._ws.recv(timeout=timeout)

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
