"""The batching wedge composed with the core's chain around a deterministic batched policy."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
import reflex_batching
from prometheus_client import CollectorRegistry

from reflex_core.errors import ConfigError, Unavailable
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.testing import FakeBatchPolicy, PolicyFailure, enable, make_request
from reflex_core.plugin.wedges import ActRequest, ActResult, WedgeContext, enabled_wedges


@pytest.fixture
def chain(wedge_chain: Any) -> Callable[..., tuple[Any, WedgeContext]]:
    """``chain(policy, registry=None, **options)``: the chain ``reflex serve`` would build with
    these batching options -> (handler, ctx)."""

    def build(
        policy: FakeBatchPolicy, registry: CollectorRegistry | None = None, **options: Any
    ) -> tuple[Any, WedgeContext]:
        built = wedge_chain(
            policy,
            enable(reflex_batching, options),
            policies={"default": object()},
            metrics=registry,
        )
        return built.handler, built.ctx

    return build


def _requests(n: int, fake: FakeBatchPolicy, seed: int = 1, **kw: Any) -> list[ActRequest]:
    rng = np.random.default_rng(seed)
    return [
        make_request(
            rng.standard_normal(fake.state_dim),
            noise=rng.standard_normal((fake.chunk_size, fake.max_action_dim)).astype(np.float32),
            **kw,
        )
        for _ in range(n)
    ]


def _sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def test_disabled_without_max_batch(chain: Any) -> None:
    policy = FakeBatchPolicy()
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"batching": reflex_batching})
    assert enabled_wedges(pm.registry.wedges, {"batching": {}}) == []
    assert enabled_wedges(pm.registry.wedges, {"batching": {"max_batch": 1}}) == []
    _, ctx = chain(policy, max_batch=4)
    assert "batching" in ctx.health


def test_invalid_options_are_config_errors(chain: Any) -> None:
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"batching": reflex_batching})
    for bad in ({"max_batch": 0}, {"max_batch": 4, "batch_timeout_ms": -1.0}):
        with pytest.raises(ConfigError) as info:
            enabled_wedges(pm.registry.wedges, {"batching": bad})
        assert info.value.slug == "invalid-config-value"
    # a cost budget without --max-batch is refused, not ignored
    with pytest.raises(ConfigError) as info:
        chain(FakeBatchPolicy(), max_batch_cost_ms=50.0)
    assert info.value.slug == "batching-needs-max-batch"


def test_concurrent_requests_run_as_one_batched_call(chain: Any) -> None:
    policy = FakeBatchPolicy(fixed_s=0.01)
    registry = CollectorRegistry()
    handler, _ = chain(policy, registry, max_batch=8, batch_timeout_ms=1000.0)
    requests = _requests(8, policy)

    async def main() -> list[ActResult]:
        return await asyncio.gather(*(handler(r) for r in requests))

    results = asyncio.run(main())
    assert policy.calls == [8]
    assert all(r.metadata["batch"]["size"] == 8 for r in results)
    assert {r.metadata["batch"]["flush_reason"] for r in results} == {"size"}
    assert _sample(registry, "reflex_batching_batch_size_count", policy="default") == 1
    assert _sample(registry, "reflex_batching_batch_size_sum", policy="default") == 8
    assert _sample(registry, "reflex_batching_flushes_total", policy="default", reason="size") == 1
    assert _sample(registry, "reflex_batching_queue_depth", policy="default") == 0


def test_batched_results_equal_unbatched_results_row_by_row(chain: Any, wedge_chain: Any) -> None:
    """Same observations and noise: every caller gets exactly its own row back."""
    policy = FakeBatchPolicy(fixed_s=0.002)
    requests = _requests(13, policy, seed=7)
    batched, _ = chain(policy, max_batch=5, batch_timeout_ms=50.0)
    unbatched = wedge_chain(FakeBatchPolicy(fixed_s=0.0)).handler  # no wedge at all

    async def main() -> tuple[list[ActResult], list[ActResult]]:
        together = await asyncio.gather(*(batched(r) for r in requests))
        alone = [await unbatched(r) for r in requests]
        return together, alone

    together, alone = asyncio.run(main())
    assert max(policy.calls) > 1  # it really batched
    assert sum(policy.calls) == 13
    for t, a in zip(together, alone, strict=True):
        np.testing.assert_allclose(t.actions, a.actions, atol=1e-5, rtol=0)
        np.testing.assert_allclose(t.features, a.features, atol=1e-5, rtol=0)
    # rows differ from each other, so a mix-up could not pass unnoticed
    assert not np.allclose(together[0].actions, together[1].actions)


def test_lone_request_flushes_on_timeout(chain: Any) -> None:
    policy = FakeBatchPolicy()
    handler, _ = chain(policy, max_batch=8, batch_timeout_ms=30.0)
    (request,) = _requests(1, policy)

    async def main() -> tuple[ActResult, float]:
        t0 = time.perf_counter()
        result = await handler(request)
        return result, time.perf_counter() - t0

    result, elapsed = asyncio.run(main())
    assert result.metadata["batch"]["size"] == 1
    assert result.metadata["batch"]["flush_reason"] == "timeout"
    assert elapsed >= 0.029
    assert elapsed < 1.0


def test_deadline_flushes_before_the_timeout(chain: Any) -> None:
    policy = FakeBatchPolicy()
    handler, _ = chain(policy, max_batch=8, batch_timeout_ms=5000.0)
    (request,) = _requests(1, policy, deadline_ns=time.monotonic_ns() + 40_000_000)

    async def main() -> tuple[ActResult, float]:
        t0 = time.perf_counter()
        result = await handler(request)
        return result, time.perf_counter() - t0

    result, elapsed = asyncio.run(main())
    assert result.metadata["batch"]["flush_reason"] == "deadline"
    assert elapsed < 1.0


def test_policies_never_share_a_batch(chain: Any) -> None:
    policy = FakeBatchPolicy(fixed_s=0.005)
    handler, ctx = chain(policy, max_batch=4, batch_timeout_ms=20.0)
    ra = _requests(4, policy, seed=1, policy="a")
    rb = _requests(4, policy, seed=2, policy="b")

    async def main() -> list[ActResult]:
        return await asyncio.gather(
            *(handler(r) for pair in zip(ra, rb, strict=True) for r in pair)
        )

    results = asyncio.run(main())
    assert all(len(set(seen)) == 1 for seen in policy.policies_seen)
    assert sorted(policy.calls) == [4, 4]
    assert [r.metadata["policy"] for r in results] == ["a", "b"] * 4


def test_cost_budget_caps_the_batch_size(chain: Any) -> None:
    policy = FakeBatchPolicy(fixed_s=0.002)
    registry = CollectorRegistry()
    handler, _ = chain(
        policy, registry, max_batch=8, batch_timeout_ms=1000.0, max_batch_cost_ms=10.0
    )
    scheduler = handler.scheduler
    # What the scheduler would have learned: 4 ms fixed + 2 ms per request.
    for size in (1, 2, 3, 8):
        scheduler.cost_model("default").observe(size, 4.0 + 2.0 * size)
    requests = _requests(9, policy)

    async def main() -> list[ActResult]:
        return await asyncio.gather(*(handler(r) for r in requests))

    results = asyncio.run(main())
    assert max(policy.calls) == 3  # 4 + 2*3 = 10 ms fits, 4 requests would not
    assert sum(policy.calls) == 9
    reasons = {r.metadata["batch"]["flush_reason"] for r in results}
    assert reasons == {"cost"}
    assert _sample(registry, "reflex_batching_flushes_total", policy="default", reason="cost") == 3


def test_cost_model_learns_from_served_batches(chain: Any) -> None:
    policy = FakeBatchPolicy(fixed_s=0.004, per_row_s=0.002)
    handler, _ = chain(policy, max_batch=4, batch_timeout_ms=1.0)

    async def main() -> None:
        await asyncio.gather(*(handler(r) for r in _requests(4, policy)))
        await handler(_requests(1, policy)[0])

    asyncio.run(main())
    known = handler.scheduler.cost_model("default").known()
    assert set(known) == {1, 4}
    assert known[4] > known[1] >= 5.0


def test_full_queue_answers_503_with_retry_after(chain: Any) -> None:
    policy = FakeBatchPolicy(fixed_s=0.05)
    registry = CollectorRegistry()
    handler, _ = chain(policy, registry, max_batch=2, batch_timeout_ms=1.0, max_queue=3)
    requests = _requests(6, policy)

    async def main() -> list[Any]:
        first = asyncio.ensure_future(handler(requests[0]))
        second = asyncio.ensure_future(handler(requests[1]))
        await asyncio.sleep(0.01)  # the first batch is in flight; the queue is empty again
        queued = [asyncio.ensure_future(handler(r)) for r in requests[2:5]]
        await asyncio.sleep(0)
        with pytest.raises(Unavailable) as info:
            await handler(requests[5])
        rest = await asyncio.gather(first, second, *queued)
        return [info.value, *rest]

    error, *results = asyncio.run(main())
    assert error.slug == "queue-full"
    assert error.status == 503
    assert error.retry_after_s is not None and error.retry_after_s > 0
    assert error.to_dict("r1")["error"] == "queue-full"
    assert len(results) == 5  # everything admitted was served
    assert _sample(registry, "reflex_batching_rejected_total", policy="default") == 1


def test_a_failing_batch_fails_every_caller_and_the_next_batch_works(chain: Any) -> None:
    policy = FakeBatchPolicy(fixed_s=0.005, fail_next=1)
    handler, _ = chain(policy, max_batch=3, batch_timeout_ms=1000.0)
    first, second = _requests(3, policy, seed=1), _requests(3, policy, seed=2)

    async def main() -> tuple[list[Any], list[Any]]:
        failed = await asyncio.gather(*(handler(r) for r in first), return_exceptions=True)
        served = await asyncio.gather(*(handler(r) for r in second), return_exceptions=True)
        return failed, served

    failed, served = asyncio.run(main())
    assert policy.calls == [3, 3]
    assert all(isinstance(e, PolicyFailure) for e in failed)
    assert all(isinstance(r, ActResult) for r in served)


@pytest.mark.parametrize(
    ("fixed_s", "timeout_ms", "n", "cancel", "depths", "calls"),
    [
        # a batch of 4 runs (30 ms) when the second caller gives up: the batch is not broken
        pytest.param(0.03, 1000.0, 4, 1, (0, 0), [4], id="while-its-batch-runs"),
        # still queued (the batch waits 60 ms to fill): the caller leaves the queue
        pytest.param(0.0, 60.0, 3, 0, (3, 2), [2], id="while-queued"),
    ],
)
def test_a_cancelled_caller_leaves_the_others_served(
    chain: Any,
    fixed_s: float,
    timeout_ms: float,
    n: int,
    cancel: int,
    depths: tuple[int, int],
    calls: list[int],
) -> None:
    policy = FakeBatchPolicy(fixed_s=fixed_s)
    handler, _ = chain(policy, max_batch=4, batch_timeout_ms=timeout_ms)
    requests = _requests(n, policy)

    async def main() -> list[Any]:
        tasks = [asyncio.ensure_future(handler(r)) for r in requests]
        await asyncio.sleep(0.005)
        assert handler.scheduler.queue_depth("default") == depths[0]
        tasks[cancel].cancel()
        await asyncio.sleep(0)
        assert handler.scheduler.queue_depth("default") == depths[1]
        return await asyncio.gather(*tasks, return_exceptions=True)

    outcome = asyncio.run(main())
    assert policy.calls == calls
    assert isinstance(outcome.pop(cancel), asyncio.CancelledError)
    assert all(isinstance(result, ActResult) for result in outcome)


def test_close_fails_queued_requests_and_refuses_new_ones(chain: Any) -> None:
    policy = FakeBatchPolicy()
    handler, ctx = chain(policy, max_batch=4, batch_timeout_ms=10_000.0)
    (close,) = ctx.on_shutdown
    requests = _requests(2, policy)

    async def main() -> list[Any]:
        task = asyncio.ensure_future(handler(requests[0]))
        await asyncio.sleep(0.005)
        await close()
        late = await asyncio.gather(handler(requests[1]), return_exceptions=True)
        return [*(await asyncio.gather(task, return_exceptions=True)), *late]

    queued, late = asyncio.run(main())
    assert isinstance(queued, Unavailable) and queued.slug == "shutting-down"
    assert isinstance(late, Unavailable) and late.slug == "shutting-down"
    assert policy.calls == []


def test_batch_concurrency_allows_overlapping_batches(chain: Any) -> None:
    policy = FakeBatchPolicy(fixed_s=0.05)
    handler, _ = chain(policy, max_batch=2, batch_timeout_ms=1000.0, batch_concurrency=2)

    async def main() -> float:
        t0 = time.perf_counter()
        await asyncio.gather(*(handler(r) for r in _requests(4, policy)))
        return time.perf_counter() - t0

    elapsed = asyncio.run(main())
    assert policy.calls == [2, 2]
    assert elapsed < 0.095  # two 50 ms batches overlapped


def test_requests_queued_behind_a_batch_wait_for_its_callers_to_return(chain: Any) -> None:
    """Closed-loop clients must not split into half-size cohorts: a request that queued while
    a batch ran waits (up to the timeout, from when the slot freed) for that batch's callers."""
    policy = FakeBatchPolicy(fixed_s=0.1)
    handler, _ = chain(policy, max_batch=2, batch_timeout_ms=60.0)
    a1, a2, c, a3 = _requests(4, policy)

    async def main() -> list[ActResult]:
        first = asyncio.gather(handler(a1), handler(a2))  # size flush, runs 100 ms
        await asyncio.sleep(0.01)
        late = asyncio.ensure_future(handler(c))  # queued behind the running batch
        await first
        await asyncio.sleep(0.02)  # a returning caller sends its next request
        return list(await asyncio.gather(late, handler(a3)))

    results = asyncio.run(main())
    assert policy.calls == [2, 2]
    assert [r.metadata["batch"]["flush_reason"] for r in results] == ["size", "size"]


