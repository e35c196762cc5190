"""Prometheus collectors for wedges, created on the server's registry.

A wedge gets the server's registry as ``ctx.metrics`` (served at ``GET /metrics``). Built outside
a server (a unit test) it gets None, and its collectors go to a private registry instead, never
the process-global default one, so that two wedges in one process never collide::

    collectors = Collectors(ctx.metrics)
    decisions = collectors.counter(
        "reflex_guard_decisions_total", "ActionGuard decisions by verdict", ["verdict"],
        zeros=("pass", "clamped", "rejected"),
    )

A wedge with a fixed set of collectors declares each once, as a field of a
:class:`CollectorSet` (its name, help and labels on the field), and creates them all with
``create``::

    @attrs.frozen
    class RouterMetrics(CollectorSet):
        drained: Counter = counter("reflex_router_drained", "Requests sent elsewhere", ["slot"])

    metrics = RouterMetrics.create(ctx.metrics)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Self

import attrs
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


# -- a declared set of collectors ---------------------------------------------------------------

_COLLECTOR_KEY = "reflex.collector"


def counter(
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    *,
    zeros: Iterable[str | tuple[str, ...]] = (),
) -> Any:
    """A :class:`CollectorSet` field holding a counter (arguments as :meth:`Collectors.counter`)."""
    return _collector_field("counter", name, documentation, labels, zeros=tuple(zeros))


def gauge(name: str, documentation: str, labels: Sequence[str] = ()) -> Any:
    """A :class:`CollectorSet` field holding a gauge."""
    return _collector_field("gauge", name, documentation, labels)


def histogram(
    name: str,
    documentation: str,
    labels: Sequence[str] = (),
    *,
    buckets: Sequence[float] = Histogram.DEFAULT_BUCKETS,
) -> Any:
    """A :class:`CollectorSet` field holding a histogram."""
    return _collector_field("histogram", name, documentation, labels, buckets=tuple(buckets))


def _collector_field(
    kind: str, name: str, documentation: str, labels: Sequence[str], **kw: Any
) -> Any:
    return attrs.field(metadata={_COLLECTOR_KEY: (kind, name, documentation, tuple(labels), kw)})


class CollectorSet:
    """Base of an attrs class whose fields are made with :func:`counter`, :func:`gauge` and
    :func:`histogram`: :meth:`create` makes every one of them on a registry."""

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> Self:
        """Every declared collector on ``registry`` (a private one when the server gives none)."""
        collectors = Collectors(registry)
        made: dict[str, Any] = {}
        for field in attrs.fields(cls):  # type: ignore[arg-type]
            declared = field.metadata.get(_COLLECTOR_KEY)
            if declared is not None:
                kind, name, documentation, labels, kw = declared
                made[field.name] = getattr(collectors, kind)(name, documentation, labels, **kw)
        return cls(**made)
