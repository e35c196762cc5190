"""Rolling latency windows: bounds by count and age, percentiles, duration parsing."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from reflex_core.plugin.kit.latency import LatencyWindow, LatencyWindows, parse_duration_s


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_percentiles_match_numpy_linear_interpolation() -> None:
    window = LatencyWindow(max_samples=100)
    samples = [0.010, 0.020, 0.030, 0.040]
    for s in samples:
        window.record(s)
    assert window.percentile(50) == pytest.approx(0.025)
    got = window.percentiles([50, 95, 99, 100])
    want = np.percentile(samples, [50, 95, 99, 100])
    assert list(got.values()) == pytest.approx(list(want))
    assert got[100] == pytest.approx(0.040)
    assert window.mean() == pytest.approx(0.025)


def test_empty_window_has_no_percentiles() -> None:
    window = LatencyWindow(max_samples=10)
    assert window.percentile(99) is None
    assert window.percentiles([50, 99]) == {}
    assert window.mean() is None
    assert len(window) == 0


def test_count_bound_keeps_the_newest_samples() -> None:
    window = LatencyWindow(max_samples=3)
    for s in [1.0, 2.0, 3.0, 4.0, 5.0]:
        window.record(s)
    assert window.values().tolist() == [3.0, 4.0, 5.0]
    assert window.total_count == 5
    assert window.percentile(0) == 3.0


def test_age_bound_drops_old_samples() -> None:
    clock = FakeClock()
    window = LatencyWindow(max_samples=None, max_age_s=10.0, clock=clock)
    window.record(5.0)  # t=1000
    clock.now += 6
    window.record(1.0)  # t=1006
    assert len(window) == 2
    assert window.oldest_age_s() == pytest.approx(6.0)
    clock.now += 5  # t=1011: the first sample is 11 s old
    assert window.values().tolist() == [1.0]
    assert window.percentile(99) == 1.0
    clock.now += 100
    assert window.percentile(99) is None


def test_both_bounds_apply() -> None:
    clock = FakeClock()
    window = LatencyWindow(max_samples=2, max_age_s=10.0, clock=clock)
    for s in [1.0, 2.0, 3.0]:
        window.record(s)
    assert window.values().tolist() == [2.0, 3.0]
    clock.now += 20
    assert len(window) == 0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_samples": None, "max_age_s": None},
        {"max_samples": 0},
        {"max_samples": 10, "max_age_s": 0.0},
    ],
)
def test_invalid_bounds_are_refused(kwargs: dict) -> None:
    with pytest.raises(ValueError):
        LatencyWindow(**kwargs)


@pytest.mark.parametrize("bad", [-0.1, float("nan"), float("inf")])
def test_invalid_samples_are_refused(bad: float) -> None:
    window = LatencyWindow()
    with pytest.raises(ValueError):
        window.record(bad)
    assert len(window) == 0


def test_percentile_range_checked() -> None:
    window = LatencyWindow()
    window.record(0.1)
    with pytest.raises(ValueError):
        window.percentile(101)


def test_keyed_windows_are_independent_and_share_bounds() -> None:
    windows: LatencyWindows[str] = LatencyWindows(max_samples=2)
    windows.record("a", 1.0)
    windows.record("a", 2.0)
    windows.record("a", 3.0)
    windows.record("b", 10.0)
    assert windows["a"].values().tolist() == [2.0, 3.0]
    assert windows["b"].values().tolist() == [10.0]
    assert sorted(windows.keys()) == ["a", "b"]
    assert "a" in windows and "c" not in windows
    assert dict(windows.items())["b"].max_samples == 2


def test_concurrent_recording_loses_nothing() -> None:
    window = LatencyWindow(max_samples=100_000)

    def worker() -> None:
        for _ in range(2000):
            window.record(0.001)

    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(window) == 8000
    assert window.total_count == 8000


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("150ms", 0.150),
        ("150 ms", 0.150),
        ("0.2s", 0.2),
        ("2s", 2.0),
        ("250us", 0.00025),
        ("1.5e2ms", 0.150),
        ("3", 3.0),
        (0.5, 0.5),
    ],
)
def test_parse_duration(text: str | float, seconds: float) -> None:
    assert parse_duration_s(text) == pytest.approx(seconds)


def test_parse_duration_default_unit() -> None:
    assert parse_duration_s("40", default_unit="ms") == pytest.approx(0.040)
    assert parse_duration_s(40, default_unit="ms") == pytest.approx(0.040)


@pytest.mark.parametrize("bad", ["", "fast", "-5ms", "10 min", "ms", "1..2s", True, "nan"])
def test_parse_duration_rejects_garbage(bad: object) -> None:
    with pytest.raises(ValueError):
        parse_duration_s(bad)  # type: ignore[arg-type]
