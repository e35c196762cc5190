"""The chunk execution loop: one action per control tick, inference overlapping execution.

Per tick ``k`` (at ``start + k / frequency_hz``):

1. if the request in flight has finished, its chunk joins the :class:`ActionQueue`: actions for
   ticks that already went by are dropped as stale (the latency is measured in ticks, capture to
   arrival), the overlap with the old chunk is merged (``merge``), the rest appended;
2. if no request is in flight and ``execution_horizon`` ticks have passed since the last one
   (or the queue ran dry), the robot is observed and a request starts in the background: the
   robot keeps executing the current chunk meanwhile;
3. the action for tick ``k`` is applied (``robot.act``); without one (waiting for the first
   chunk, or inference slower than a chunk lasts) the robot is not commanded and the tick
   counts as starved.

A failure (the server's error, a dropped connection, an exception in ``observe``/``act``, Ctrl-C)
stops the loop, calls the robot's ``safe_stop(reason, message)`` once if it has one, and is
raised. Reasons: ``transport_error``, ``server_error``, ``robot_error``, ``signal``.
"""

from __future__ import annotations

import collections
import concurrent.futures
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import attrs
import numpy as np

from reflex_core.errors import ConfigError, ReflexError
from reflex_core.robot.control.action_queue import ActionQueue
from reflex_core.robot.control.clock import Clock, MonotonicClock
from reflex_core.robot.control.merge import DEFAULT_MERGE, MergeFunction, merge_function

PROMPT_ALIASES = ("prompt", "task", "instruction")


class Robot(Protocol):
    """What the loop drives: ``observe()`` returns an observation dict (``state``, ``images``,
    optionally ``prompt``), ``act(action)`` applies one action (a (D,) float32 array).
    An optional ``safe_stop(reason, message)`` is called once when the loop fails."""

    def observe(self) -> Mapping[str, Any]: ...

    def act(self, action: np.ndarray) -> None: ...


class ChunkSource(Protocol):
    """Where chunks come from: ``submit`` starts one request in the background and returns a
    future of the chunk dict (``actions`` (T, D), ``metadata``, ``timings``)."""

    def submit(self, observation: Mapping[str, Any]) -> concurrent.futures.Future[Any]: ...

    def close(self) -> None: ...


def stream_fields(observation: Mapping[str, Any]) -> dict[str, Any]:
    """An observation dict -> ``send_observation`` keyword arguments (``task`` and
    ``instruction`` are aliases of ``prompt``)."""
    fields = dict(observation)
    for alias in PROMPT_ALIASES[1:]:
        if alias in fields:
            text = fields.pop(alias)
            if fields.get("prompt") is None:
                fields["prompt"] = text
    return fields


class StreamChunkSource:
    """Requests over an :class:`~reflex_core.robot.sdk.ActionStream`, one at a time, in a worker
    thread of their own (the stream is only ever used from that thread)."""

    def __init__(self, stream: Any, *, timeout_s: float | None = 10.0) -> None:
        self.stream = stream
        self.timeout_s = timeout_s
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="reflex-control-request"
        )

    def _request(self, observation: Mapping[str, Any]) -> Any:
        self.stream.send_observation(**stream_fields(observation))
        return self.stream.recv_action(timeout=self.timeout_s)

    def submit(self, observation: Mapping[str, Any]) -> concurrent.futures.Future[Any]:
        return self._executor.submit(self._request, observation)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def percentile(values: list[float], q: float) -> float | None:
    return float(np.percentile(values, q)) if values else None


