"""The chunk execution loop on a simulated clock (no sleeps, exact tick arithmetic), chunk
merging, ``@connect`` on a class and on a function, and one run against a real server."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from reflex_core.errors import ConfigError, ValidationError
from reflex_core.robot.control import (
    MERGE_FUNCTIONS,
    ActionQueue,
    ControlLoop,
    FakeClock,
    FunctionRobot,
    connect,
    merge_function,
    stream_fields,
)
from reflex_core.robot.sdk import Backoff, TransportError

HZ = 10.0
TICK = 1.0 / HZ


class RecordingRobot:
    """Observes its tick count as state; records every action and a safe stop."""

    def __init__(self, clock: FakeClock, fail_on_act: BaseException | None = None) -> None:
        self.clock = clock
        self.actions: list[tuple[float, np.ndarray]] = []
        self.observed_at: list[float] = []
        self.safe_stops: list[tuple[str, str]] = []
        self.fail_on_act = fail_on_act

    def observe(self) -> Mapping[str, Any]:
        self.observed_at.append(self.clock.now())
        return {"state": [float(len(self.observed_at))], "task": "pick"}

    def act(self, action: np.ndarray) -> None:
        if self.fail_on_act is not None and len(self.actions) == 3:
            raise self.fail_on_act
        self.actions.append((self.clock.now(), action))

    def safe_stop(self, reason: str, message: str) -> None:
        self.safe_stops.append((reason, message))


class ScriptedSource:
    """Answers request ``n`` after ``latencies[n]`` simulated seconds with a chunk whose
    action at step i is ``[100 * n + i]`` (so every executed action says where it came from)."""

    def __init__(
        self,
        clock: FakeClock,
        latencies: list[float],
        chunk_size: int = 8,
        error: Exception | None = None,
    ) -> None:
        self.clock = clock
        self.latencies = latencies
        self.chunk_size = chunk_size
        self.error = error
        self.requests: list[Mapping[str, Any]] = []
        self.closed = False

    def submit(self, observation: Mapping[str, Any]) -> concurrent.futures.Future[Any]:
        n = len(self.requests)
        self.requests.append(observation)
        future: concurrent.futures.Future[Any] = concurrent.futures.Future()
        chunk = {
            "actions": np.array([[100.0 * n + i] for i in range(self.chunk_size)], np.float32),
            "metadata": {
                "guard": {"verdict": "clamped" if n % 2 else "pass"},
                "fallback": {"used": n == 1},
            },
            "timings": {},
        }
        if self.error is not None and n == 1:
            self.clock.call_later(self.latencies[n], lambda: future.set_exception(self.error))
        else:
            self.clock.call_later(self.latencies[n], lambda: future.set_result(chunk))
        return future

    def close(self) -> None:
        self.closed = True


def run_loop(
    latencies: list[float], steps: int, horizon: int = 4, merge: str = "latest_only", **kw: Any
):
    clock = FakeClock()
    robot = RecordingRobot(clock)
    source = ScriptedSource(clock, latencies + [0.05] * 20, **kw)
    loop = ControlLoop(
        robot, source, frequency_hz=HZ, execution_horizon=horizon, merge=merge, clock=clock
    )
    report = loop.run(max_steps=steps)
    return robot, source, report


# --------------------------------------------------------------------------------- merging


def test_merge_functions_weight_old_and_new_as_lerobot() -> None:
    old, new = np.array([1.0]), np.array([2.0])
    results = {name: float(fn(old, new)[0]) for name, fn in MERGE_FUNCTIONS.items()}
    assert results == pytest.approx(
        {"latest_only": 2.0, "weighted_average": 1.7, "average": 1.5, "conservative": 1.3}
    )
    with pytest.raises(ConfigError):
        merge_function("median")


def test_the_queue_drops_stale_actions_and_merges_the_overlap() -> None:
    queue = ActionQueue()
    first = queue.integrate(
        np.arange(6, dtype=np.float32)[:, None], 0, 0, MERGE_FUNCTIONS["average"]
    )
    assert (first.stale, first.merged, first.fresh) == (0, 0, 6)
    assert queue.pop(0)[0] == 0 and queue.pop(1)[0] == 1
    # captured at tick 1, arriving at tick 3: actions for ticks 1 and 2 are gone
    second = queue.integrate(np.full((6, 1), 10.0, np.float32), 1, 3, MERGE_FUNCTIONS["average"])
    assert (second.stale, second.merged, second.fresh, second.latency_ticks) == (2, 3, 1, 2)
    assert [float(queue.pop(t)[0]) for t in (3, 4, 5, 6)] == [6.5, 7.0, 7.5, 10.0]
    assert queue.pop(7) is None and queue.remaining(0) == 0


# ------------------------------------------------------------------------------- the loop


def test_inference_overlaps_execution_and_stale_actions_are_dropped() -> None:
    # every request takes 0.25 s = 2.5 ticks: answered at the 3rd tick after capture
    robot, source, report = run_loop([0.25] * 10, steps=20, horizon=4)
    ticks = [round(t / TICK) for t, _ in robot.actions]
    # nothing to do until the first chunk: ticks 0, 1, 2 starve; after that never again
    assert ticks == list(range(3, 20))
    assert report.starved_ticks == 3 and report.actions_executed == 17
    # requests every horizon (4) ticks while the current chunk keeps executing
    assert [round(t / TICK) for t in robot.observed_at] == [0, 4, 8, 12, 16]
    # the chunk captured at tick c is ready at c + 3: its first 3 actions were stale
    assert report.latency_ticks == [3] * 5
    assert report.actions_stale_dropped == 5 * 3
    # latest_only: tick t executes action (t - c) of the newest chunk that covers it
    executed = [float(a[0]) for _, a in robot.actions]
    assert executed[:4] == [3.0, 4.0, 5.0, 6.0]  # chunk 0 (captured at tick 0)
    assert executed[4:8] == [103.0, 104.0, 105.0, 106.0]  # chunk 1 (captured at tick 4)
    assert report.chunks_received == 5 and report.requests_sent == 5
    assert report.stop_reason == "max_steps" and source.closed
    assert source.requests[0]["task"] == "pick" and "capture_time_ns" in source.requests[0]
    assert report.guard_verdicts == {"pass": 3, "clamped": 2} and report.fallbacks == 1
    assert report.latency_ms == pytest.approx([300.0] * 5)  # seen at the tick edge


def test_overlapping_actions_are_merged_with_the_chosen_function() -> None:
    robot, _, report = run_loop([0.05] * 10, steps=9, horizon=4, merge="weighted_average")
    executed = [float(a[0]) for _, a in robot.actions]
    # chunk 0 covers ticks 1..7 (tick 0 starved); chunk 1 (captured at 4, ready at 5) covers
    # 5..11: ticks 5, 6, 7 merge 0.3 * old + 0.7 * new, tick 8 is chunk 1 alone
    assert executed[:4] == [1.0, 2.0, 3.0, 4.0]
    assert executed[4:7] == pytest.approx(
        [0.3 * 5 + 0.7 * 101, 0.3 * 6 + 0.7 * 102, 0.3 * 7 + 0.7 * 103]
    )
    assert report.actions_merged >= 3


def test_slow_inference_runs_the_queue_dry_and_is_counted() -> None:
    # 1.25 s per request = 13 ticks at 10 Hz, 16-action chunks: only the last 3 actions of
    # each chunk are still in the future when it arrives
    robot, _, report = run_loop([1.25] * 10, steps=40, horizon=4, chunk_size=16)
    assert [float(a[0]) for _, a in robot.actions] == [13, 14, 15, 113, 114, 115, 213]
    assert report.latency_ticks == [13, 13, 13]
    assert report.actions_stale_dropped == 3 * 13
    assert report.starved_ticks == 40 - 7


def test_without_dropping_stale_actions_the_chunk_starts_at_its_first_action() -> None:
    clock = FakeClock()
    robot = RecordingRobot(clock)
    source = ScriptedSource(clock, [0.25] * 10)
    ControlLoop(
        robot, source, frequency_hz=HZ, execution_horizon=20, clock=clock, drop_stale=False
    ).run(max_steps=5)
    assert [float(a[0]) for _, a in robot.actions] == [0.0, 1.0]


def test_a_server_error_stops_the_loop_with_one_safe_stop() -> None:
    clock = FakeClock()
    robot = RecordingRobot(clock)
    error = ValidationError("bad state", slug="state-length-mismatch")
    loop = ControlLoop(
        robot,
        ScriptedSource(clock, [0.05] * 10, error=error),
        frequency_hz=HZ,
        execution_horizon=2,
        clock=clock,
    )
    with pytest.raises(ValidationError):
        loop.run(max_steps=50)
    assert robot.safe_stops == [("server_error", str(error))]
    assert loop.report.stop_reason == "server_error"


@pytest.mark.parametrize(
    ("exc", "reason"),
    [
        (KeyboardInterrupt(), "signal"),
        (RuntimeError("motor fault"), "robot_error"),
        (TransportError("gone"), "transport_error"),
    ],
)
def test_failures_map_to_safe_stop_reasons(exc: BaseException, reason: str) -> None:
    clock = FakeClock()
    robot = RecordingRobot(clock, fail_on_act=exc)
    loop = ControlLoop(
        robot, ScriptedSource(clock, [0.05] * 10), frequency_hz=HZ, execution_horizon=2, clock=clock
    )
    with pytest.raises(type(exc)):
        loop.run(max_steps=50)
    assert [r for r, _ in robot.safe_stops] == [reason]


def test_a_late_loop_reanchors_instead_of_bursting() -> None:
    clock = FakeClock()

    class SlowRobot(RecordingRobot):
        def act(self, action: np.ndarray) -> None:
            super().act(action)
            if len(self.actions) == 3:
                clock.advance(0.55)  # a 550 ms hiccup inside act

    robot = SlowRobot(clock)
    report = ControlLoop(
        robot, ScriptedSource(clock, [0.01] * 10), frequency_hz=HZ, execution_horizon=4, clock=clock
    ).run(max_steps=8)
    times = [t for t, _ in robot.actions]
    gaps = np.diff(times)
    assert report.late_ticks == 1
    assert np.all(gaps >= TICK - 1e-9), "no two actions closer than one tick"


def test_stream_fields_maps_prompt_aliases() -> None:
    assert stream_fields({"state": [1], "task": "t"}) == {"state": [1], "prompt": "t"}
    assert stream_fields({"state": [1], "prompt": "p", "instruction": "i"})["prompt"] == "p"


# ------------------------------------------------------------------------------ @connect


def test_connect_decorates_classes_and_functions() -> None:
    @connect("http://127.0.0.1:9", embodiment="franka")
    class Arm:
        def observe(self) -> dict:
            return {}

        def act(self, action: Any) -> None:
            pass

    assert callable(Arm.run) and Arm.reflex.url == "http://127.0.0.1:9"

    @connect("http://127.0.0.1:9", embodiment="franka", merge="average")
    def step(action: Any) -> dict:
        return {"state": [0.0] * 8, "seen": action}

    assert step(None)["seen"] is None and step.__name__ == "step"
    assert callable(step.run) and step.reflex.merge == "average"

    with pytest.raises(ConfigError) as info:

        @connect("http://127.0.0.1:9", embodiment="franka")
        class NotARobot:
            def observe(self) -> dict:
                return {}

    assert info.value.slug == "connect-not-a-robot"
    with pytest.raises(ConfigError):
        connect("http://127.0.0.1:9", embodiment="franka", merge="nope")


def test_a_step_function_is_a_robot() -> None:
    calls: list[Any] = []

    def step(action: Any) -> dict:
        calls.append(None if action is None else float(action[0]))
        return {"state": [len(calls)]}

    robot = FunctionRobot(step)
    assert robot.observe() == {"state": [1]} and calls == [None]
    robot.act(np.array([5.0]))
    assert robot.observe() == {"state": [2]} and calls == [None, 5.0]


@pytest.mark.slow
def test_connect_runs_a_class_and_a_function_against_a_real_server(servers: Any) -> None:
    from reflex_core.embodiments import EmbodimentConfig

    franka = EmbodimentConfig.load_preset("franka")
    with servers.ThreadedServer(camera_names=("front", "wrist")) as server:

        @connect(
            server.base,
            embodiment=franka,
            prompt="pick",
            frequency_hz=50.0,
            execution_horizon=4,
            reconnect=Backoff(budget_s=2.0),
        )
        class Arm:
            def __init__(self) -> None:
                self.applied: list[np.ndarray] = []

            def observe(self) -> dict:
                return {"state": np.zeros(8), "images": {"front": np.zeros((8, 8, 3), np.uint8)}}

            def act(self, action: np.ndarray) -> None:
                self.applied.append(action)

        arm = Arm()
        report = arm.run(max_steps=25)
        assert report.actions_executed == len(arm.applied) > 10
        assert report.chunks_received >= 2 and all(a.shape == (8,) for a in arm.applied)
        assert report.latency_ms and min(report.latency_ms) > 0

        seen: list[Any] = []

        @connect(server.base, embodiment="franka", frequency_hz=50.0, execution_horizon=4)
        def step(action: Any) -> dict:
            seen.append(action)
            return {"state": [0.0] * 8}

        report = step.run(max_steps=20)
        assert seen[0] is None and report.actions_executed == len(seen) - 1 > 5


def test_for_embodiment_takes_rate_and_horizon_from_the_embodiment_unless_given() -> None:
    from reflex_core.embodiments import EmbodimentConfig

    franka = EmbodimentConfig.load_preset("franka")
    clock = FakeClock()
    robot, source = RecordingRobot(clock), ScriptedSource(clock, [0.0])
    default = ControlLoop.for_embodiment(robot, source, franka, clock=clock)
    assert (default.frequency_hz, default.execution_horizon) == (
        franka.control.frequency_hz,
        franka.control.rtc_execution_horizon,
    )
    given = ControlLoop.for_embodiment(
        robot, source, franka, frequency_hz=50.0, execution_horizon=3, clock=clock
    )
    assert (given.frequency_hz, given.execution_horizon) == (50.0, 3)
