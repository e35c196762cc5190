"""Rolling latency windows and percentiles.

Generic on purpose: the SLO wedge keeps one window per policy slot, the batching scheduler keeps
one per batch size for its cost model. A window is bounded by sample count and/or sample age, so
memory stays flat under any load and old behaviour stops counting after a while.

Percentiles use linear interpolation between closest ranks (numpy's default), so ``p50`` of
``[1, 2, 3, 4]`` is 2.5. Durations are seconds throughout.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Generic, TypeVar

import numpy as np

Clock = Callable[[], float]
K = TypeVar("K", bound=Hashable)

_DURATION = re.compile(
    r"^\s*(?P<value>[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*(?P<unit>ms|s|us|µs)?\s*$"
)
_UNIT_SECONDS = {"s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6}


def parse_duration_s(text: str | float | int, *, default_unit: str = "s") -> float:
    """Parse ``"150ms"``, ``"0.2s"``, ``"250us"`` or a bare number (in ``default_unit``) into
    seconds. Raises ValueError for anything else, including negative or non-finite values."""
    if isinstance(text, bool):
        raise ValueError(f"not a duration: {text!r}")
    if isinstance(text, int | float):
        value, unit = float(text), default_unit
    else:
        match = _DURATION.match(text)
        if match is None:
            raise ValueError(f"not a duration: {text!r} (expected e.g. 150ms or 0.2s)")
        value, unit = float(match["value"]), match["unit"] or default_unit
    if unit not in _UNIT_SECONDS:
        raise ValueError(f"unknown duration unit {unit!r}")
    seconds = value * _UNIT_SECONDS[unit]
    if not math.isfinite(seconds) or seconds < 0:
        raise ValueError(f"duration must be finite and >= 0, got {text!r}")
    return seconds


class LatencyWindow:
    """The most recent latency samples, bounded by count and/or age.

    :param max_samples: keep at most this many samples (None: unbounded by count).
    :param max_age_s: drop samples older than this many seconds (None: unbounded by age).
    :param clock: monotonic seconds; injectable for tests.

    At least one bound is required. Thread-safe: samples may be recorded from executor threads
    while the event loop reads percentiles.
    """

    def __init__(
        self,
        max_samples: int | None = 1000,
        max_age_s: float | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        if max_samples is None and max_age_s is None:
            raise ValueError("a latency window needs max_samples and/or max_age_s")
        if max_samples is not None and max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {max_samples}")
        if max_age_s is not None and not max_age_s > 0:
            raise ValueError(f"max_age_s must be > 0, got {max_age_s}")
        self.max_samples = max_samples
        self.max_age_s = max_age_s
        self._clock = clock
        self._samples: deque[tuple[float, float]] = deque(maxlen=max_samples)
        self._lock = threading.Lock()
        self.total_count = 0  # every sample ever recorded, for counters

    def record(self, seconds: float, *, at: float | None = None) -> None:
        """Add one latency sample (seconds); ``at`` is its monotonic time (default: now)."""
        if not math.isfinite(seconds) or seconds < 0:
            raise ValueError(f"latency must be finite and >= 0, got {seconds!r}")
        now = self._clock() if at is None else at
        with self._lock:
            self._samples.append((now, float(seconds)))
            self.total_count += 1
            self._expire(now)

    def _expire(self, now: float) -> None:
        if self.max_age_s is None:
            return
        horizon = now - self.max_age_s
        while self._samples and self._samples[0][0] < horizon:
            self._samples.popleft()

    def values(self) -> np.ndarray:
        """The live samples (seconds), oldest first."""
        with self._lock:
            self._expire(self._clock())
            return np.fromiter(
                (v for _, v in self._samples), dtype=np.float64, count=len(self._samples)
            )

    def __len__(self) -> int:
        with self._lock:
            self._expire(self._clock())
            return len(self._samples)

    def percentile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100) of the live samples, or None when empty."""
        return self.percentiles([q]).get(q)

    def percentiles(self, qs: Iterable[float]) -> dict[float, float]:
        """Several percentiles from one sort; empty dict when there are no samples."""
        qs = list(qs)
        for q in qs:
            if not 0 <= q <= 100:
                raise ValueError(f"percentile must be within [0, 100], got {q}")
        values = self.values()
        if values.size == 0:
            return {}
        result = np.percentile(values, qs)
        return {q: float(v) for q, v in zip(qs, np.atleast_1d(result), strict=True)}

    def mean(self) -> float | None:
        values = self.values()
        return float(values.mean()) if values.size else None

    def oldest_age_s(self) -> float | None:
        """How long ago the oldest live sample was recorded (None when empty)."""
        with self._lock:
            now = self._clock()
            self._expire(now)
            return now - self._samples[0][0] if self._samples else None

    def clear(self) -> None:
        with self._lock:
            self._samples.clear()


class LatencyWindows(Generic[K]):
    """One :class:`LatencyWindow` per key (policy slot, batch size...), created on first use
    with the same bounds."""

    def __init__(
        self,
        max_samples: int | None = 1000,
        max_age_s: float | None = None,
        *,
        clock: Clock = time.monotonic,
    ) -> None:
        LatencyWindow(max_samples, max_age_s, clock=clock)  # validate the bounds once, early
        self._args = (max_samples, max_age_s)
        self._clock = clock
        self._windows: dict[K, LatencyWindow] = {}
        self._lock = threading.Lock()

    def __getitem__(self, key: K) -> LatencyWindow:
        with self._lock:
            window = self._windows.get(key)
            if window is None:
                window = LatencyWindow(*self._args, clock=self._clock)
                self._windows[key] = window
            return window

    def record(self, key: K, seconds: float, *, at: float | None = None) -> None:
        self[key].record(seconds, at=at)

    def keys(self) -> list[K]:
        with self._lock:
            return list(self._windows)

    def items(self) -> Iterator[tuple[K, LatencyWindow]]:
        with self._lock:
            pairs = list(self._windows.items())
        return iter(pairs)

    def __contains__(self, key: object) -> bool:
        return key in self._windows
