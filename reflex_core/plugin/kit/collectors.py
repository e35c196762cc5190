"""Prometheus collectors for wedges, created on the server's registry.

A wedge gets the server's registry as ``ctx.metrics`` (served at ``GET /metrics``). Built outside
a server (a unit test) it gets None, and its collectors go to a private registry instead, never
the process-global default one, so that two wedges in one process never collide::

    collectors = Collectors(ctx.metrics)
    decisions = collectors.counter(
        "reflex_guard_decisions_total", "ActionGuard decisions by verdict", ["verdict"],
        zeros=("pass", "clamped", "rejected"),
    )
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Collectors:
    """Creates collectors on one registry.

    :param registry: the server's registry (``ctx.metrics``); None: a private one.
    :ivar registry: where the collectors live (also for a custom collector's ``register``).
    """

    def __init__(self, registry: CollectorRegistry | None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()

    def counter(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        zeros: Iterable[str | tuple[str, ...]] = (),
    ) -> Counter:
        """A counter. ``zeros``: label values (a tuple for several labels) exported as 0 from
        the start, so that a dashboard sees the series before the first event."""
        counter = Counter(name, documentation, labels, registry=self.registry)
        for values in zeros:
            counter.labels(*((values,) if isinstance(values, str) else values))
        return counter

    def gauge(self, name: str, documentation: str, labels: Sequence[str] = ()) -> Gauge:
        return Gauge(name, documentation, labels, registry=self.registry)

    def histogram(
        self,
        name: str,
        documentation: str,
        labels: Sequence[str] = (),
        *,
        buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
    ) -> Histogram:
        return Histogram(name, documentation, labels, buckets=buckets, registry=self.registry)
