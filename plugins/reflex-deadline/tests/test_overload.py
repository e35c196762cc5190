"""Overload: a request the server cannot take now falls back AT its deadline with a turn to come
back (``retry_after_s``), so a closed-loop client cannot spin on instant holds; and repeated
fallbacks or failures log one line per interval, not one per request. The waits are recorded,
not timed."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import numpy as np
import pytest

from reflex_core.errors import Unavailable
from reflex_core.plugin.testing import make_request

from .conftest import SlowPolicy

STATE = np.linspace(-0.5, 0.5, 8).astype(np.float32)


def record_waits(wedge: Any) -> list[int]:
    """Replace the wedge's wait for a deadline by a recorder that returns at once."""
    waits: list[int] = []

    async def wait_until(deadline_ns: int) -> None:
        waits.append(deadline_ns)

    wedge._wait_until = wait_until
    return waits


def test_a_request_refused_inside_falls_back_at_its_deadline_with_a_turn(
    build_deadline, franka, caplog: pytest.LogCaptureFixture
) -> None:
    policy = SlowPolicy(0.0)
    policy.error = Unavailable("too far behind", slug="overloaded", retry_after_s=0.02)
    wedge, ctx = build_deadline({"deadline_ms": 50}, policy, embodiment=franka)
    waits = record_waits(wedge)
    now = [100.0]
    wedge.clock = lambda: now[0]  # the turns are booked on the wedge's clock: frozen here
    wedge.pace_s = 0.01  # one call completes every 10 ms
    requests, results = [], []
    with caplog.at_level(logging.INFO, logger="reflex_deadline"):
        for _ in range(20):
            requests.append(make_request(STATE))
            results.append(asyncio.run(wedge(requests[-1])))
    # each was answered at its own deadline, not at once
    assert waits == [wedge.deadline_for(r)[0] for r in requests]
    notes = [r.metadata["fallback"] for r in results]
    assert {n["reason"] for n in notes} == {"overloaded"} and all(n["used"] for n in notes)
    turns = [n["retry_after_s"] for n in notes]
    # one after the other, a little closer than the pace (so the pace can climb back up)
    assert turns == pytest.approx([0.008 * (k + 1) for k in range(20)])
    assert wedge.counts["overloaded"] == 20 and wedge.counts["late"] == 0
    assert ctx.health["deadline"]()["late_in_background"] == 0
    # one line for the first, the other 19 counted into the summary at the end of the interval
    assert len([r for r in caplog.records if r.name == "reflex_deadline.wedge"]) == 1


def test_the_backlog_falls_back_at_the_deadline_not_at_once(build_deadline, franka) -> None:
    policy = SlowPolicy(0.6)
    wedge, ctx = build_deadline(
        {"deadline_ms": 50, "deadline_max_late": 1}, policy, embodiment=franka
    )

    async def main() -> Any:
        await wedge(make_request(STATE))  # late: it keeps running in the background
        waits = record_waits(wedge)
        request = make_request(STATE)
        second = await wedge(request)
        assert waits == [wedge.deadline_for(request)[0]]
        return second

    second = asyncio.run(main())
    note = second.metadata["fallback"]
    assert note["reason"] == "backlog" and note["retry_after_s"] > 0
    assert len(policy.started) == 1  # the second request never reached the policy


def test_turns_follow_the_pace_inner_calls_complete_at(build_deadline, franka) -> None:
    wedge, _ = build_deadline({"deadline_ms": 50}, SlowPolicy(0.0), embodiment=franka)
    now = [100.0]
    wedge.clock = lambda: now[0]
    for _ in range(30):  # a call completes every 20 ms
        now[0] += 0.02
        wedge._completed()
    assert wedge.pace_s == pytest.approx(0.02)
    turns = [wedge.pacer.wait_s(now[0], wedge.pace_s) for _ in range(3)]
    assert turns == pytest.approx([0.02, 0.04, 0.06])
    now[0] += 30.0  # a quiet spell counts as at most one deadline
    wedge._completed()
    assert wedge.pace_s == pytest.approx(0.02 + 0.2 * (0.05 - 0.02))


def test_repeated_policy_failures_log_one_line_then_a_count(
    build_deadline, franka, caplog: pytest.LogCaptureFixture
) -> None:
    policy = SlowPolicy(0.0)
    policy.error = RuntimeError("CUDA exploded")
    wedge, _ = build_deadline({"deadline_ms": 200}, policy, embodiment=franka)
    with caplog.at_level(logging.INFO, logger="reflex_deadline"):
        for _ in range(50):
            result = asyncio.run(wedge(make_request(STATE)))
            assert result.metadata["fallback"]["reason"] == "policy-error"
        lines = [r.getMessage() for r in caplog.records if r.name == "reflex_deadline.wedge"]
        assert len(lines) == 1 and "CUDA exploded" in lines[0]
        asyncio.run(wedge.aclose())  # shutdown sums up what was counted
    lines = [r.getMessage() for r in caplog.records if r.name == "reflex_deadline.wedge"]
    assert len(lines) == 2 and "49 more" in lines[1] and "policy-error: 49" in lines[1]


def test_while_refusing_real_answers_get_turns_too(build_deadline, franka) -> None:
    """Callers that got a real chunk would otherwise come straight back and take every free
    thread, so the refused ones come back only to be refused again: while refusals are recent,
    every answer carries a turn; once they are not, answers go back to carrying none."""
    policy = SlowPolicy(0.0)
    wedge, _ = build_deadline({"deadline_ms": 200}, policy, embodiment=franka)
    record_waits(wedge)
    now = [50.0]
    wedge.clock = lambda: now[0]
    wedge.pace_s = 0.02

    def answer() -> dict[str, Any]:
        return asyncio.run(wedge(make_request(STATE))).metadata["fallback"]

    assert "retry_after_s" not in answer()  # nothing refused yet: straight back
    policy.error = Unavailable("too far behind", slug="overloaded")
    refused = answer()
    policy.error = None
    served = answer()
    assert refused["used"] and not served["used"]
    # the next turns, one after the other (the clock stands still: they queue)
    assert 0 < refused["retry_after_s"] < served["retry_after_s"]
    now[0] += wedge.pacer.max_wait_s  # no refusal for the longest turn: back to none
    assert "retry_after_s" not in answer()


def test_the_background_cap_holds_when_many_go_late_at_once(build_deadline, franka) -> None:
    """Requests admitted while the background was empty all go late at their deadline: past
    the cap, a late call is dropped instead of kept (so /health never shows more than the cap)."""
    policy = SlowPolicy(0.6)
    wedge, ctx = build_deadline(
        {"deadline_ms": 50, "deadline_max_late": 2}, policy, embodiment=franka
    )

    async def main() -> list[int]:
        seen: list[int] = []
        answers = asyncio.gather(*(wedge(make_request(STATE)) for _ in range(5)))
        while not answers.done():
            seen.append(ctx.health["deadline"]()["late_in_background"])
            await asyncio.sleep(0.005)
        results = await answers
        seen.append(ctx.health["deadline"]()["late_in_background"])  # they are still running
        assert all(r.metadata["fallback"]["reason"] == "deadline" for r in results)
        return seen

    seen = asyncio.run(main())
    assert max(seen) <= 2 and ctx.health["deadline"]()["late_in_background"] <= 2
    assert wedge.counts["late"] == 5 and wedge.counts["late_dropped"] == 3
