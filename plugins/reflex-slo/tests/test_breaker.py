"""The circuit breaker's state machine, on a fake clock."""

from __future__ import annotations

import pytest
from reflex_slo.breaker import CLOSED, HALF_OPEN, OPEN, CircuitBreaker

from reflex_core.errors import Unavailable


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(errors: int = 3, cooldown: float = 5.0, probes: int = 1):
    clock = Clock()
    seen: list[tuple[str, str]] = []
    breaker = CircuitBreaker(
        errors, cooldown, probes, clock=clock, on_transition=lambda a, b: seen.append((a, b))
    )
    return breaker, clock, seen


def fail(breaker: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        breaker.failure(breaker.admit(), "error (boom)")


def test_opens_after_n_consecutive_failures_only() -> None:
    breaker, _, seen = make(errors=3)
    fail(breaker, 2)
    breaker.success(breaker.admit())  # resets the count
    fail(breaker, 2)
    assert breaker.state == CLOSED
    fail(breaker)
    assert breaker.state == OPEN and seen == [(CLOSED, OPEN)]


def test_open_fails_fast_with_retry_after_then_half_opens() -> None:
    breaker, clock, _ = make(errors=1, cooldown=5.0)
    fail(breaker)
    clock.now += 2.0
    with pytest.raises(Unavailable) as info:
        breaker.admit()
    assert info.value.slug == "circuit-open" and info.value.status == 503
    assert info.value.retry_after_s == pytest.approx(3.0)
    assert "error (boom)" in info.value.message
    clock.now += 3.0
    ticket = breaker.admit()
    assert ticket.probe and breaker.state == HALF_OPEN


def test_probe_success_closes_probe_failure_reopens() -> None:
    breaker, clock, seen = make(errors=1, cooldown=1.0, probes=2)
    fail(breaker)
    clock.now += 1.0
    first, second = breaker.admit(), breaker.admit()
    with pytest.raises(Unavailable):  # only `probes` in flight at once
        breaker.admit()
    breaker.success(first)
    assert breaker.state == HALF_OPEN
    breaker.failure(second, "timeout (deadline)")
    assert breaker.state == OPEN
    assert breaker.retry_after_s() == pytest.approx(1.0)  # a fresh cool-down
    clock.now += 1.0
    a, b = breaker.admit(), breaker.admit()
    breaker.success(a)
    breaker.success(b)
    assert breaker.state == CLOSED
    assert seen == [
        (CLOSED, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, OPEN),
        (OPEN, HALF_OPEN),
        (HALF_OPEN, CLOSED),
    ]


def test_outcomes_from_an_earlier_state_are_ignored() -> None:
    breaker, clock, _ = make(errors=2, cooldown=1.0)
    slow = breaker.admit()  # admitted while closed, still running
    fail(breaker, 2)
    assert breaker.state == OPEN
    breaker.failure(slow, "late")  # must not restart the cool-down
    clock.now += 1.0
    probe = breaker.admit()
    breaker.success(slow)  # nor close the breaker: it was not a probe
    assert breaker.state == HALF_OPEN
    breaker.success(probe)
    assert breaker.state == CLOSED


def test_release_gives_a_probe_slot_back() -> None:
    breaker, clock, _ = make(errors=1, cooldown=1.0)
    fail(breaker)
    clock.now += 1.0
    probe = breaker.admit()
    breaker.release(probe)  # e.g. a client error: says nothing about the policy
    assert breaker.state == HALF_OPEN
    breaker.success(breaker.admit())
    assert breaker.state == CLOSED


def test_snapshot() -> None:
    breaker, clock, _ = make(errors=1, cooldown=2.0)
    fail(breaker)
    snap = breaker.snapshot()
    assert snap["state"] == OPEN and snap["retry_after_s"] == 2.0
    assert snap["transitions"][-1]["to"] == OPEN
    clock.now += 2.0
    assert breaker.snapshot()["state"] == HALF_OPEN  # recovery needs no request
