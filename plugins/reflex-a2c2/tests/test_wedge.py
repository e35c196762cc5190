"""The A2C2 wedge composed with the core's chain around a deterministic fake policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
import reflex_a2c2
from prometheus_client import CollectorRegistry
from reflex_a2c2 import MLPHead, build_inputs, input_width, load_head
from reflex_a2c2.onnx_export import export_onnx

from reflex_core.errors import ConfigError
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.testing import FakeBatchPolicy, enable, make_request
from reflex_core.plugin.wedges import ActRequest, ActResult, WedgeContext, enabled_wedges

from .conftest import random_head

F, D, T = 8, 3, 5  # FakeBatchPolicy's feature_dim, action_dim, chunk_size


def position_head() -> MLPHead:
    """Linear head: residual_k = position_k * (1, 0, 0), so step k's norm is k / (T - 1)."""
    width = input_width(F, D)
    w = np.zeros((width, D), np.float32)
    w[F + 3 * D, 0] = 1.0  # the position column
    return MLPHead(
        weights=[w],
        biases=[np.zeros(D, np.float32)],
        x_mean=np.zeros(width, np.float32),
        x_std=np.ones(width, np.float32),
        y_scale=np.ones(D, np.float32),
        feature_dim=F,
        action_dim=D,
    )


@pytest.fixture
def chain(wedge_chain: Any) -> Callable[..., tuple[Any, WedgeContext]]:
    """``chain(head_path, policy=None, registry=None, policies=None, **options)``: the A2C2
    wedge with these settings around ``policy`` -> (handler, ctx)."""

    def build(
        head_path: Path,
        policy: Any = None,
        registry: CollectorRegistry | None = None,
        policies: dict[str, Any] | None = None,
        **options: Any,
    ) -> tuple[Any, WedgeContext]:
        built = wedge_chain(
            policy or FakeBatchPolicy(),
            enable(reflex_a2c2, {"a2c2_head": str(head_path), **options}),
            policies=policies,
            metrics=registry,
        )
        return built.handler, built.ctx

    return build


def _request(i: int = 0, age_ms: float = 0.0, **kw: Any) -> ActRequest:
    rng = np.random.default_rng(i)
    return make_request(
        rng.standard_normal(4),
        noise=rng.standard_normal((T, 6)).astype(np.float32),
        received_ns=time.monotonic_ns() - int(age_ms * 1e6),
        **kw,
    )


def _base(request: ActRequest) -> tuple[np.ndarray, np.ndarray]:
    (result,) = asyncio.run(FakeBatchPolicy()([request]))
    return result.actions, result.features


def test_below_threshold_passes_the_chunk_through(chain: Any, tmp_path: Path) -> None:
    head_path = random_head().save(tmp_path / "head.npz")
    handler, _ = chain(head_path, a2c2_latency_threshold_ms=50.0)
    request = _request(age_ms=0.0)
    result = asyncio.run(handler(request))
    np.testing.assert_array_equal(result.actions, _base(request)[0])
    assert result.metadata["correction"]["applied"] is False
    assert result.metadata["correction"]["reason"] == "below-threshold"


def test_above_threshold_adds_the_heads_residual(chain: Any, tmp_path: Path) -> None:
    head = random_head()
    head_path = head.save(tmp_path / "head.npz")
    registry = CollectorRegistry()
    handler, ctx = chain(head_path, registry=registry, a2c2_latency_threshold_ms=50.0)
    request = _request(age_ms=120.0)
    result = asyncio.run(handler(request))
    note = result.metadata["correction"]
    assert note["applied"] is True and note["reason"] == "applied"
    assert note["latency_ms"] >= 120.0
    base, features = _base(request)
    expected = base + head.predict(build_inputs(features, base, note["latency_ms"]))
    np.testing.assert_allclose(result.actions, expected, atol=1e-5)
    assert not np.allclose(result.actions, base)
    residual_norms = np.linalg.norm(result.actions - base, axis=1)
    assert note["residual_norm"] == pytest.approx(residual_norms.max(), rel=1e-3)
    assert note["steps_corrected"] == T and note["steps_kept"] == 0
    assert registry.get_sample_value("reflex_a2c2_chunks_total", {"outcome": "applied"}) == 1
    assert registry.get_sample_value("reflex_a2c2_residual_norm_count") == T
    assert ctx.health["a2c2"]()["max_norm"] == 1.0  # the head's suggested bound


