"""What the sync and asyncio streams share: endpoints, reconnect backoff, observation encoding,
chunk decoding, and :class:`StreamCore`, the stream minus its I/O. No I/O happens here.

The connect, reconnect and retry loops are written once, as *plans*: generators that yield
each I/O step they need as ``(method name, arguments)`` and are sent its result back (or have
its exception thrown in, where they catch it as a loop would). A stream runs a plan with
:func:`resume` and its own I/O methods: blocking in ``ActionStream._run``, awaited in
``AsyncActionStream._run``.
"""

from __future__ import annotations

import base64
import collections
import json
import time
import uuid
from collections.abc import Generator, Iterator, Mapping
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import urlsplit, urlunsplit

import attrs
import httpx
import numpy as np
from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

from reflex_core.errors import ConfigError, ReflexError, ValidationError
from reflex_core.robot.sdk.errors import (
    RequestTimeout,
    ServerError,
    TransportError,
    error_from_payload,
)
from reflex_core.wire.images import encode_image_bytes
from reflex_core.wire.parse import parse_action_chunk

TRANSPORTS = ("auto", "ws", "http")
MAX_FRAME_BYTES = 64 * 1024 * 1024
# Failures that mean "the server is not there (yet)": worth another try within the budget.
RETRYABLE = (OSError, WebSocketException, httpx.TransportError)

#: One I/O step of a plan: the name of the stream's method and its arguments.
Step = tuple[str, tuple[Any, ...]]
#: A plan (see the module's docstring) that ends by returning a value of the last type.
Plan = Generator[Step, Any, Any]
_SUFFIXES = ("/ws", "/act", "/health")


@attrs.frozen
class Endpoints:
    """The server's URLs, derived from the one URL a user gives."""

    base: str
    ws: str
    act: str
    health: str


def endpoints_from_url(url: str) -> Endpoints:
    """``http://host:8000``, ``ws://host:8000/ws`` or ``https://proxy/reflex`` -> every route.

    A path prefix (a reverse proxy mounting the server under ``/reflex``) is kept; a trailing
    ``/ws``, ``/act`` or ``/health`` is taken as the route, not the prefix.
    """
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    http_scheme = {"http": "http", "ws": "http", "https": "https", "wss": "https"}.get(scheme)
    if http_scheme is None or not parts.netloc:
        raise ConfigError(
            f"server URL {url!r}: expected http(s)://host:port or ws(s)://host:port",
            slug="invalid-server-url",
            field="url",
        )
    path = parts.path.rstrip("/")
    for suffix in _SUFFIXES:
        if path.endswith(suffix):
            path = path[: -len(suffix)]
            break
    base = urlunsplit((http_scheme, parts.netloc, path, "", ""))
    ws_scheme = "wss" if http_scheme == "https" else "ws"
    return Endpoints(
        base=base,
        ws=urlunsplit((ws_scheme, parts.netloc, path + "/ws", "", "")),
        act=base + "/act",
        health=base + "/health",
    )


@attrs.frozen
class Backoff:
    """Exponential backoff between reconnect attempts, bounded by a total time budget.

    :ivar initial_s: the first delay; each next one doubles, up to ``max_s``.
    :ivar budget_s: give up once this much time has gone by since the connection was lost.
    """

    initial_s: float = 0.05
    max_s: float = 1.0
    budget_s: float = 10.0

    def delays(self) -> Iterator[float]:
        delay = self.initial_s
        while True:
            yield delay
            delay = min(self.max_s, delay * 2)


def resolve_embodiment(embodiment: Any) -> Any:
    """``None``, an ``EmbodimentConfig``, a preset name or a path to an embodiment JSON file."""
    if embodiment is None or not isinstance(embodiment, str | Path):
        return embodiment
    from reflex_core.embodiments import EmbodimentConfig

    text = str(embodiment)
    if text.endswith(".json") or Path(text).is_file():
        return EmbodimentConfig.from_file(text)
    return EmbodimentConfig.load_preset(text)