@attrs.define
class LoopReport:
    """What a run did. ``latency_ms``: per chunk, observation capture to chunk arrival;
    ``latency_ticks``: the same in control ticks (what decides how many actions are stale);
    ``step_ms``: the loop's own work per tick (observe, merge, act)."""

    frequency_hz: float
    steps: int = 0
    actions_executed: int = 0
    starved_ticks: int = 0
    late_ticks: int = 0
    requests_sent: int = 0
    chunks_received: int = 0
    actions_stale_dropped: int = 0
    actions_merged: int = 0
    latency_ms: list[float] = attrs.field(factory=list)
    latency_ticks: list[int] = attrs.field(factory=list)
    step_ms: list[float] = attrs.field(factory=list)
    guard_verdicts: collections.Counter[str] = attrs.field(factory=collections.Counter)
    fallbacks: int = 0
    stop_reason: str | None = None
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        """A JSON-able digest with p50/p99 latencies."""

        def stats(values: list[float]) -> dict[str, float | None]:
            return {"p50": percentile(values, 50), "p99": percentile(values, 99)}

        return {
            "frequency_hz": self.frequency_hz,
            "steps": self.steps,
            "actions_executed": self.actions_executed,
            "starved_ticks": self.starved_ticks,
            "late_ticks": self.late_ticks,
            "requests_sent": self.requests_sent,
            "chunks_received": self.chunks_received,
            "actions_stale_dropped": self.actions_stale_dropped,
            "actions_merged": self.actions_merged,
            "latency_ms": stats(self.latency_ms),
            "step_ms": stats(self.step_ms),
            "guard_verdicts": dict(self.guard_verdicts),
            "fallbacks": self.fallbacks,
            "stop_reason": self.stop_reason,
            "error": self.error,
        }


def failure_reason(exc: BaseException) -> str:
    """The safe-stop reason for an exception (the vocabulary ``reflex connect`` uses too)."""
    from reflex_core.robot.sdk.errors import TransportError

    if isinstance(exc, KeyboardInterrupt):
        return "signal"
    if isinstance(exc, TransportError):
        return "transport_error"
    if isinstance(exc, ReflexError):
        return "server_error"
    return "robot_error"


@attrs.define
class _InFlight:
    future: concurrent.futures.Future[Any]
    capture_tick: int
    capture_time: float  # clock seconds


