"""Wedge composition: declared order whatever the registration order, the batching bridge,
request-level vs batch-level handlers."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from types import SimpleNamespace
from typing import Any

import attrs
import numpy as np
import pytest

from reflex_core.errors import ConfigError
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.options import Option
from reflex_core.plugin.registry import WedgeSpec
from reflex_core.plugin.wedges import (
    ActRequest,
    ActResult,
    EnabledWedge,
    Stage,
    WedgeContext,
    answering_slot,
    compose,
    enabled_wedges,
    unbatched,
)
from reflex_core.wire.types import Observation


@attrs.frozen
class NoConfig:
    pass


def request(value: float, rid: str) -> ActRequest:
    obs = Observation(state=np.float32([value]))
    return ActRequest(observation=obs, request_id=rid, received_ns=0)


class Policy:
    """A tiny batched policy: one call per batch, each row's actions derived from its state."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []

    async def __call__(self, requests: Sequence[ActRequest]) -> list[ActResult]:
        assert isinstance(requests, list)
        self.batches.append([r.request_id for r in requests])
        await asyncio.sleep(0)
        return [
            ActResult(
                actions=np.full((2, 3), r.observation.state[0], np.float32),
                metadata={"trace": [], "policy": r.policy},
            )
            for r in requests
        ]


def tracing(name: str, stage: int, trace: list[str]) -> WedgeSpec:
    """A request-level (or batch-level, inside BATCHING) wedge that records its way in and out."""

    def factory(config: Any, next: Callable[..., Any], ctx: WedgeContext) -> Callable[..., Any]:
        batch_level = stage > Stage.BATCHING

        async def handle(arg: Any) -> Any:
            if batch_level:
                assert isinstance(arg, list) and all(isinstance(r, ActRequest) for r in arg)
            else:
                assert isinstance(arg, ActRequest)
            trace.append(f"in:{name}")
            out = await next(arg)
            trace.append(f"out:{name}")
            for result in out if batch_level else [out]:
                result.metadata["trace"].append(name)
            return out

        return handle

    return WedgeSpec(
        name=name,
        stage=stage,
        config_cls=NoConfig,
        options=(),
        factory=factory,
        is_enabled=lambda config: True,
    )


def batching(name: str, size: int, seen: list[list[str]]) -> WedgeSpec:
    """A bridge that holds requests until ``size`` have arrived, then runs them as one batch."""

    def factory(config: Any, next_batch: Callable[..., Any], ctx: WedgeContext) -> Any:
        pending: list[tuple[ActRequest, asyncio.Future[ActResult]]] = []

        async def handle(req: ActRequest) -> ActResult:
            future: asyncio.Future[ActResult] = asyncio.get_running_loop().create_future()
            pending.append((req, future))
            if len(pending) == size:
                batch = pending[:]
                pending.clear()
                seen.append([r.request_id for r, _ in batch])
                results = await next_batch([r for r, _ in batch])
                for (_, fut), result in zip(batch, results, strict=True):
                    fut.set_result(result)
            return await future

        return handle

    return WedgeSpec(
        name=name,
        stage=Stage.BATCHING,
        config_cls=NoConfig,
        options=(),
        factory=factory,
        is_enabled=lambda config: True,
    )


def enable(*specs: WedgeSpec) -> list[EnabledWedge]:
    return [EnabledWedge(spec=s, config=NoConfig()) for s in specs]


CTX = WedgeContext(policies={})

DECLARED = ["guard", "smoothing", "slo", "deadline", "router", "correction"]


def all_stages(trace: list[str]) -> list[WedgeSpec]:
    return [
        tracing("guard", Stage.GUARD, trace),
        tracing("smoothing", Stage.GUARD + 5, trace),  # a third party between two stages
        tracing("slo", Stage.SLO, trace),
        tracing("deadline", Stage.DEADLINE, trace),
        tracing("router", Stage.ROUTER, trace),
        tracing("correction", Stage.CORRECTION, trace),
    ]


