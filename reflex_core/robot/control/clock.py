"""Clocks for the control loop: the real monotonic one, and a fake one for tests.

The loop only ever asks a clock for ``now()`` (seconds) and to ``sleep_until(t)``; with
:class:`FakeClock` both are simulated, so a test runs hundreds of ticks instantly and timing
assertions are exact, never sleep-based.
"""

from __future__ import annotations

import heapq
import itertools
import time
from collections.abc import Callable
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    def sleep_until(self, deadline: float) -> None:
        """Return at ``deadline`` (at once when it has passed)."""
        ...


class MonotonicClock:
    """``time.monotonic`` and real sleeps."""

    def now(self) -> float:
        return time.monotonic()

    def sleep_until(self, deadline: float) -> None:
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return
            time.sleep(remaining)


class FakeClock:
    """Simulated time: ``sleep_until`` jumps there, running the callbacks scheduled on the way
    (in time order), so "a chunk that arrives 130 ms after its request" is a callback at
    ``now() + 0.130``. Single-threaded by design."""

    def __init__(self, start: float = 0.0) -> None:
        self._now = start
        self._queue: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self.sleeps = 0

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> None:
        heapq.heappush(self._queue, (when, next(self._order), callback))

    def call_later(self, delay: float, callback: Callable[[], None]) -> None:
        self.call_at(self._now + delay, callback)

    def advance(self, seconds: float) -> None:
        self.sleep_until(self._now + seconds)

    def sleep_until(self, deadline: float) -> None:
        self.sleeps += 1
        while self._queue and self._queue[0][0] <= deadline:
            when, _, callback = heapq.heappop(self._queue)
            self._now = max(self._now, when)
            callback()
        self._now = max(self._now, deadline)
