"""reflex_core.plugin.kit.collectors.Collectors: a wedge's collectors on the server's registry or a private one."""

from __future__ import annotations

from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from reflex_core.plugin.kit.collectors import Collectors


def test_collectors_go_to_the_given_registry_with_zeros_exported() -> None:
    registry = CollectorRegistry()
    c = Collectors(registry)
    assert c.registry is registry
    decisions = c.counter("t_decisions_total", "decisions", ["verdict"], zeros=("pass", "reject"))
    moves = c.counter("t_moves", "moves", ["kind", "joint"], zeros=[("clamp", "j1")])
    depth = c.gauge("t_depth", "depth")
    sizes = c.histogram("t_size", "size", ["policy"], buckets=(1, 2, 4))
    decisions.labels("pass").inc()
    depth.set(3)
    sizes.labels("default").observe(3)
    text = generate_latest(registry).decode()
    assert 't_decisions_total{verdict="pass"} 1.0' in text
    assert 't_decisions_total{verdict="reject"} 0.0' in text  # before the first event
    assert 't_moves_total{joint="j1",kind="clamp"} 0.0' in text
    assert "t_depth 3.0" in text
    assert 't_size_bucket{le="2.0",policy="default"} 0.0' in text
    assert 't_size_bucket{le="4.0",policy="default"} 1.0' in text
    assert moves is not None


def test_without_a_server_registry_each_gets_a_private_one() -> None:
    first, second = Collectors(None), Collectors(None)
    assert first.registry is not second.registry and first.registry is not REGISTRY
    # the same name twice in one process does not collide
    first.counter("t_private_total", "x").inc()
    second.counter("t_private_total", "x")
    assert "t_private_total 1.0" in generate_latest(first.registry).decode()


def test_a_collector_set_creates_each_declared_collector_once() -> None:
    import attrs
    from prometheus_client import Counter, Gauge, Histogram

    from reflex_core.plugin.kit.collectors import CollectorSet, counter, gauge, histogram

    @attrs.frozen
    class Declared(CollectorSet):
        decisions: Counter = counter("t_set_decisions", "decisions", ["verdict"], zeros=["pass"])
        depth: Gauge = gauge("t_set_depth", "depth")
        sizes: Histogram = histogram("t_set_size", "size", ["policy"], buckets=(1, 4))
        note: str = "not a collector"

    registry = CollectorRegistry()
    made = Declared.create(registry)
    made.decisions.labels("reject").inc()
    made.depth.set(2)
    made.sizes.labels("default").observe(3)
    text = generate_latest(registry).decode()
    assert 't_set_decisions_total{verdict="pass"} 0.0' in text
    assert 't_set_decisions_total{verdict="reject"} 1.0' in text
    assert "t_set_depth 2.0" in text
    assert 't_set_size_bucket{le="4.0",policy="default"} 1.0' in text
    assert made.note == "not a collector"
    # without a server registry each set is private: creating it twice does not collide
    assert Declared.create(None).decisions is not Declared.create(None).decisions