@pytest.mark.parametrize("seed", range(5))
def test_order_is_the_declared_stage_order_whatever_the_input_order(seed: int) -> None:
    trace: list[str] = []
    specs = all_stages(trace)
    random.Random(seed).shuffle(specs)
    policy = Policy()
    handler, names = compose(enable(*specs), policy, CTX)
    assert names == DECLARED
    result = asyncio.run(handler(request(1.0, "r1")))
    # in outermost first, out innermost first; the response passed every wedge on its way back
    assert trace == [f"in:{n}" for n in DECLARED] + [f"out:{n}" for n in reversed(DECLARED)]
    assert result.metadata["trace"] == list(reversed(DECLARED))
    np.testing.assert_array_equal(result.actions, np.ones((2, 3), np.float32))


def test_same_stage_ties_are_broken_by_name() -> None:
    trace: list[str] = []
    specs = [tracing(n, Stage.SLO, trace) for n in ("zeta", "alpha", "mid")]
    for order in (specs, specs[::-1]):
        _handler, names = compose(enable(*order), Policy(), CTX)
        assert names == ["alpha", "mid", "zeta"]


def test_two_batching_wedges_conflict() -> None:
    a, b = batching("batch-a", 2, []), batching("batch-b", 2, [])
    with pytest.raises(ConfigError) as info:
        compose(enable(b, a), Policy(), CTX)
    assert info.value.slug == "wedge-conflict"
    assert "batch-a" in info.value.message and "batch-b" in info.value.message


def test_without_a_batching_wedge_each_request_is_a_batch_of_one() -> None:
    trace: list[str] = []
    policy = Policy()
    handler, names = compose(enable(tracing("correction", Stage.CORRECTION, trace)), policy, CTX)
    assert names == ["correction"]

    async def three() -> list[ActResult]:
        return await asyncio.gather(*(handler(request(float(i), f"r{i}")) for i in range(3)))

    results = asyncio.run(three())
    assert sorted(policy.batches) == [["r0"], ["r1"], ["r2"]]
    assert [float(r.actions[0, 0]) for r in results] == [0.0, 1.0, 2.0]


def test_the_batching_bridge_stacks_requests_and_batch_level_wedges_see_lists() -> None:
    trace: list[str] = []
    seen: list[list[str]] = []
    policy = Policy()
    wedges = enable(
        tracing("correction", Stage.CORRECTION, trace),
        batching("batcher", 3, seen),
        tracing("guard", Stage.GUARD, trace),
    )
    handler, names = compose(wedges, policy, CTX)
    assert names == ["guard", "batcher", "correction"]

    async def three() -> list[ActResult]:
        return await asyncio.gather(*(handler(request(float(i), f"r{i}")) for i in range(3)))

    results = asyncio.run(three())
    assert seen == [["r0", "r1", "r2"]]
    assert policy.batches == [["r0", "r1", "r2"]]  # ONE policy call for the three requests
    assert trace.count("in:correction") == 1  # the batch-level wedge ran once, on the list
    assert trace.count("in:guard") == 3  # the request-level wedge once per request
    for i, result in enumerate(results):  # each caller got its own row back
        assert float(result.actions[0, 0]) == float(i)
        assert result.metadata["trace"] == ["correction", "guard"]


def test_unbatched_bridge() -> None:
    policy = Policy()
    result = asyncio.run(unbatched(policy)(request(4.0, "solo")))
    assert policy.batches == [["solo"]]
    assert float(result.actions[0, 0]) == 4.0


@attrs.frozen
class GreetConfig:
    greeting: str | None = None
    times: int = 1


def greet_spec() -> WedgeSpec:
    def factory(config: GreetConfig, next: Callable[..., Any], ctx: WedgeContext) -> Any:
        async def handle(req: ActRequest) -> ActResult:
            result = await next(req)
            result.metadata["greeting"] = config.greeting * config.times
            return result

        return handle

    return WedgeSpec(
        name="greet",
        stage=Stage.GUARD + 1,
        config_cls=GreetConfig,
        options=(Option("--greeting", help="g"), Option("--times", help="n", type=int)),
        factory=factory,
        is_enabled=lambda config: config.greeting is not None,
    )


