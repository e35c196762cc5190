"""The online batch cost model: EWMA per size, interpolation and extrapolation."""

from __future__ import annotations

import pytest
from reflex_batching.cost_model import BatchCostModel


def test_no_measurement_means_no_estimate() -> None:
    model = BatchCostModel()
    assert model.estimate(1) is None
    assert model.largest_within(1.0, 8) == 8  # nothing known against any size


def test_ewma_moves_towards_new_samples() -> None:
    model = BatchCostModel(alpha=0.5)
    model.observe(4, 10.0)
    assert model.estimate(4) == 10.0
    model.observe(4, 20.0)
    assert model.estimate(4) == pytest.approx(15.0)
    model.observe(4, 20.0)
    assert model.estimate(4) == pytest.approx(17.5)


def test_single_point_scales_proportionally() -> None:
    model = BatchCostModel()
    model.observe(2, 10.0)
    assert model.estimate(4) == pytest.approx(20.0)
    assert model.estimate(1) == pytest.approx(5.0)


def test_interpolates_between_and_extrapolates_beyond() -> None:
    model = BatchCostModel()
    model.observe(1, 10.0)
    model.observe(4, 16.0)  # slope 2 ms per request
    model.observe(8, 20.0)  # slope 1 ms per request
    assert model.estimate(2) == pytest.approx(12.0)
    assert model.estimate(6) == pytest.approx(18.0)
    assert model.estimate(12) == pytest.approx(24.0)  # extends the last segment
    assert model.known() == {1: 10.0, 4: 16.0, 8: 20.0}


def test_extrapolation_never_decreases_with_size() -> None:
    model = BatchCostModel()
    model.observe(2, 10.0)
    model.observe(4, 8.0)  # noisy: bigger batch measured cheaper
    assert model.estimate(8) == pytest.approx(8.0)
    assert model.estimate(1) == pytest.approx(10.0)


def test_largest_within_budget() -> None:
    model = BatchCostModel()
    model.observe(1, 4.0)
    model.observe(8, 18.0)  # 2 ms per extra request
    assert model.largest_within(10.0, 16) == 4  # 4 + 3*2 = 10
    assert model.largest_within(1.0, 16) == 1  # a batch of one always runs
    assert model.largest_within(100.0, 6) == 6


def test_rejects_bad_alpha() -> None:
    with pytest.raises(ValueError):
        BatchCostModel(alpha=0.0)