def test_a_lone_client_stops_paying_the_timeout(chain: Any) -> None:
    policy = FakeBatchPolicy()
    handler, _ = chain(policy, max_batch=8, batch_timeout_ms=30.0)

    async def main() -> list[tuple[str, float]]:
        out = []
        for request in _requests(4, policy):
            t0 = time.perf_counter()
            result = await handler(request)
            out.append((result.metadata["batch"]["flush_reason"], time.perf_counter() - t0))
        return out

    outcome = asyncio.run(main())
    # the first request waits (nothing is known); then the lane expects one caller
    assert [reason for reason, _ in outcome] == ["timeout", "expected", "expected", "expected"]
    assert outcome[0][1] >= 0.029
    assert all(elapsed < 0.025 for _, elapsed in outcome[1:])


def test_eight_closed_loop_clients_flush_as_soon_as_all_are_back(chain: Any) -> None:
    policy = FakeBatchPolicy(fixed_s=0.01)
    handler, _ = chain(policy, max_batch=16, batch_timeout_ms=200.0)

    async def client(index: int) -> list[str]:
        reasons = []
        for request in _requests(4, policy, seed=index):
            await asyncio.sleep(0.001 * index)  # callers come back at slightly different times
            reasons.append((await handler(request)).metadata["batch"]["flush_reason"])
        return reasons

    async def main() -> tuple[list[list[str]], float]:
        t0 = time.perf_counter()
        reasons = await asyncio.gather(*(client(i) for i in range(8)))
        return list(reasons), time.perf_counter() - t0

    reasons, elapsed = asyncio.run(main())
    assert policy.calls == [8, 8, 8, 8]  # one batch per round, never split into cohorts
    assert [r[0] for r in reasons] == ["timeout"] * 8  # round 1: nothing known yet
    assert all(r[1:] == ["expected"] * 3 for r in reasons)
    assert elapsed < 0.2 + 0.5  # only the first round waited out the timeout


def test_company_while_busy_raises_the_expectation(chain: Any) -> None:
    policy = FakeBatchPolicy(fixed_s=0.05)
    handler, _ = chain(policy, max_batch=4, batch_timeout_ms=30.0)
    scheduler = handler.scheduler
    scheduler._lane("default").expected = 1  # a long single-client stretch
    r1, r2 = _requests(2, policy)

    async def main() -> list[ActResult]:
        first = asyncio.ensure_future(handler(r1))  # expected company is there: runs at once
        await asyncio.sleep(0.01)
        second = asyncio.ensure_future(handler(r2))  # a second client, while busy
        return list(await asyncio.gather(first, second))

    results = asyncio.run(main())
    assert results[0].metadata["batch"]["flush_reason"] == "expected"
    # r2 now waits for r1's caller (expected 2); it does not come back in this test
    assert results[1].metadata["batch"]["flush_reason"] == "timeout"
    assert scheduler._lane("default").expected == 1
