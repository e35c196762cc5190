"""Overload without collapse (issue #16 item 10): refused callers are told when to come back and
the SDK waits as told, refusals never hold an inference thread nor the caller, a log line does
not scale with the refusals, and what kept the event loop busy (ActionGuard's end-effector
check) costs one forward-kinematics call per chunk in the usual case. Clocks are fakes or
counters; the throughput figures live in benchmarks/soak.py."""

from __future__ import annotations

import asyncio
import logging
import sys
import threading
import time
from typing import Any

import numpy as np
import pytest

from reflex_core.errors import Unavailable
from reflex_core.plugin.kit.overload import LogTally, TurnPacer
from reflex_core.plugin.wedges import ActRequest
from reflex_core.serve import ReflexServer, ServeConfig
from reflex_core.wire.types import Observation

sd = sys.modules["reflex_tests_serve_double"]  # loaded by tests/conftest.py


# ------------------------------------------------------------------------------ kit


def test_refused_callers_get_turns_spaced_at_the_pace() -> None:
    pacer = TurnPacer(max_wait_s=1.0)
    # three refusals at once, one call completing every 50 ms: they come back one by one
    assert [pacer.wait_s(10.0, 0.05) for _ in range(3)] == pytest.approx([0.05, 0.10, 0.15])
    # a turn handed out is still booked 20 ms later: the next one queues behind it
    assert pacer.wait_s(10.02, 0.05) == pytest.approx(0.18)
    # turns not taken are forgotten as time passes: after a quiet second, back to one interval
    assert pacer.wait_s(11.5, 0.05) == pytest.approx(0.05)


def test_turns_are_never_booked_past_the_longest_wait() -> None:
    pacer = TurnPacer(max_wait_s=0.3)
    waits = [pacer.wait_s(0.0, 0.1) for _ in range(10)]
    assert waits[:3] == pytest.approx([0.1, 0.2, 0.3]) and max(waits) == pytest.approx(0.3)
    # the cap bounds the booking too: 100 ms later the next turn is 300 ms out, not 1 s
    assert pacer.wait_s(0.1, 0.1) == pytest.approx(0.3)


