"""The router wedge composed with the core's chain around fake policies A and B."""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reflex_router
from prometheus_client import CollectorRegistry
from reflex_router import episode_percentile

from reflex_core.errors import ConfigError, ValidationError
from reflex_core.plugin.kit.jsonl import read_jsonl
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.testing import (
    FakeBatchPolicy,
    FakePolicyInfo,
    FakePolicySet,
    enable,
    make_request,
)
from reflex_core.plugin.wedges import ActResult, WedgeContext, enabled_wedges


def _served() -> dict[str, FakePolicyInfo]:
    """The slot the server itself serves."""
    return {"default": FakePolicyInfo("default", {"model_version": "v-served"})}


def _load(source: Any, slot: str) -> FakePolicyInfo:
    """``ctx.load_policy``'s double: the version names the artifact directory."""
    return FakePolicyInfo(slot, {"model_version": f"v-{Path(source).name}"})


@pytest.fixture
def chain(wedge_chain: Any) -> Callable[..., tuple[Any, WedgeContext]]:
    """``chain(fakes, registry=None, **options)``: the router with these settings around the
    fake policies -> (handler, ctx)."""

    def build(
        fakes: dict[str, FakeBatchPolicy], registry: CollectorRegistry | None = None, **options: Any
    ) -> tuple[Any, WedgeContext]:
        built = wedge_chain(
            FakePolicySet(fakes),
            enable(reflex_router, options),
            policies=_served(),
            metrics=registry,
            policy_loader=_load,
        )
        return built.handler, built.ctx

    return build


def _state(i: int) -> np.ndarray:
    return np.random.default_rng(i).standard_normal(4).astype(np.float32)


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, labels) or 0.0


def test_episode_percentile_is_sha256_based_and_stable() -> None:
    digest = hashlib.sha256(b"episode-42").digest()
    expected = (int.from_bytes(digest[:8], "big") % 10_000) / 100.0
    assert episode_percentile("episode-42") == pytest.approx(expected)
    assert 0 <= episode_percentile("") < 100


def test_split_is_sticky_per_episode_and_close_to_the_split(chain: Any) -> None:
    fakes = {"default": FakeBatchPolicy(seed=0), "b": FakeBatchPolicy(seed=1)}
    handler, ctx = chain(fakes, policy_b="/models/candidate", split=20.0)

    async def main() -> dict[str, set[str]]:
        slots: dict[str, set[str]] = {}
        for step in range(3):
            for ep in range(200):
                result = await handler(make_request(_state(ep), episode_id=f"ep-{ep}", seq=step))
                slots.setdefault(f"ep-{ep}", set()).add(result.metadata["policy_slot"])
        return slots

    slots = asyncio.run(main())
    assert all(len(s) == 1 for s in slots.values())  # never switched mid-episode
    to_b = [ep for ep, s in slots.items() if s == {"b"}]
    assert to_b == [ep for ep in slots if episode_percentile(ep) < 20.0]
    assert 0.12 < len(to_b) / 200 < 0.28
    # the requests really ran on the slot's policy
    assert sum(fakes["b"].calls) == 3 * len(to_b)
    assert sum(fakes["default"].calls) == 3 * (200 - len(to_b))


def test_metadata_and_headers_name_the_slot_and_version(chain: Any) -> None:
    fakes = {"a": FakeBatchPolicy(seed=0), "b": FakeBatchPolicy(seed=1)}
    handler, ctx = chain(fakes, policy_a="/m/base-v3", policy_b="/m/cand-v4", split=100.0)
    result = asyncio.run(handler(make_request(_state(0), episode_id="e1")))
    assert result.metadata["policy_slot"] == "b"
    assert result.metadata["model_version"] == "v-cand-v4"
    assert result.metadata["router"] == {"slot": "b", "sticky": True}
    assert result.metadata["headers"] == {
        "X-Reflex-Policy-Slot": "b",
        "X-Reflex-Model-Version": "v-cand-v4",
    }
    assert result.metadata["policy"] == "b"  # what the policy below saw as request.policy
    assert set(ctx.policies) == {"default", "a", "b"}