def test_enabled_wedges_structures_configs_and_keeps_enabled_ones(make_pm: Any) -> None:
    spec = greet_spec()
    assert enabled_wedges({"greet": spec}, {}) == []
    (enabled,) = enabled_wedges({"greet": spec}, {"greet": {"greeting": "hi", "times": 2}})
    assert enabled.config == GreetConfig(greeting="hi", times=2)
    handler, _ = compose([enabled], Policy(), CTX)
    assert asyncio.run(handler(request(0.0, "r"))).metadata["greeting"] == "hihi"
    for bad in ({"greeting": "hi", "times": "lots"}, {"greeting": "hi", "unknown": 1}):
        with pytest.raises(ConfigError) as info:
            enabled_wedges({"greet": spec}, {"greet": bad})
        assert info.value.slug == "invalid-config-value"
        assert "greet" in info.value.message


def test_chain_order_does_not_depend_on_plugin_registration_order(make_pm: Any) -> None:
    """Through real plugin managers: the same wedges registered by plugins in two orders."""
    trace: list[str] = []

    def plugin(spec: WedgeSpec) -> Any:
        @hookimpl
        def reflex_register_wedges(register: Callable[[WedgeSpec], None]) -> None:
            register(spec)

        return SimpleNamespace(reflex_register_wedges=reflex_register_wedges)

    orders = []
    for plugin_names in (("p1", "p2", "p3", "p4"), ("p4", "p3", "p2", "p1")):
        specs = all_stages(trace)[:4]
        pm = make_pm(**{n: plugin(s) for n, s in zip(plugin_names, specs, strict=True)})
        wedges = enabled_wedges(pm.registry.wedges, {})
        orders.append(compose(wedges, Policy(), CTX)[1])
    assert orders[0] == orders[1] == ["guard", "smoothing", "slo", "deadline"]


def test_answering_slot_reads_the_policy_metadata_else_the_requested_slot() -> None:
    req = attrs.evolve(request(1.0, "r"), policy="b")
    chunk = np.zeros((2, 2), np.float32)
    assert answering_slot(req) == "b"
    assert answering_slot(req, ActResult(chunk)) == "b"
    assert answering_slot(req, ActResult(chunk, metadata={"policy": "a"})) == "a"
    assert (
        answering_slot(req, ActResult(chunk, metadata={"policy": {"slot": "shadow"}})) == "shadow"
    )
    assert answering_slot(req, ActResult(chunk, metadata={"policy": {"name": 3}})) == "b"


def test_a_config_validator_message_reaches_the_user() -> None:
    import attrs as _attrs

    from reflex_core.errors import ConfigError
    from reflex_core.plugin.options import positive_float, setting
    from reflex_core.plugin.registry import WedgeSpec, structure_config

    @_attrs.frozen
    class Config:
        rate: float = setting("rate", type=positive_float, default=1.0)

    spec = WedgeSpec(
        name="rated",
        stage=15,
        config_cls=Config,
        factory=lambda config, nxt, ctx: nxt,
        is_enabled=lambda config: True,
    )
    with pytest.raises(ConfigError) as info:
        structure_config(spec, {"rate": -2.0})
    assert info.value.slug == "invalid-config-value"
    assert "rate" in info.value.message and "-2.0" in info.value.message


def test_compose_loads_the_slots_a_wedge_declares_before_its_factory_runs() -> None:
    seen_by_factory: list[list[str]] = []
    loads: list[tuple[str, Any]] = []

    def factory(config: Any, next_handler: Any, ctx: WedgeContext) -> Any:
        seen_by_factory.append(sorted(ctx.policies))
        return next_handler

    spec = WedgeSpec(
        name="two-slots",
        stage=Stage.ROUTER,
        config_cls=NoConfig,
        options=(),
        factory=factory,
        is_enabled=lambda config: True,
        policies=lambda config: {"default": "/m/served", "b": "/m/b"},
    )
    ctx = WedgeContext(policies={"default": object()})

    def load(slot: str, artifact_dir: Any) -> object:
        loads.append((slot, artifact_dir))
        ctx.policies[slot] = policy = object()
        return policy

    ctx.load_policy = load
    compose(enable(spec), lambda requests: requests, ctx)
    assert loads == [("b", "/m/b")]  # a slot already held is not loaded again
    assert seen_by_factory == [["b", "default"]]

    without_loader = WedgeContext(policies={"default": object()})
    with pytest.raises(ConfigError) as info:
        compose(enable(spec), lambda requests: requests, without_loader)
    assert info.value.slug == "policy-loader-unavailable"
    assert "two-slots" in str(info.value)
