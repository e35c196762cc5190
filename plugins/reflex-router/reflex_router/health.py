"""Per-slot health: consecutive server-side errors take a slot out of rotation for a while."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from reflex_core.errors import ReflexError, Unavailable


def counts_against_slot(exc: BaseException) -> bool:
    """Whether an error says something about the policy in the slot.

    Bad input (a ReflexError below 500) is the caller's fault, and ``Unavailable`` (503: a full
    batching queue, shutdown) is load, not a broken model; neither should drain a slot. Any
    other exception, including an internal bug in the policy's runtime, counts.
    """
    if isinstance(exc, ReflexError):
        return exc.status >= 500 and not isinstance(exc, Unavailable)
    return isinstance(exc, Exception)


class SlotHealth:
    """Consecutive-error breaker for one slot.

    After ``trip_after`` consecutive errors the slot is tripped for ``cooldown_s``; then it is
    tried again. The error count is kept until a success, so a slot that fails its first
    request after the cool-down trips again at once.
    """

    def __init__(
        self, slot: str, trip_after: int, cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:  # fmt: skip
        self.slot = slot
        self.trip_after = trip_after
        self.cooldown_s = cooldown_s
        self._clock = clock
        self.consecutive_errors = 0
        self.tripped_until: float | None = None
        self.trips = 0
        self.last_error: str | None = None

    def available(self) -> bool:
        return self.tripped_until is None or self._clock() >= self.tripped_until

    def record_success(self) -> None:
        self.consecutive_errors = 0
        self.tripped_until = None

    def record_failure(self, exc: BaseException) -> bool:
        """Count an error; True when this error tripped the slot."""
        self.consecutive_errors += 1
        self.last_error = exc.slug if isinstance(exc, ReflexError) else type(exc).__name__
        if self.consecutive_errors >= self.trip_after and self.available():
            self.tripped_until = self._clock() + self.cooldown_s
            self.trips += 1
            return True
        return False

    def status(self) -> dict[str, Any]:
        remaining = None
        if self.tripped_until is not None:
            remaining = max(0.0, self.tripped_until - self._clock())
        return {
            "available": self.available(),
            "consecutive_errors": self.consecutive_errors,
            "trips": self.trips,
            "cooldown_remaining_s": round(remaining, 3) if remaining else None,
            "last_error": self.last_error,
        }