def test_requests_without_episode_are_routed_per_request(chain: Any) -> None:
    fakes = {"default": FakeBatchPolicy(seed=0), "b": FakeBatchPolicy(seed=1)}
    registry = CollectorRegistry()
    handler, _ = chain(fakes, registry, policy_b="/m/cand", split=30.0)

    async def main() -> list[ActResult]:
        return [await handler(make_request(_state(i))) for i in range(400)]

    results = asyncio.run(main())
    assert all(r.metadata["router"]["sticky"] is False for r in results)
    share_b = sum(r.metadata["policy_slot"] == "b" for r in results) / len(results)
    assert 0.2 < share_b < 0.4
    assert _sample(registry, "reflex_router_requests_total", slot="b", sticky="false") == round(
        share_b * 400
    )


def test_a_failing_slot_is_drained_then_retried_after_cooldown(chain: Any) -> None:
    fakes = {"default": FakeBatchPolicy(seed=0), "b": FakeBatchPolicy(seed=1, fail_next=3)}
    registry = CollectorRegistry()
    handler, ctx = chain(
        fakes, registry, policy_b="/m/cand", split=100.0, router_trip_after=3,
        router_cooldown_s=0.2,
    )  # fmt: skip

    async def main() -> list[Any]:
        outcomes: list[Any] = []
        for i in range(5):
            try:
                outcomes.append(await handler(make_request(_state(i), episode_id="ep")))
            except Exception as exc:
                outcomes.append(exc)
        await asyncio.sleep(0.25)  # cool-down over: B is tried again and now works
        outcomes.append(await handler(make_request(_state(9), episode_id="ep")))
        return outcomes

    outcomes = asyncio.run(main())
    assert all(isinstance(o, Exception) for o in outcomes[:3])
    for drained in outcomes[3:5]:
        assert drained.metadata["policy_slot"] == "a"
        assert drained.metadata["router"]["drained_from"] == "b"
    assert outcomes[5].metadata["policy_slot"] == "b"
    assert "drained_from" not in outcomes[5].metadata["router"]
    assert _sample(registry, "reflex_router_drained_total", from_slot="b") == 2
    assert _sample(registry, "reflex_router_slot_errors_total", slot="b") == 3
    assert _sample(registry, "reflex_router_slot_available", slot="b") == 1
    status = ctx.health["router"]()
    assert status["slots"]["b"]["trips"] == 1 and status["degraded"] is False


class Rejecting(FakeBatchPolicy):
    """A slot that turns every request away as bad input: the caller's fault, not the slot's."""

    async def __call__(self, requests: Any) -> list[ActResult]:
        raise ValidationError("state has the wrong length", slug="state-length-mismatch")


@pytest.mark.parametrize(
    ("slot_b", "error", "calls", "trip_after", "tripped", "last_error"),
    [
        pytest.param(
            functools.partial(FakeBatchPolicy, seed=1, fail_next=99),
            RuntimeError,
            2,
            2,
            True,
            "PolicyFailure",
            id="failing-slot-trips-and-degrades",
        ),
        pytest.param(
            functools.partial(Rejecting, seed=1),
            ValidationError,
            3,
            1,
            False,
            None,
            id="bad-input-does-not-trip",
        ),
    ],
)
def test_health_reports_a_slot_tripped_by_its_own_failures(
    chain: Any,
    slot_b: Callable[[], FakeBatchPolicy],
    error: type[Exception],
    calls: int,
    trip_after: int,
    tripped: bool,
    last_error: str | None,
) -> None:
    fakes = {"default": FakeBatchPolicy(seed=0), "b": slot_b()}
    handler, ctx = chain(fakes, policy_b="/m/cand", split=100.0, router_trip_after=trip_after)

    async def main() -> None:
        for _ in range(calls):
            with pytest.raises(error):
                await handler(make_request(_state(0), episode_id="ep"))

    asyncio.run(main())
    status = ctx.health["router"]()
    assert status["degraded"] is tripped
    assert status["slots"]["b"]["available"] is not tripped
    assert status["slots"]["b"]["last_error"] == last_error