class ControlLoop:
    """Runs a robot at ``frequency_hz`` from chunks a :class:`ChunkSource` computes.

    :param execution_horizon: ticks between requests (the embodiment's
        ``control.rtc_execution_horizon``): the next chunk is requested that many actions into
        the current one, while it keeps executing.
    :param merge: how overlapping actions of the old and new chunk combine (see
        :mod:`reflex_core.robot.control.merge`).
    :param drop_stale: drop the actions for ticks that passed while the chunk was computed
        (on by default; off replays them late, which only makes sense for a tethered test).
    :param clock: :class:`MonotonicClock` by default; a :class:`FakeClock` in tests.
    :param on_chunk: ``chunk -> None``, called for every chunk received (progress, logging).
    :param on_step: ``(tick, report) -> None``, called after every tick.
    """

    def __init__(
        self,
        robot: Robot,
        source: ChunkSource,
        *,
        frequency_hz: float,
        execution_horizon: int,
        merge: str | MergeFunction = DEFAULT_MERGE,
        drop_stale: bool = True,
        clock: Clock | None = None,
        on_chunk: Callable[[Mapping[str, Any]], None] | None = None,
        on_step: Callable[[int, LoopReport], None] | None = None,
    ) -> None:
        if not frequency_hz > 0:
            raise ConfigError(
                f"frequency_hz must be > 0, got {frequency_hz}", slug="invalid-control-rate"
            )
        if execution_horizon < 1:
            raise ConfigError(
                f"execution_horizon must be >= 1, got {execution_horizon}",
                slug="invalid-execution-horizon",
            )
        self.robot = robot
        self.source = source
        self.frequency_hz = float(frequency_hz)
        self.execution_horizon = int(execution_horizon)
        self.merge = merge_function(merge)
        self.drop_stale = drop_stale
        self.clock: Clock = clock or MonotonicClock()
        self.on_chunk = on_chunk
        self.on_step = on_step
        self.queue = ActionQueue()
        self.report = LoopReport(frequency_hz=self.frequency_hz)
        self._stop = threading.Event()
        self._safe_stopped = False

    @classmethod
    def for_embodiment(
        cls,
        robot: Robot,
        source: ChunkSource,
        embodiment: Any,
        *,
        frequency_hz: float | None = None,
        execution_horizon: int | None = None,
        **kwargs: Any,
    ) -> ControlLoop:
        """Rate and horizon from the embodiment's ``control`` block where not given (None)."""
        control = embodiment.control
        return cls(
            robot,
            source,
            frequency_hz=control.frequency_hz if frequency_hz is None else frequency_hz,
            execution_horizon=(
                control.rtc_execution_horizon if execution_horizon is None else execution_horizon
            ),
            **kwargs,
        )

    def stop(self) -> None:
        """Ask the loop to end after the current tick (thread-safe)."""
        self._stop.set()

    # ------------------------------------------------------------------------------ run

    def run(self, max_steps: int | None = None) -> LoopReport:
        """Run until ``max_steps`` ticks, :meth:`stop`, or a failure (raised after the robot's
        ``safe_stop``). Returns the report (also on ``self.report``)."""
        report = self.report
        period = 1.0 / self.frequency_hz
        clock = self.clock
        start = clock.now()
        inflight: _InFlight | None = None
        last_request_tick: int | None = None
        tick = 0
        try:
            while max_steps is None or tick < max_steps:
                if self._stop.is_set():
                    report.stop_reason = "stopped"
                    break
                scheduled = start + tick * period
                clock.sleep_until(scheduled)
                began = clock.now()
                if began - scheduled > period:
                    # Fell behind by more than a tick: re-anchor instead of bursting actions.
                    report.late_ticks += 1
                    start = began - tick * period

                if inflight is not None and inflight.future.done():
                    self._integrate(inflight, inflight.future.result(), tick, began)
                    inflight = None

                due = last_request_tick is None or tick - last_request_tick >= (
                    self.execution_horizon
                )
                if inflight is None and (due or self.queue.remaining(tick) == 0):
                    inflight = self._request(tick)
                    last_request_tick = tick

                action = self.queue.pop(tick)
                if action is None:
                    report.starved_ticks += 1
                else:
                    self.robot.act(action)
                    report.actions_executed += 1
                tick += 1
                report.steps = tick
                report.step_ms.append((clock.now() - began) * 1e3)
                if self.on_step is not None:
                    self.on_step(tick, report)
            else:
                report.stop_reason = "max_steps"
        except BaseException as exc:
            report.stop_reason = failure_reason(exc)
            report.error = str(exc)
            self._safe_stop(report.stop_reason, str(exc))
            raise
        finally:
            if inflight is not None:
                inflight.future.cancel()
            self.source.close()
        return report

    def _request(self, tick: int) -> _InFlight:
        observation = dict(self.robot.observe())
        observation.setdefault("capture_time_ns", time.time_ns())
        future = self.source.submit(observation)
        self.report.requests_sent += 1
        return _InFlight(future=future, capture_tick=tick, capture_time=self.clock.now())

    def _integrate(
        self, inflight: _InFlight, chunk: Mapping[str, Any], tick: int, now: float
    ) -> None:
        report = self.report
        capture = inflight.capture_tick
        if not self.drop_stale:
            capture = tick  # pretend it was captured now: nothing is stale
        result = self.queue.integrate(chunk["actions"], capture, tick, self.merge)
        report.chunks_received += 1
        report.actions_stale_dropped += result.stale
        report.actions_merged += result.merged
        report.latency_ticks.append(tick - inflight.capture_tick)
        # The SDK measures capture -> arrival exactly; the clock only sees it at tick edges.
        timings = chunk.get("timings") or {}
        measured = timings.get("latency_ms")
        if isinstance(measured, int | float):
            report.latency_ms.append(float(measured))
        else:
            report.latency_ms.append((now - inflight.capture_time) * 1e3)
        metadata = chunk.get("metadata") or {}
        guard = metadata.get("guard")
        if isinstance(guard, Mapping) and isinstance(guard.get("verdict"), str):
            report.guard_verdicts[guard["verdict"]] += 1
        fallback = metadata.get("fallback")
        if isinstance(fallback, Mapping) and fallback.get("used"):
            report.fallbacks += 1
        if self.on_chunk is not None:
            self.on_chunk(chunk)

    def _safe_stop(self, reason: str, message: str) -> None:
        if self._safe_stopped:
            return
        self._safe_stopped = True
        safe_stop = getattr(self.robot, "safe_stop", None)
        if callable(safe_stop):
            safe_stop(reason, message)