def test_capture_delay_counts_towards_the_latency(chain: Any, tmp_path: Path) -> None:
    head_path = random_head().save(tmp_path / "head.npz")
    handler, _ = chain(head_path, a2c2_latency_threshold_ms=50.0)
    fresh_capture = _request(capture_time_ns=time.time_ns() - 80_000_000)
    result = asyncio.run(handler(fresh_capture))
    assert result.metadata["correction"]["applied"] is True
    assert result.metadata["correction"]["latency_ms"] >= 80.0
    # a capture time an hour off is clock skew, not latency
    skewed = _request(capture_time_ns=time.time_ns() - 3_600_000_000_000)
    result = asyncio.run(handler(skewed))
    assert result.metadata["correction"]["reason"] == "below-threshold"


def test_norm_bound_per_action_keeps_only_the_big_steps(chain: Any, tmp_path: Path) -> None:
    head_path = position_head().save(tmp_path / "pos.npz")
    registry = CollectorRegistry()
    # norms are 0, .25, .5, .75, 1: a bound of 0.6 keeps the last two steps uncorrected
    handler, _ = chain(head_path, registry=registry, a2c2_max_norm=0.6)
    request = _request(age_ms=10.0)
    result = asyncio.run(handler(request))
    base, _ = _base(request)
    diff = result.actions - base
    np.testing.assert_allclose(diff[:, 0], [0.0, 0.25, 0.5, 0.0, 0.0], atol=1e-6)
    np.testing.assert_allclose(diff[:, 1:], 0.0, atol=1e-7)
    note = result.metadata["correction"]
    assert note["applied"] is True and note["steps_corrected"] == 3 and note["steps_kept"] == 2
    assert registry.get_sample_value("reflex_a2c2_steps_total", {"result": "kept"}) == 2


def test_norm_bound_per_chunk_keeps_the_whole_chunk(chain: Any, tmp_path: Path) -> None:
    head_path = position_head().save(tmp_path / "pos.npz")
    handler, _ = chain(head_path, a2c2_max_norm=0.6, a2c2_norm_scope="chunk")
    request = _request(age_ms=10.0)
    result = asyncio.run(handler(request))
    np.testing.assert_array_equal(result.actions, _base(request)[0])
    assert result.metadata["correction"] == {
        **result.metadata["correction"],
        "applied": False,
        "reason": "norm-bound",
    }
    handler, _ = chain(head_path, a2c2_max_norm=1.5, a2c2_norm_scope="chunk")
    assert asyncio.run(handler(_request(age_ms=10.0))).metadata["correction"]["applied"] is True


def test_chunks_without_features_pass_uncorrected(chain: Any, tmp_path: Path) -> None:
    head_path = random_head().save(tmp_path / "head.npz")
    fake = FakeBatchPolicy()

    async def no_features(requests: Any) -> list[ActResult]:
        return [ActResult(actions=r.actions, metadata=r.metadata) for r in await fake(requests)]

    handler, _ = chain(head_path, policy=no_features)
    result = asyncio.run(handler(_request(age_ms=100.0)))
    assert result.metadata["correction"]["reason"] == "no-features"


def test_batch_rows_are_corrected_independently(
    tmp_path: Path, wedge_chain: Any, chain: Any
) -> None:
    """Inside the batching stage: the head runs once per batch, each row gets its own fix."""
    import reflex_batching

    head_path = random_head().save(tmp_path / "head.npz")
    fake = FakeBatchPolicy()
    batched = wedge_chain(
        fake,
        enable(reflex_a2c2, {"a2c2_head": str(head_path)}),
        enable(reflex_batching, {"max_batch": 4}),
    )
    handler = batched.handler
    assert batched.names == ["batching", "a2c2"]
    solo, _ = chain(head_path)
    requests = [_request(i, age_ms=60.0) for i in range(4)]

    async def main() -> tuple[list[ActResult], list[ActResult]]:
        together = await asyncio.gather(*(handler(r) for r in requests))
        alone = [await solo(r) for r in requests]
        return together, alone

    together, alone = asyncio.run(main())
    assert fake.calls == [4]
    for t, a in zip(together, alone, strict=True):
        assert t.metadata["correction"]["applied"] and a.metadata["correction"]["applied"]
        # latency differs by the time between the two runs; the head is smooth in it
        np.testing.assert_allclose(t.actions, a.actions, atol=1e-3)
    assert not np.allclose(together[0].actions, together[1].actions)