def test_shadow_answers_with_a_and_records_both(chain: Any, tmp_path: Path) -> None:
    log_path = tmp_path / "shadow.jsonl"
    # B is slow: the caller must not wait for it.
    fakes = {
        "default": FakeBatchPolicy(seed=0, fixed_s=0.01),
        "b": FakeBatchPolicy(seed=1, fixed_s=0.2),
    }
    registry = CollectorRegistry()
    handler, ctx = chain(fakes, registry, policy_b="/m/cand", shadow=True, shadow_log=str(log_path))
    requests = [make_request(_state(i), episode_id=f"ep-{i}", seq=i) for i in range(3)]

    async def main() -> tuple[list[ActResult], float]:
        t0 = time.perf_counter()
        results = await asyncio.gather(*(handler(r) for r in requests))
        elapsed = time.perf_counter() - t0
        for close in ctx.on_shutdown:
            await close()
        return results, elapsed

    results, elapsed = asyncio.run(main())
    assert elapsed < 0.15  # answered on A's time, not A + B
    assert all(r.metadata["policy_slot"] == "a" for r in results)
    assert all(r.metadata["router"]["shadow"] == {"mirrored": True} for r in results)
    scan = read_jsonl(log_path)
    assert len(scan.records) == 3 and scan.bad_lines == []
    by_id = {rec["request_id"]: rec for rec in scan.records}
    for request, result in zip(requests, results, strict=True):
        rec = by_id[request.request_id]
        actions_a = np.asarray(rec["actions_a"])
        actions_b = np.asarray(rec["actions_b"])
        np.testing.assert_allclose(actions_a, result.actions, atol=1e-6)
        assert rec["l2"] == pytest.approx(float(np.linalg.norm(actions_b - actions_a)), rel=1e-6)
        assert rec["max_abs"] == pytest.approx(float(np.abs(actions_b - actions_a).max()))
        assert rec["l2"] > 0
        assert rec["model_version_a"] == "v-served" and rec["model_version_b"] == "v-cand"
        assert rec["episode_id"] == request.episode_id and rec["latency_ms"] > 0
        assert len(rec["features"]) == 8
    assert _sample(registry, "reflex_router_shadow_l2_count") == 3
    assert _sample(registry, "reflex_router_shadow_total", outcome="compared") == 3


def test_shadow_shares_the_noise_so_identical_models_agree(chain: Any, tmp_path: Path) -> None:
    fakes = {"default": FakeBatchPolicy(seed=5), "b": FakeBatchPolicy(seed=5)}
    handler, ctx = chain(
        fakes, policy_b="/m/same", shadow=True, shadow_log=str(tmp_path / "s.jsonl")
    )

    async def main() -> None:
        for i in range(4):
            await handler(make_request(_state(i)))  # no noise given: the router draws one
        for close in ctx.on_shutdown:
            await close()

    asyncio.run(main())
    records = read_jsonl(tmp_path / "s.jsonl").records
    assert len(records) == 4
    assert all(rec["l2"] == 0.0 for rec in records)


def test_shadow_failure_of_b_never_reaches_the_caller(chain: Any, tmp_path: Path) -> None:
    fakes = {"default": FakeBatchPolicy(seed=0), "b": FakeBatchPolicy(seed=1, fail_next=5)}
    registry = CollectorRegistry()
    handler, ctx = chain(
        fakes, registry, policy_b="/m/cand", shadow=True, shadow_log=str(tmp_path / "s.jsonl")
    )

    async def main() -> ActResult:
        result = await handler(make_request(_state(0), episode_id="e"))
        for close in ctx.on_shutdown:
            await close()
        return result

    result = asyncio.run(main())
    assert result.metadata["policy_slot"] == "a"
    (rec,) = read_jsonl(tmp_path / "s.jsonl").records
    assert rec["error_b"] == "PolicyFailure" and rec["actions_b"] is None and rec["l2"] is None
    assert _sample(registry, "reflex_router_shadow_total", outcome="b_error") == 1


