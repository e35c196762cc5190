"""Training a head with NumPy: gradients, data validation, and a measured error reduction."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from reflex_a2c2.dataset import RecordKeys, dataset_from_records
from reflex_a2c2.train import TrainConfig, _forward, _gradients, evaluate, train_head

from reflex_core.errors import ConfigError


def test_backprop_matches_finite_differences() -> None:
    rng = np.random.default_rng(0)
    sizes = [5, 7, 6, 2]
    weights = [
        rng.standard_normal((a, b)) * 0.5 for a, b in zip(sizes[:-1], sizes[1:], strict=True)
    ]
    biases = [rng.standard_normal(b) * 0.1 for b in sizes[1:]]
    z = rng.standard_normal((4, 5))
    target = rng.standard_normal((4, 2))

    def loss() -> float:
        out, _ = _forward(weights, biases, z)
        return float(np.mean((out - target) ** 2))

    out, acts = _forward(weights, biases, z)
    gw, gb = _gradients(weights, acts, (2.0 / out.size) * (out - target))
    eps = 1e-6
    for params, grads in ((weights, gw), (biases, gb)):
        for p, g in zip(params, grads, strict=True):
            flat, gflat = p.reshape(-1), g.reshape(-1)
            for j in range(0, flat.size, 3):
                old = flat[j]
                flat[j] = old + eps
                up = loss()
                flat[j] = old - eps
                down = loss()
                flat[j] = old
                assert gflat[j] == pytest.approx((up - down) / (2 * eps), rel=1e-4, abs=1e-8)


def test_trained_head_reduces_error_under_delay_on_held_out_chunks(
    make_delayed_chunks: Callable[..., list[dict[str, Any]]],
) -> None:
    records = make_delayed_chunks(1000, seed=0)
    held_records = make_delayed_chunks(300, seed=99)
    head, report = train_head(dataset_from_records(records), TrainConfig(epochs=30, seed=0))
    before, after = evaluate(head, dataset_from_records(held_records))
    # No correction leaves the delay's full shift and drift; the head must remove most of it.
    assert after < 0.5 * before
    assert report.error_after < 0.5 * report.error_before
    assert report.suggested_max_norm > 0

    # Control: the same data with the latency hidden (recorded as 0). The head can then only
    # learn the average shift, so the reduction above really comes from the latency input.
    for rec in (*records, *held_records):
        rec["latency_ms"] = 0.0
    blind, _ = train_head(dataset_from_records(records), TrainConfig(epochs=30, seed=0))
    _, blind_after = evaluate(blind, dataset_from_records(held_records))
    assert after * 2 < blind_after


def test_unexecuted_steps_are_skipped_and_bad_records_named() -> None:
    base = [[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]]
    good = {
        "features": [1.0, 2.0],
        "base_actions": base,
        "executed_actions": [[0.1, 0.1], None, [2.2, 2.2]],
        "latency_ms": 50,
    }
    data = dataset_from_records([good])
    assert data.rows == 2 and data.feature_dim == 2 and data.action_dim == 2
    np.testing.assert_allclose(data.y, [[0.1, 0.1], [0.2, 0.2]], atol=1e-6)

    with pytest.raises(ConfigError) as info:
        dataset_from_records([good, {"features": [1.0, 2.0], "base_actions": base}])
    assert info.value.slug == "a2c2-data-invalid" and "record 2" in info.value.message
    with pytest.raises(ConfigError) as info:
        dataset_from_records([good, {**good, "features": [1.0, 2.0, 3.0]}])
    assert info.value.slug == "a2c2-data-invalid"
    with pytest.raises(ConfigError) as info:
        dataset_from_records([])
    assert info.value.slug == "a2c2-data-empty"


def test_shadow_records_train_with_a_key_mapping() -> None:
    shadow = {
        "type": "shadow",
        "features": [0.5, -0.5],
        "actions_a": [[0.0], [1.0]],
        "actions_b": [[0.0], [0.9]],
        "latency_ms": 30.0,
        "executed_actions": [[0.05], [1.1]],
    }
    data = dataset_from_records([shadow], RecordKeys(base="actions_a"))
    np.testing.assert_allclose(data.y, [[0.05], [0.1]], atol=1e-6)