def test_a_repeated_event_is_logged_once_per_interval_then_summed_up(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [100.0]
    tally = LogTally(logging.getLogger("test.tally"), "fallbacks", clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.tally"):
        for i in range(500):
            tally.note("overloaded", "request %d refused", i)
        tally.note("backlog", "backlog %d", 0)
        tally.note("backlog", "backlog %d", 1)
        assert [r.getMessage() for r in caplog.records] == ["request 0 refused", "backlog 0"]
        now[0] += 10.0  # the interval ends: the next event sums up the last one first
        tally.note("overloaded", "request %d refused", 500)
    messages = [r.getMessage() for r in caplog.records]
    assert messages[2:] == [
        "fallbacks: 500 more in the last 10 s (backlog: 1, overloaded: 499)",
        "request 500 refused",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="test.tally"):
        tally.flush()  # at shutdown: nothing more was counted, nothing to say
        assert caplog.records == []


# ------------------------------------------------------------------------------ the threads


def _request(i: int, deadline_ns: int | None) -> ActRequest:
    state = np.full(8, 0.01 * i, dtype=np.float32)
    return ActRequest(
        Observation(state=state), f"r{i}", time.monotonic_ns(), deadline_ns=deadline_ns
    )


@pytest.mark.anyio
async def test_a_doomed_call_is_refused_at_once_with_a_turn_to_come_back() -> None:
    """The refusal does not wait for the deadline (whoever set it decides when to answer: the
    deadline wedge holds its fallback until then), and each refused caller gets a later turn."""
    gate = threading.Event()
    server = ReflexServer(
        {"default": sd.DoublePolicy(gate=gate)}, options=ServeConfig(workers_threads=1)
    )
    async with sd.lifespan(server.app):
        server.load.service_s["default"] = 10.0  # the pace: 10 s a call
        server.load.pacer = TurnPacer(max_wait_s=60.0)
        busy = asyncio.create_task(server._run_batch([_request(0, None)]))
        await asyncio.sleep(0.05)
        far = time.monotonic_ns() + 5_000_000_000  # 5 s away, still out of reach
        turns = []
        for i in (1, 2):
            with pytest.raises(Unavailable) as shed:
                # a refusal held until its deadline would take 5 s
                await asyncio.wait_for(server._run_batch([_request(i, far)]), timeout=2.0)
            assert shed.value.slug == "overloaded"
            turns.append(shed.value.retry_after_s)
        gate.set()
        await busy
    # one call's time (over one thread) apart
    assert turns == [pytest.approx(10.0, abs=0.1), pytest.approx(20.0, abs=0.1)]
    assert server.load.shed == 2


def test_a_free_thread_refuses_what_not_even_its_fastest_call_could_make() -> None:
    """Under overload a request can wait on the event loop until little of its budget is left;
    a free thread then refuses it rather than compute a chunk nobody can use on time, but it
    never refuses for long (a pace that only ever refused would never learn it got faster)."""
    from reflex_core.serve.policy_handler import PROBE_EVERY_S, InferenceLoad

    load = InferenceLoad(threads=1)
    for seconds in (0.30, 0.20, 0.25):
        load.observe("default", seconds)
    load.started()
    load.release()  # the thread is free again
    now = time.monotonic_ns()
    assert load.doomed("default", now + 50_000_000)  # 50 ms left, the fastest call took 200
    assert not load.doomed("default", now + 2_000_000_000)  # 2 s left: it runs
    load.last_start_ns = now - int(2 * PROBE_EVERY_S * 1e9)  # nothing started for a while
    assert not load.doomed("default", now + 50_000_000)  # a probe: it runs, the pace updates


@pytest.mark.anyio
async def test_health_tells_waiting_for_a_cpu_from_computing() -> None:
    """``service_cpu_ms`` is the inference thread's own CPU time per call: a policy that waits
    (here: sleeps) shows a wall time far above it, which is how a soak tells a stall caused by
    other processes from one in the server."""
    server = ReflexServer(
        {"default": sd.DoublePolicy(infer_delay_s=0.05)}, options=ServeConfig(workers_threads=1)
    )
    async with sd.lifespan(server.app):
        for i in range(3):
            await server._run_batch([_request(i, None)])
        inference = server.health()[1]["inference"]
    wall, cpu = inference["service_ms"]["default"], inference["service_cpu_ms"]["default"]
    assert wall > 0.0 and 0.0 <= cpu < wall / 2


# ------------------------------------------------------------------------------ the SDK


class _FakeResponse:
    def __init__(self, payload: dict[str, Any]) -> None:
        self.status_code = 200
        self.headers: dict[str, str] = {}
        self._payload = payload

    def json(self) -> dict[str, Any]:
        return self._payload


class _FakeHttp:
    """Stands in for the stream's httpx client: every POST gets the next payload."""

    def __init__(self, payloads: list[dict[str, Any]]) -> None:
        self.payloads = payloads

    def post(self, url: str, json: Any) -> _FakeResponse:
        return _FakeResponse(self.payloads.pop(0))

    def close(self) -> None:
        pass


def _chunk(seq: int, fallback: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "action_chunk",
        "seq": seq,
        "actions": [[0.0] * 8] * 4,
        "metadata": {"fallback": fallback},
    }


def test_the_sdk_waits_out_an_overload_fallbacks_retry_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import concurrent.futures

    from reflex_core.robot.sdk import ActionStream
    from reflex_core.robot.sdk import stream as stream_module

    waits: list[float] = []
    monkeypatch.setattr(stream_module.time, "sleep", waits.append)
    stream = ActionStream("http://127.0.0.1:9", transport="http")
    stream.transport = "http"  # connected, through the fake client below
    stream._http = _FakeHttp(  # type: ignore[assignment]
        [
            _chunk(1, {"used": False}),
            _chunk(2, {"used": True, "reason": "overloaded", "retry_after_s": 0.25}),
            _chunk(3, {"used": False}),
        ]
    )
    stream._executor = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    try:
        stream.act(np.zeros(8))
        assert stream.back_off_s == 0.0 and waits == []  # a real chunk: straight back
        stream.act(np.zeros(8))
        assert 0.0 < stream.back_off_s <= 0.25
        stream.act(np.zeros(8))  # the next send waits the turn out first
    finally:
        stream.close()
    assert len(waits) == 1 and 0.0 < waits[0] <= 0.25


# ------------------------------------------------------------------------------ the guard


def test_the_guards_clamp_checks_the_end_effector_in_one_batch(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """What kept the event loop busy under load: clamping a chunk ran forward kinematics for
    every step. Where the end effector stays within its limit, one batched call does."""
    pytest.importorskip("reflex_actionguard")
    from reflex_actionguard.checks import clamp_chunk
    from reflex_actionguard.limits import limits_from_embodiment

    from reflex_core.embodiments import EmbodimentConfig
    from reflex_core.embodiments.kinematics import KinematicChain

    limits = limits_from_embodiment(EmbodimentConfig.load_preset("franka"))
    ready = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04])
    chunk = np.repeat(ready[None, :], 16, axis=0)
    chunk[:, 0] += 0.3  # joint 1 jumps 0.3 rad: twice its speed limit, not the hand's
    calls: list[int] = []
    transforms = KinematicChain.transforms

    def counted(self: KinematicChain, q: np.ndarray) -> Any:
        calls.append(len(np.atleast_2d(q)))
        return transforms(self, q)

    monkeypatch.setattr(KinematicChain, "transforms", counted)
    out = clamp_chunk(chunk, limits, ready)
    assert len(calls) == 1
    steps = np.abs(np.diff(np.vstack([ready, out]), axis=0))
    assert (steps <= limits.max_step + 1e-6).all()  # it did clamp the joints


@pytest.mark.anyio
async def test_a_call_counts_until_its_thread_is_done_even_when_nobody_waits() -> None:
    """The deadline wedge drops a late call past its cap by cancelling the wait; the thread
    cannot be interrupted, so the call must still count as outstanding until it has finished,
    or the pace would admit work for a thread that is not free."""
    gate = threading.Event()
    policy = sd.DoublePolicy(gate=gate)
    server = ReflexServer({"default": policy}, options=ServeConfig(workers_threads=1))
    async with sd.lifespan(server.app):
        call = asyncio.create_task(server._run_batch([_request(0, None)]))
        while not policy.in_infer.is_set():
            await asyncio.sleep(0.005)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        assert server.load.outstanding == 1  # the thread is still on it
        gate.set()
        while server.load.outstanding:
            await asyncio.sleep(0.005)
    assert server.load.outstanding == 0 and policy.calls == [1]