def test_shadow_split_mirrors_a_sticky_share_of_episodes(chain: Any) -> None:
    fakes = {"default": FakeBatchPolicy(seed=0, fixed_s=0.002), "b": FakeBatchPolicy(seed=1)}
    handler, ctx = chain(fakes, policy_b="/m/cand", shadow=True, split=25.0)

    async def main() -> list[ActResult]:
        results = [await handler(make_request(_state(i), episode_id=f"e{i}")) for i in range(80)]
        for close in ctx.on_shutdown:
            await close()
        return results

    results = asyncio.run(main())
    mirrored = [r.metadata["router"]["shadow"]["mirrored"] for r in results]
    assert mirrored == [episode_percentile(f"e{i}") < 25.0 for i in range(80)]
    assert sum(fakes["b"].calls) == sum(mirrored)


def test_shadow_backlog_skips_mirroring_instead_of_piling_up(chain: Any) -> None:
    fakes = {"default": FakeBatchPolicy(seed=0), "b": FakeBatchPolicy(seed=1, fixed_s=0.1)}
    registry = CollectorRegistry()
    handler, ctx = chain(fakes, registry, policy_b="/m/cand", shadow=True, shadow_max_pending=4)

    async def main() -> list[ActResult]:
        results = await asyncio.gather(*(handler(make_request(_state(i))) for i in range(10)))
        for close in ctx.on_shutdown:
            await close()
        return results

    results = asyncio.run(main())
    notes = [r.metadata["router"]["shadow"] for r in results]
    assert sum(n["mirrored"] for n in notes) == 4
    assert sum(n.get("skipped") == "shadow-backlog" for n in notes) == 6
    assert _sample(registry, "reflex_router_shadow_total", outcome="skipped") == 6


def test_router_and_batching_keep_slots_in_separate_batches(chain: Any, wedge_chain: Any) -> None:
    import reflex_batching

    fakes = {"default": FakeBatchPolicy(seed=0, fixed_s=0.01), "b": FakeBatchPolicy(seed=1)}
    built = wedge_chain(
        FakePolicySet(fakes),
        enable(reflex_router, {"policy_b": "/m/cand", "split": 50.0}),
        enable(reflex_batching, {"max_batch": 16, "batch_timeout_ms": 20.0}),
        policies=_served(),
        policy_loader=_load,
    )
    handler, names = built.handler, built.names
    assert names == ["router", "batching"]

    async def main() -> list[ActResult]:
        reqs = [make_request(_state(i), episode_id=f"ep{i}") for i in range(16)]
        return await asyncio.gather(*(handler(r) for r in reqs))

    results = asyncio.run(main())
    for fake in fakes.values():
        assert all(len(set(seen)) == 1 for seen in fake.policies_seen)
    sizes = {r.metadata["policy_slot"]: r.metadata["batch"]["size"] for r in results}
    assert sizes["a"] + sizes["b"] == 16


def test_config_errors(chain: Any, wedge_chain: Any) -> None:
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"router": reflex_router})
    # each of these switches the router on, and is refused without a policy B
    for lone in ({"policy_a": "/m/a"}, {"split": 20.0}, {"shadow": True}):
        (wedge,) = enabled_wedges(pm.registry.wedges, {"router": lone})
        with pytest.raises(ConfigError) as info:
            wedge_chain(FakePolicySet({}), wedge, policies=_served(), policy_loader=_load)
        assert info.value.slug == "router-needs-policy-b"
    with pytest.raises(ConfigError) as info:
        enabled_wedges(pm.registry.wedges, {"router": {"policy_b": "/m/b", "split": 120.0}})
    assert info.value.slug == "invalid-config-value"
    assert enabled_wedges(pm.registry.wedges, {"router": {}}) == []
