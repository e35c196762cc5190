"""What a server part needs when it refuses work because it is overloaded.

* :class:`TurnPacer`: how long a refused caller should wait before coming back. Refused callers
  are handed turns spaced at the pace work completes, so callers that wait as told return
  about as fast as there is room for them, instead of all at once (a closed-loop client that
  comes straight back is how an overloaded server spends itself on refusals).
* :class:`LogTally`: one log line per interval for an event that can repeat hundreds of times a
  second (a refused request, a failed late inference): the first of each kind in an interval is
  logged as it happens, the rest are counted and summed up in one line when the interval ends.

Both take the clock as a parameter (tests drive them with a fake one).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

MAX_TURN_WAIT_S = 1.0
"""The longest wait a :class:`TurnPacer` hands out: about one chunk of actions at a robot's
control rate, which a client holding position can afford to wait."""


class TurnPacer:
    """Turns for refused callers, ``interval_s`` apart (the time one unit of work takes to
    complete at the current pace, e.g. one call's duration over the threads running calls).

    ``wait_s(now, interval)`` books the next free turn and returns how long the caller should
    wait for it. Turns not taken are forgotten as time passes (the next turn is never before
    ``now``), and no turn is booked more than ``max_wait_s`` ahead.
    """

    def __init__(self, max_wait_s: float = MAX_TURN_WAIT_S) -> None:
        self.max_wait_s = max_wait_s
        self._next_s = float("-inf")  # the last turn handed out

    def wait_s(self, now_s: float, interval_s: float) -> float:
        turn = max(self._next_s, now_s) + max(0.0, interval_s)
        self._next_s = min(turn, now_s + self.max_wait_s)
        return self._next_s - now_s


class LogTally:
    """Log an event at most once per kind per ``interval_s``; count the rest and log one summary
    line (``"<what>: N more in the last 10 s (kind: n, ...)"``) when the interval ends.

    :param logger: where the lines go. :param level: their level.
    :param what: names the event in the summary line ("fallbacks for overload").
    :param clock: seconds, monotonic (``time.monotonic`` by default).
    """

    def __init__(
        self,
        logger: logging.Logger,
        what: str,
        *,
        level: int = logging.WARNING,
        interval_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.what = what
        self.level = level
        self.interval_s = interval_s
        self.clock = clock
        self._window_start: float | None = None
        self._more: dict[str, int] = {}  # kind -> events after the first, this interval
        self._flush_handle: asyncio.TimerHandle | None = None

    def note(self, kind: str, message: str, *args: object) -> None:
        """One occurrence of ``kind``: logged now (``message % args``) if it is the first of its
        kind this interval, else counted for the summary."""
        now = self.clock()
        if self._window_start is not None and now - self._window_start >= self.interval_s:
            self.flush()
        if self._window_start is None:
            self._window_start = now
            self._schedule_flush()
        if kind in self._more:
            self._more[kind] += 1
            return
        self._more[kind] = 0
        self.logger.log(self.level, message, *args)

    def flush(self) -> None:
        """End the interval: log the summary of what was counted, if anything (also called by a
        timer on the running event loop when the interval ends, and at shutdown)."""
        if self._flush_handle is not None:
            self._flush_handle.cancel()
            self._flush_handle = None
        more = {kind: n for kind, n in sorted(self._more.items()) if n}
        if more and self._window_start is not None:
            elapsed = max(0.0, self.clock() - self._window_start)
            self.logger.log(
                self.level,
                "%s: %d more in the last %.0f s (%s)",
                self.what,
                sum(more.values()),
                elapsed,
                ", ".join(f"{kind}: {n}" for kind, n in more.items()),
            )
        self._window_start = None
        self._more = {}

    def _schedule_flush(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop: the next note() or an explicit flush() sums up
            return
        self._flush_handle = loop.call_later(self.interval_s, self.flush)
