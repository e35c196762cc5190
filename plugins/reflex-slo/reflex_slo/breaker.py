"""A circuit breaker: closed -> open -> half-open -> closed.

* closed: requests pass; ``errors`` consecutive failures open it (``errors=None``: failures
  alone never do), and so does :meth:`CircuitBreaker.trip` (an SLO breach).
* open: requests fail fast (503 ``circuit-open``, Retry-After = the cool-down left); after
  ``cooldown_s`` the next request finds it half-open.
* half-open: at most ``probes`` requests in flight at once go through as probes; ``probes``
  successes close it, any probe failure opens it again for a new cool-down.

Outcomes are only counted for requests admitted in the current state (a slow request admitted
while closed that fails after the breaker opened does not extend the cool-down). Single event
loop: no locks.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable

import attrs

from reflex_core.errors import Unavailable

log = logging.getLogger(__name__)

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"
STATE_VALUES = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}  # the reflex_breaker_state gauge


@attrs.frozen
class Ticket:
    """What :meth:`CircuitBreaker.admit` hands a request; give it back with the outcome."""

    generation: int
    probe: bool


class CircuitBreaker:
    def __init__(
        self,
        errors: int | None,
        cooldown_s: float,
        probes: int = 1,
        *,
        clock: Callable[[], float] = time.monotonic,
        on_transition: Callable[[str, str], None] | None = None,
    ) -> None:
        if (errors is not None and errors < 1) or probes < 1 or not cooldown_s > 0:
            raise ValueError("errors (or None) and probes must be >= 1, cooldown_s > 0")
        self.errors = errors
        self.cooldown_s = cooldown_s
        self.probes = probes
        self._clock = clock
        self._on_transition = on_transition
        self.state = CLOSED
        self.generation = 0
        self.consecutive_failures = 0
        self.opened_at: float | None = None
        self.probes_in_flight = 0
        self.probe_successes = 0
        self.transitions: list[tuple[str, str, float]] = []  # the last few, for /health
        self.last_failure: str | None = None

    def _move(self, to: str) -> None:
        before = self.state
        self.state = to
        self.generation += 1
        self.probes_in_flight = 0
        self.probe_successes = 0
        if to == OPEN:
            self.opened_at = self._clock()
        if to == CLOSED:
            self.consecutive_failures = 0
            self.opened_at = None
        self.transitions = [*self.transitions[-9:], (before, to, time.time())]
        level = logging.WARNING if to == OPEN else logging.INFO
        log.log(level, "circuit breaker %s -> %s", before, to)
        if self._on_transition is not None:
            self._on_transition(before, to)

    def retry_after_s(self) -> float:
        if self.state == OPEN and self.opened_at is not None:
            return max(0.0, self.opened_at + self.cooldown_s - self._clock())
        return 0.0

    def poll(self) -> str:
        """The current state, moving open -> half-open once the cool-down is over."""
        if self.state == OPEN and self.retry_after_s() <= 0:
            self._move(HALF_OPEN)
        return self.state

    def admit(self) -> Ticket:
        """Let a request through or raise 503 ``circuit-open``."""
        state = self.poll()
        if state == CLOSED:
            return Ticket(self.generation, probe=False)
        if state == HALF_OPEN and self.probes_in_flight < self.probes - self.probe_successes:
            self.probes_in_flight += 1
            return Ticket(self.generation, probe=True)
        retry = self.retry_after_s() if state == OPEN else 1.0
        raise Unavailable(
            f"circuit breaker {state}"
            + (f" (last failure: {self.last_failure})" if self.last_failure else "")
            + f"; retry in {math.ceil(retry)} s",
            slug="circuit-open",
            retry_after_s=max(1.0, retry),
            details={"breaker": state},
        )

    def success(self, ticket: Ticket) -> None:
        if ticket.generation != self.generation:
            return
        if self.state == CLOSED:
            self.consecutive_failures = 0
        elif self.state == HALF_OPEN and ticket.probe:
            self.probes_in_flight -= 1
            self.probe_successes += 1
            if self.probe_successes >= self.probes:
                self._move(CLOSED)

    def failure(self, ticket: Ticket, reason: str) -> None:
        self.last_failure = reason
        if ticket.generation != self.generation:
            return
        if self.state == CLOSED:
            self.consecutive_failures += 1
            if self.errors is not None and self.consecutive_failures >= self.errors:
                self._move(OPEN)
        elif self.state == HALF_OPEN and ticket.probe:
            self._move(OPEN)

    def trip(self, reason: str) -> bool:
        """Open now, whatever the failure count (an SLO breach); True when it moved. An open
        breaker stays open with its cool-down unchanged."""
        self.last_failure = reason
        if self.state == OPEN:
            return False
        self._move(OPEN)
        return True

    def release(self, ticket: Ticket) -> None:
        """Neither success nor failure (a client error, a cancelled request): a probe slot
        is given back."""
        if ticket.generation == self.generation and self.state == HALF_OPEN and ticket.probe:
            self.probes_in_flight -= 1

    def snapshot(self) -> dict[str, object]:
        state = self.poll()
        return {
            "state": state,
            "consecutive_failures": self.consecutive_failures,
            "threshold": self.errors,
            "cooldown_s": self.cooldown_s,
            "retry_after_s": round(self.retry_after_s(), 3),
            "probes": self.probes,
            "probe_successes": self.probe_successes,
            "last_failure": self.last_failure,
            "transitions": [
                {"from": a, "to": b, "at": round(t, 3)} for a, b, t in self.transitions
            ],
        }
