"""Prometheus collectors of the A2C2 wedge, registered on the server's registry."""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry, Counter, Histogram


@attrs.frozen
class A2C2Metrics:
    chunks: Counter
    steps: Counter
    residual_norm: Histogram
    head_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> A2C2Metrics:
        reg = registry if registry is not None else CollectorRegistry()
        return cls(
            chunks=Counter(
                "reflex_a2c2_chunks",
                "Chunks seen by the correction head, by outcome (applied, below-threshold, "
                "no-features, shape-mismatch, norm-bound, non-finite)",
                ["outcome"],
                registry=reg,
            ),
            steps=Counter(
                "reflex_a2c2_steps",
                "Actions corrected, or kept because their residual exceeded the bound",
                ["result"],
                registry=reg,
            ),
            residual_norm=Histogram(
                "reflex_a2c2_residual_norm",
                "L2 norm of each applied per-action residual (action units)",
                buckets=(0.0001, 0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0),
                registry=reg,
            ),
            head_seconds=Histogram(
                "reflex_a2c2_head_seconds",
                "Time to run the head on one batch",
                buckets=(0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05),
                registry=reg,
            ),
        )
