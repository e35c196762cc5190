"""Prometheus collectors of the A2C2 wedge, registered on the server's registry."""

from __future__ import annotations

import attrs
from prometheus_client import Counter, Histogram

from reflex_core.plugin.kit.collectors import CollectorSet, counter, histogram

RESIDUAL_BUCKETS = (0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)
HEAD_BUCKETS = (0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)


@attrs.frozen
class A2C2Metrics(CollectorSet):
    """``A2C2Metrics.create(ctx.metrics)``."""

    chunks: Counter = counter(
        "reflex_a2c2_chunks",
        "Chunks seen by the correction head, by outcome (applied, below-threshold, "
        "no-features, shape-mismatch, norm-bound, non-finite)",
        ["outcome"],
    )
    steps: Counter = counter(
        "reflex_a2c2_steps",
        "Actions corrected, or kept because their residual exceeded the bound",
        ["result"],
    )
    residual_norm: Histogram = histogram(
        "reflex_a2c2_residual_norm",
        "L2 norm of each applied per-action residual (action units)",
        buckets=RESIDUAL_BUCKETS,
    )
    head_seconds: Histogram = histogram(
        "reflex_a2c2_head_seconds", "Time to run the head on one batch", buckets=HEAD_BUCKETS
    )