def test_onnx_head_matches_the_numpy_head(chain: Any, tmp_path: Path) -> None:
    head = random_head(seed=3)
    onnx_path = export_onnx(head, tmp_path / "head.onnx")
    onnx_head = load_head(onnx_path)
    assert (onnx_head.feature_dim, onnx_head.action_dim) == (F, D)
    assert onnx_head.suggested_max_norm == pytest.approx(1.0)
    x = np.random.default_rng(0).standard_normal((37, input_width(F, D))).astype(np.float32)
    np.testing.assert_allclose(onnx_head.predict(x), head.predict(x), atol=1e-5)
    handler, _ = chain(onnx_path)
    result = asyncio.run(handler(_request(age_ms=30.0)))
    assert result.metadata["correction"]["applied"] is True


def test_npz_round_trip(tmp_path: Path) -> None:
    head = random_head(seed=4)
    loaded = load_head(head.save(tmp_path / "h.npz"))
    x = np.random.default_rng(1).standard_normal((9, input_width(F, D))).astype(np.float32)
    np.testing.assert_array_equal(loaded.predict(x), head.predict(x))
    assert loaded.suggested_max_norm == pytest.approx(1.0)


def test_config_errors(tmp_path: Path, wedge_chain: Any, chain: Any) -> None:
    with pytest.raises(ConfigError) as info:
        chain(tmp_path / "missing.npz")
    assert info.value.slug == "a2c2-head-missing"
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(ConfigError) as info:
        chain(junk)
    assert info.value.slug == "a2c2-head-invalid"
    head_path = random_head().save(tmp_path / "head.npz")
    with pytest.raises(ConfigError) as info:
        chain(head_path, policies={"default": SimpleNamespace(feature_dim=16, action_dim=3)})
    assert info.value.slug == "a2c2-head-mismatch"
    unbounded = position_head().save(tmp_path / "unbounded.npz")
    with pytest.raises(ConfigError) as info:
        chain(unbounded)
    assert info.value.slug == "a2c2-max-norm-required"
    # a bound alone switches the wedge on, and is refused without a head
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"a2c2": reflex_a2c2})
    (wedge,) = enabled_wedges(pm.registry.wedges, {"a2c2": {"a2c2_max_norm": 0.5}})
    with pytest.raises(ConfigError) as info:
        wedge_chain(FakeBatchPolicy(), wedge)
    assert info.value.slug == "a2c2-needs-head"
    with pytest.raises(ConfigError) as info:
        chain(head_path, a2c2_norm_scope="episode")
    assert info.value.slug == "invalid-config-value"


def test_observation_age_adds_the_capture_delay_and_ignores_skew() -> None:
    from reflex_core.plugin.kit.observation_age import observation_age_ms

    mono, wall = 5_000_000_000, 1_700_000_000_000_000_000
    received = mono - 30_000_000  # 30 ms in the server
    plain = make_request([0.0] * 4, received_ns=received)
    assert observation_age_ms(plain, mono_now_ns=mono, wall_now_ns=wall) == pytest.approx(30.0)
    # captured 50 ms before it was received
    captured = make_request(
        [0.0] * 4, received_ns=received, capture_time_ns=wall - 30_000_000 - 50_000_000
    )
    assert observation_age_ms(captured, mono_now_ns=mono, wall_now_ns=wall) == pytest.approx(80.0)
    for skewed in (wall + 5_000_000_000, wall - 60_000_000_000):  # future, a minute off
        request = make_request([0.0] * 4, received_ns=received, capture_time_ns=skewed)
        assert observation_age_ms(request, mono_now_ns=mono, wall_now_ns=wall) == pytest.approx(
            30.0
        )
