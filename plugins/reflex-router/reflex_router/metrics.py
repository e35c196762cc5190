"""Prometheus collectors of the router, registered on the server's registry."""

from __future__ import annotations

import attrs
from prometheus_client import Counter, Gauge, Histogram

from reflex_core.plugin.kit.collectors import CollectorSet, counter, gauge, histogram

# Action differences in robot units (radians, metres) or normalized units: small numbers matter.
DIFF_BUCKETS = (0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0)


@attrs.frozen
class RouterMetrics(CollectorSet):
    """``RouterMetrics.create(ctx.metrics)``."""

    requests: Counter = counter(
        "reflex_router_requests",
        "Requests answered, by slot and whether the slot came from the episode id",
        ["slot", "sticky"],
    )
    drained: Counter = counter(
        "reflex_router_drained",
        "Requests sent to the other slot because their slot was tripped",
        ["from_slot"],
    )
    slot_errors: Counter = counter(
        "reflex_router_slot_errors",
        "Server-side errors by slot (the ones that count towards tripping it)",
        ["slot"],
    )
    slot_available: Gauge = gauge(
        "reflex_router_slot_available",
        "1 while the slot takes traffic, 0 while it is tripped",
        ["slot"],
    )
    shadow: Counter = counter(
        "reflex_router_shadow",
        "Shadow comparisons by outcome (compared, b_error, a_error, skipped, shape_mismatch)",
        ["outcome"],
    )
    shadow_l2: Histogram = histogram(
        "reflex_router_shadow_l2",
        "L2 norm of (B chunk - A chunk) over the whole chunk",
        buckets=DIFF_BUCKETS,
    )
    shadow_max_abs: Histogram = histogram(
        "reflex_router_shadow_max_abs",
        "Largest absolute difference between the A and B chunks",
        buckets=DIFF_BUCKETS,
    )