def auth_headers(api_key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {api_key}"} if api_key else {}


def _wire_image(name: str, image: Any, image_format: str, quality: int) -> str:
    """numpy/Pillow image -> base64 JPEG; encoded bytes -> base64; a string is taken as base64
    (or a data URL) already."""
    if isinstance(image, str):
        return image
    try:
        data = encode_image_bytes(image, image_format, quality=quality)
    except ReflexError as exc:
        raise ValidationError(
            f"images.{name}: {exc.message}", slug=exc.slug, field=f"images.{name}"
        ) from exc
    return base64.b64encode(data).decode("ascii")


@attrs.define
class PendingObservation:
    """An observation sent and not yet answered: what its chunk is matched and timed against."""

    seq: int
    payload: dict[str, Any]
    capture_time_ns: int
    sent_ns: int  # time.monotonic_ns() of the (last) send


class ObservationFields(TypedDict, total=False):
    """The optional per-observation fields of ``send_observation`` (keyword arguments).

    :ivar seq: the observation's number (default: the next one).
    :ivar capture_time_ns: wall-clock capture time (default: now); the chunk's timings are
        keyed to it.
    :ivar request_id: idempotency key (default: ``<session_id>-<seq>``).
    :ivar max_gpu_seconds: the most inference time this observation may use on the server.
    :ivar episode_id: overrides the session's episode id.
    """

    seq: int | None
    capture_time_ns: int | None
    request_id: str | None
    max_gpu_seconds: float | None
    episode_id: str | None


@attrs.define
class ObservationEncoder:
    """Builds wire observations: numbering, capture time, session prompt and episode, images,
    and the state-length check against the embodiment."""

    prompt: str | None = None
    embodiment: Any = None
    episode_id: str | None = None
    session_id: str = attrs.field(factory=lambda: f"session_{uuid.uuid4().hex[:12]}")
    image_format: str = "JPEG"
    image_quality: int = 90
    next_seq: int = 0

    def encode(
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
    ) -> PendingObservation:
        vector = np.asarray(state, dtype=np.float64)
        if vector.ndim != 1 or vector.size == 0:
            raise ValidationError(
                f"state must be a non-empty 1-D sequence of numbers, got shape {vector.shape}",
                slug="invalid-value",
                field="state",
            )
        if not np.isfinite(vector).all():
            raise ValidationError(
                "state holds NaN or Infinity", slug="non-finite-state", field="state"
            )
        if self.embodiment is not None and vector.size != self.embodiment.state_dim:
            raise ValidationError(
                f"state has {vector.size} values; embodiment {self.embodiment.name!r} expects "
                f"{self.embodiment.state_dim}",
                slug="state-length-mismatch",
                field="state",
                details={"expected": self.embodiment.state_dim, "got": int(vector.size)},
            )
        if seq is None:
            seq = self.next_seq
        self.next_seq = max(self.next_seq, seq + 1)
        if capture_time_ns is None:
            capture_time_ns = time.time_ns()
        payload: dict[str, Any] = {
            "state": vector.tolist(),
            "seq": seq,
            "capture_time_ns": int(capture_time_ns),
            # A stable idempotency key: a retry after a dropped connection gets the same chunk.
            "request_id": request_id or f"{self.session_id}-{seq}",
        }
        if images:
            payload["images"] = {
                name: _wire_image(name, image, self.image_format, self.image_quality)
                for name, image in images.items()
            }
        text = prompt if prompt is not None else self.prompt
        if text is not None:
            payload["prompt"] = text
        if max_gpu_seconds is not None:
            payload["max_gpu_seconds"] = float(max_gpu_seconds)
        episode = episode_id if episode_id is not None else self.episode_id
        if episode is not None:
            payload["episode_id"] = episode
        return PendingObservation(
            seq=seq, payload=payload, capture_time_ns=int(capture_time_ns), sent_ns=0
        )


def chunk_from_payload(payload: Any, pending: PendingObservation | None) -> dict[str, Any]:
    """A server's action-chunk payload -> the dict ``recv_action`` returns.

    Keys: ``type``, ``seq``, ``actions`` ((T, D) float32 numpy array, robot units),
    ``metadata`` (the server's, untouched), and ``timings``: the server's timings plus
    ``capture_time_ns`` (the observation's), ``received_ns`` (wall clock when the chunk
    arrived), ``latency_ms`` (capture to arrival) and ``round_trip_ms`` (send to arrival).
    """
    if isinstance(payload, Mapping) and payload.get("type") == "error":
        raise typed_error_frame(payload)
    try:
        chunk = parse_action_chunk(payload)
    except ReflexError as exc:
        raise ServerError(
            f"the server's reply is not a valid action chunk: {exc.message}",
            slug=exc.slug,
            status=502,
        ) from exc
    received_ns = time.time_ns()
    timings = dict(chunk.metadata.get("timings") or {})
    if pending is not None:
        timings["capture_time_ns"] = pending.capture_time_ns
        timings["latency_ms"] = round((received_ns - pending.capture_time_ns) / 1e6, 3)
        timings["round_trip_ms"] = round((time.monotonic_ns() - pending.sent_ns) / 1e6, 3)
    timings["received_ns"] = received_ns
    return {
        "type": "action_chunk",
        "seq": chunk.seq if chunk.seq is not None else (pending.seq if pending else None),
        "actions": chunk.actions,
        "metadata": chunk.metadata,
        "timings": timings,
    }


def typed_error_frame(frame: Mapping[str, Any]) -> ReflexError:
    """A WebSocket error frame -> the typed error (its ``status`` field picks the class)."""
    status = frame.get("status")
    return error_from_payload(
        status if type(status) is int and 400 <= status <= 599 else 502, frame
    )


READY_STATES = ("ready", "degraded")


def not_ready_error(status_code: int, body: Any) -> ReflexError | None:
    """Read a ``GET /health`` answer: None when the server takes requests (ready or degraded,
    or a proxy that does not forward /health: the request itself will tell), else the
    ``Unavailable`` error describing its state (loading, warming, failed, stopping)."""
    if status_code != 503:
        return None
    state = body.get("status") if isinstance(body, Mapping) else None
    if state in READY_STATES:
        return None
    from reflex_core.errors import Unavailable

    return Unavailable(
        f"the server is {state or 'unavailable'}", slug="not-ready", retry_after_s=1.0
    )


class PendingTable:
    """Observations sent over a WebSocket and not answered yet, in sending order.

    The server answers frames in the order it read them, so a frame is matched by its ``seq``,
    and an answer for seq ``s`` means every observation sent before ``s`` that is still here
    was refused without a seq. The one such refusal is ``queue-full``: the server sends it
    for the frame it is reading, before the answers it owes. It names that frame's seq when
    it can read one (then it settles just that observation); otherwise it is counted as an
    *orphan*; orphans leave the table when a later answer passes them, or all at once when
    nothing else is left to answer.
    """

    def __init__(self) -> None:
        self._items: collections.OrderedDict[int, PendingObservation] = collections.OrderedDict()
        self.orphans = 0

    def __len__(self) -> int:
        """Observations still owed an answer (orphans excluded)."""
        return max(0, len(self._items) - self.orphans)

    def add(self, item: PendingObservation) -> None:
        self._items[item.seq] = item

    def values(self) -> list[PendingObservation]:
        return list(self._items.values())

    def oldest_seq(self) -> int | None:
        return next(iter(self._items), None)

    def forget_orphans(self) -> None:
        """After a reconnect everything still here is sent again and answered again."""
        self.orphans = 0

    def clear(self) -> None:
        self._items.clear()
        self.orphans = 0

    def take(self, frame: Mapping[str, Any]) -> PendingObservation | None | bool:
        """The observation a frame answers (removed from the table); ``True`` for a
        ``queue-full`` refusal of an unknown one; None for an answer to nothing pending (a
        duplicate after a resend), which the caller skips."""
        seq = frame.get("seq")
        if type(seq) is int:
            if seq not in self._items:
                return None
            if frame.get("error") == "queue-full":
                # Refused on arrival, ahead of the answers still owed for older frames: it
                # settles only itself.
                item = self._items.pop(seq)
                self._settle()
                return item
            passed = 0
            for older in list(self._items):
                if older == seq:
                    break
                del self._items[older]  # refused earlier with queue-full
                passed += 1
            self.orphans = max(0, self.orphans - passed)
            item = self._items.pop(seq)
            self._settle()
            return item
        if frame.get("error") == "queue-full":
            self.orphans += 1
            self._settle()
            return True
        if not self._items:
            return None
        _, item = self._items.popitem(last=False)  # an in-order error about an unparsed frame
        return item

    def _settle(self) -> None:
        if self.orphans and self.orphans >= len(self._items):
            self.clear()


class NotReady(Exception):
    """The server answered /health but is not taking requests yet (retried within budget)."""

    def __init__(self, error: ReflexError) -> None:
        super().__init__(str(error))
        self.error = error


def json_body(response: Any) -> Any:
    """An httpx response's JSON, or None."""
    try:
        return response.json()
    except ValueError:
        return None


def handshake_body(exc: Any) -> Any:
    """The JSON body of a refused WebSocket handshake (websockets ``InvalidStatus``), or None."""
    try:
        return json.loads(exc.response.body or b"")
    except ValueError:
        return None


def refused_by_reflex(exc: Any) -> bool:
    """Whether a refused WebSocket handshake is the Reflex server saying no (401, or its JSON
    error body) rather than "no WebSocket here" (a bare 403/404 from a router or a proxy)."""
    body = handshake_body(exc)
    return exc.response.status_code == 401 or (isinstance(body, dict) and "error" in body)


class StreamCore:
    """The transport-independent half of :class:`~reflex_core.robot.sdk.stream.ActionStream` and
    :class:`~reflex_core.robot.sdk.async_stream.AsyncActionStream` (sans-IO): configuration, the
    observations waiting for an answer, the retry schedule, and turning what the server sent
    (an HTTP response, a WebSocket frame, a refused handshake) into a chunk or a typed error.

    Each stream subclasses it and adds only its I/O, blocking or asyncio: connecting, sending,
    receiving, sleeping. Parameters: see ``ActionStream``.
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
        self._ws: Any = None
        self._pending = PendingTable()  # sent over the WebSocket, not answered yet
        # HTTP requests in flight, oldest first: (observation, the stream's future or task)
        self._http_pending: collections.deque[tuple[PendingObservation, Any]] = collections.deque()
        self._closed = False
        self._resume_at = 0.0  # time.monotonic() before which the server asked not to send

    # ------------------------------------------------------------------------ properties

    @property
    def session_id(self) -> str:
        return self.encoder.session_id

    @property
    def embodiment(self) -> Any:
        return self.encoder.embodiment

    @property
    def back_off_s(self) -> float:
        """Seconds until the server's last back-off hint runs out (0 when there is none): the
        ``metadata.fallback.retry_after_s`` of a chunk answered while the server was refusing
        work (overload). ``send_observation`` waits it out before sending; a control
        loop can wait before it captures the observation, so what it sends is fresh. (A 429/503
        error is raised to the caller with its ``retry_after_s``; the caller decides.)"""
        return max(0.0, self._resume_at - time.monotonic())

    @property
    def pending(self) -> int:
        """Observations sent and not answered yet."""
        return len(self._http_pending) if self.transport == "http" else len(self._pending)

    # ------------------------------------------------------------------------ what a stream adds

    def _submit_http(self, item: PendingObservation) -> None:
        """Start ``POST /act`` for ``item`` without waiting for it, and append ``(item, its
        future or task)`` to ``_http_pending``."""
        raise NotImplementedError

    def _use_http(self) -> None:
        """Switch to the HTTP transport (making its client on first use; no I/O)."""
        raise NotImplementedError

    # The I/O steps the plans below yield (blocking, or coroutines in the asyncio stream):
    # ``_health()`` (raises NotReady), ``_ws_connect(deadline)`` -> the open connection,
    # ``_close_ws()``,
    # ``_send_ws(item)``, ``_ws_recv(timeout)`` -> a frame (raises TimeoutError),
    # ``_recv_http(timeout)`` -> a chunk, ``_http_post(payload)`` -> the httpx response,
    # ``_sleep(seconds)``.

    # ------------------------------------------------------------------------ plans

    def _open_plan(self, deadline: float) -> Plan:
        """Connect (after ``/health`` says ready, unless ``wait_ready`` is off), retrying with
        backoff until ``deadline``; a handshake the server refused is its typed error."""
        delays = self.backoff.delays()
        while True:
            try:
                if self.wait_ready:
                    yield "_health", ()
                yield from self._open_once_plan(deadline)
                return
            except NotReady as exc:
                last: BaseException = exc.error
            except InvalidStatus as exc:
                raise self._handshake_error(exc) from None
            except RETRYABLE as exc:
                last = exc
            target = f"the server at {self.endpoints.base}"
            yield "_sleep", (self._retry_delay(delays, last, deadline, target),)

    def _open_once_plan(self, deadline: float) -> Plan:
        """One try: the WebSocket unless HTTP was asked for (or fallen back to); a handshake
        refused by something that is not Reflex falls back to HTTP ``/act`` under ``auto``."""
        if not self._http_only:
            try:
                self._ws = yield "_ws_connect", (deadline,)
                self.transport = "ws"
                return
            except InvalidStatus as exc:
                if not self._falls_back_to_http(exc):
                    raise
        self._use_http()

    def _reconnect_plan(self, cause: BaseException) -> Plan:
        """Re-open a dropped WebSocket within the backoff budget and send every unanswered
        observation again (over HTTP if it came back without WebSockets)."""
        if self._closed:
            raise self._closed_error()
        deadline = time.monotonic() + self.backoff.budget_s
        while True:
            if self._ws is not None:
                yield "_close_ws", ()
            try:
                yield from self._open_plan(deadline)
            except TransportError as exc:
                raise self._reconnect_failed(cause, exc) from exc
            try:
                for item in self._reopened():
                    yield "_send_ws", (item,)
                return
            except ConnectionClosed as exc:  # dropped again while resending
                cause = exc
                self._check_resend_deadline(deadline, exc)

    def _send_ws_plan(self, item: PendingObservation) -> Plan:
        """Send an observation over the WebSocket; a dropped connection is re-opened, which
        sends it again with the other unanswered ones."""
        self._pending.add(item)
        try:
            yield "_send_ws", (item,)
        except ConnectionClosed as exc:
            yield from self._reconnect_plan(exc)

    def _recv_ws_plan(self, timeout: float | None) -> Plan:
        """The chunk for the oldest observation sent over the WebSocket, within ``timeout``
        seconds (None: no limit), re-opening a dropped connection on the way; if it came back
        over HTTP, the chunk arrives that way."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = self._ws_wait_s(deadline, timeout)
            try:
                text = yield "_ws_recv", (remaining,)
            except TimeoutError:
                continue  # the deadline check above raises
            except ConnectionClosed as exc:
                yield from self._reconnect_plan(exc)
                if self.transport == "http":
                    return (yield "_recv_http", (time_left(deadline),))
                continue
            chunk = self._ws_answer(text)
            if chunk is not None:
                return chunk

    def _post_plan(self, item: PendingObservation) -> Plan:
        """The HTTP transport's ``POST /act`` -> the chunk payload. A connection error (the
        server restarting) is retried with backoff within the budget, after waiting for
        ``/health`` to say ready; the request_id makes a retry safe."""
        delays = self.backoff.delays()
        deadline: float | None = None
        while True:
            try:
                if deadline is not None and self.wait_ready:
                    yield "_health", ()
                response = yield "_http_post", (item.payload,)
            except NotReady as exc:
                last: BaseException = exc.error
            except httpx.TransportError as exc:
                last = exc
            else:
                if deadline is not None:
                    self.reconnects += 1
                return self._http_answer(response)
            if self._closed:
                raise self._closed_error() from last
            deadline = deadline or time.monotonic() + self.backoff.budget_s
            yield "_sleep", (self._retry_delay(delays, last, deadline, self.endpoints.act),)

    # ------------------------------------------------------------------------ sending

    def _send_over_http(self, item: PendingObservation) -> None:
        item.sent_ns = time.monotonic_ns()
        self._submit_http(item)

    def _ws_frame(self, item: PendingObservation) -> str:
        """The text frame that sends ``item`` over the WebSocket (stamps its send time)."""
        item.sent_ns = time.monotonic_ns()
        return json.dumps(item.payload)

    # ------------------------------------------------------------------------ state checks

    def _check_not_closed(self) -> None:
        if self._closed:
            raise ReflexError("this stream is closed", slug="stream-closed", status=400)

    def _check_something_pending(self) -> None:
        if self.transport is None or self.pending == 0:
            raise ReflexError(
                "no observation is waiting for a chunk: call send_observation first",
                slug="nothing-pending",
                status=400,
            )

    def _closed_error(self) -> TransportError:
        return TransportError("the stream was closed", details={"url": self.endpoints.base})

    # ------------------------------------------------------------------------ connecting

    @property
    def _http_only(self) -> bool:
        """Asked for HTTP, or fell back to it: no WebSocket is tried."""
        return self.requested_transport == "http" or self.transport == "http"

    def _ws_connect_options(self, deadline: float) -> dict[str, Any]:
        """Keyword arguments of websockets' ``connect`` for the WebSocket endpoint."""
        return {
            "additional_headers": self._headers,
            "open_timeout": max(0.1, min(10.0, deadline - time.monotonic())),
            "compression": None,  # small JSON frames: latency matters more than bytes
            "max_size": MAX_FRAME_BYTES,
        }

    def _http_client_options(self) -> dict[str, Any]:
        """Keyword arguments of the httpx client of the HTTP transport."""
        import httpx

        return {
            "headers": self._headers,
            "timeout": httpx.Timeout(self.request_timeout_s, connect=10.0),
        }

    def _falls_back_to_http(self, refused: Any) -> bool:
        """Whether a refused handshake (websockets ``InvalidStatus``) means "use HTTP /act": the
        server or a proxy in front of it does not upgrade, and ``auto`` allows HTTP."""
        return self.requested_transport == "auto" and not refused_by_reflex(refused)

    @staticmethod
    def _handshake_error(refused: Any) -> ReflexError:
        """The typed error of a handshake the Reflex server refused (401, 503 ...)."""
        return error_from_payload(refused.response.status_code, handshake_body(refused))

    @staticmethod
    def _check_health(status_code: int, body: Any) -> None:
        """Raise :class:`NotReady` unless a ``GET /health`` answer says requests are taken."""
        error = not_ready_error(status_code, body)
        if error is not None:
            raise NotReady(error)

    def _retry_delay(
        self, delays: Iterator[float], last: BaseException | None, deadline: float, target: str
    ) -> float:
        """How long to wait before the next attempt after ``last`` failed, or the final error
        once that wait would pass ``deadline``: ``last`` itself when the server said why (a
        ReflexError), else a :class:`TransportError` naming ``target``."""
        delay = next(delays)
        if time.monotonic() + delay > deadline:
            if isinstance(last, ReflexError):
                raise last
            raise TransportError(
                f"cannot reach {target}: {type(last).__name__}: {last}",
                details={"url": self.endpoints.base},
            ) from last
        return delay

    def _reconnect_failed(self, cause: BaseException, error: TransportError) -> TransportError:
        return TransportError(
            f"the connection to {self.endpoints.base} dropped ({cause}) and did not "
            f"come back within {self.backoff.budget_s} s: {error.message}",
            details={"url": self.endpoints.base},
        )

    def _reopened(self) -> list[PendingObservation]:
        """Bookkeeping once a dropped connection is open again; returns the observations to send
        again over the WebSocket. When it came back without WebSockets (``auto``), the
        unanswered ones go over HTTP instead and nothing is left to resend."""
        self.reconnects += 1
        self._pending.forget_orphans()
        if self.transport == "http":
            for item in self._pending.values():
                self._send_over_http(item)
            self._pending.clear()
            return []
        return self._pending.values()

    def _check_resend_deadline(self, deadline: float, dropped: BaseException) -> None:
        """The connection dropped again while resending: give up once the budget is spent."""
        if time.monotonic() >= deadline:
            raise TransportError(
                f"the connection to {self.endpoints.base} keeps dropping: {dropped}"
            ) from dropped

    # ------------------------------------------------------------------------ answers

    def _note_back_off(self, payload: Any) -> None:
        """Remember the back-off hint of a chunk (see :attr:`back_off_s`)."""
        metadata = payload.get("metadata") if isinstance(payload, Mapping) else None
        fallback = metadata.get("fallback") if isinstance(metadata, Mapping) else None
        hint = fallback.get("retry_after_s") if isinstance(fallback, Mapping) else None
        if isinstance(hint, int | float) and 0 < hint < float("inf"):
            self._resume_at = max(self._resume_at, time.monotonic() + float(hint))

    def _http_answer(self, response: Any) -> Any:
        """An httpx response of ``POST /act`` -> the chunk payload (its back-off hint noted),
        or its typed error."""
        if response.status_code == 200:
            payload = json_body(response)
            self._note_back_off(payload)
            return payload
        raise error_from_payload(
            response.status_code,
            json_body(response),
            retry_after_header=response.headers.get("retry-after"),
        )

    @staticmethod
    def _no_chunk(seq: int | None, timeout: float | None) -> RequestTimeout:
        return RequestTimeout(f"no action chunk for seq {seq} within {timeout} s")

    def _ws_wait_s(self, deadline: float | None, timeout: float | None) -> float | None:
        """How long the next WebSocket read may wait (None: no limit); raises
        :class:`RequestTimeout` once ``deadline`` has passed, and the closed error when the
        stream was closed meanwhile."""
        remaining = time_left(deadline)
        if remaining is not None and remaining <= 0:
            raise self._no_chunk(self._pending.oldest_seq(), timeout)
        if self._ws is None:
            raise self._closed_error()
        return remaining

    def _ws_answer(self, text: str | bytes) -> dict[str, Any] | None:
        """A WebSocket frame -> the chunk for the observation it answers (see
        :func:`chunk_from_payload`); None for an answer to an observation already answered
        (resent on reconnect), which the caller skips. Raises the frame's typed error."""
        try:
            frame = json.loads(text)
        except ValueError as exc:
            raise ServerError(f"the server sent a frame that is not JSON: {exc}") from exc
        if not isinstance(frame, dict):
            raise ServerError("the server sent a frame that is not a JSON object")
        item = self._pending.take(frame)
        if item is None:
            return None
        if frame.get("type") == "error":
            raise typed_error_frame(frame)
        self._note_back_off(frame)
        if item is True:
            raise ServerError(f"a seq-less frame that is not an error: {text[:200]!r}")
        return chunk_from_payload(frame, item)


def resume(plan: Plan, outcome: Any, failure: BaseException | None) -> tuple[Step | None, Any]:
    """Hand ``plan`` what its last step returned (``outcome``) or raised (``failure``):
    ``(its next step, None)``, or ``(None, what it returned)`` once it has finished."""
    try:
        step = plan.send(outcome) if failure is None else plan.throw(failure)
    except StopIteration as done:
        return None, done.value
    return step, None


def time_left(deadline: float | None) -> float | None:
    """Seconds until a ``time.monotonic()`` deadline (0 once passed); None: no deadline."""
    return None if deadline is None else max(0.0, deadline - time.monotonic())
