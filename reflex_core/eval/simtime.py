"""Simulated time for the control loop: the simulator's clock, and requests whose chunks land
on the tick their real latency says.

The :class:`~reflex_core.robot.control.ControlLoop` asks its clock for ``now()`` and to
``sleep_until(t)``; with :class:`SimClock` a sleep is a jump, so the loop never waits for the
simulator or the simulator for the loop. What the loop does wait for is information: a request
submitted at simulated time ``s`` whose answer took ``L`` seconds of wall time (observation
encoding, transport, the wedges, inference) is *arrived* at simulated time ``s + L`` and not
before. :class:`SimFuture.done` answers exactly that, blocking in wall time only while the
simulation has run ahead of the request (``now - s`` is more than the wall time spent so far).

So a 30 ms answer at an 80 Hz control rate lands 3 ticks after its observation, whether the
simulator steps in 1 ms or 50 ms: the stale actions are dropped and the overlap merged as on a
robot, and the deadline wedge's wall-clock budget means what it means on hardware.
"""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections.abc import Mapping
from typing import Any


class SimClock:
    """The control loop's clock in simulated seconds: ``sleep_until`` jumps there at once."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = float(start)

    def now(self) -> float:
        return self._now

    def sleep_until(self, deadline: float) -> None:
        self._now = max(self._now, float(deadline))


class SimFuture:
    """A request in flight, seen from simulated time (``done``/``result``/``cancel``, what the
    control loop uses of a ``concurrent.futures.Future``)."""

    def __init__(
        self, inner: concurrent.futures.Future[Any], clock: SimClock, submitted_wall: float
    ) -> None:
        self.inner = inner
        self.clock = clock
        self.submitted_sim = clock.now()
        self.submitted_wall = submitted_wall
        self.completed_wall: float | None = None
        self._lock = threading.Lock()
        inner.add_done_callback(self._completed)

    def _completed(self, _future: concurrent.futures.Future[Any]) -> None:
        with self._lock:
            if self.completed_wall is None:
                self.completed_wall = time.monotonic()

    @property
    def latency_s(self) -> float | None:
        """Wall seconds from submission to answer (None while in flight)."""
        with self._lock:
            done = self.completed_wall
        return None if done is None else done - self.submitted_wall

    def done(self) -> bool:
        """Has the answer arrived by the simulation's ``now``?"""
        elapsed_sim = self.clock.now() - self.submitted_sim
        while True:
            latency = self.latency_s
            if latency is not None:
                return latency <= elapsed_sim + 1e-9
            waited = time.monotonic() - self.submitted_wall
            if waited >= elapsed_sim:
                return False  # still in flight after longer than the simulation has run
            concurrent.futures.wait([self.inner], timeout=elapsed_sim - waited)

    def result(self, timeout: float | None = None) -> Any:
        return self.inner.result(timeout)

    def cancel(self) -> bool:
        return self.inner.cancel()


class SimTimeChunkSource:
    """Wraps a chunk source (e.g. :class:`~reflex_core.robot.control.StreamChunkSource`) so that its
    answers arrive in simulated time (:class:`SimFuture`)."""

    def __init__(self, source: Any, clock: SimClock) -> None:
        self.source = source
        self.clock = clock
        self.futures: list[SimFuture] = []

    def submit(self, observation: Mapping[str, Any]) -> SimFuture:
        started = time.monotonic()
        future = SimFuture(self.source.submit(observation), self.clock, started)
        self.futures.append(future)
        return future

    def close(self) -> None:
        self.source.close()
