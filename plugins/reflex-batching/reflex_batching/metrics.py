"""Prometheus collectors of the batching wedge, registered on the server's registry."""

from __future__ import annotations

import attrs
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)


@attrs.frozen
class BatchingMetrics:
    batch_size: Histogram
    flushes: Counter
    queue_depth: Gauge
    rejected: Counter
    queue_wait: Histogram
    batch_seconds: Histogram

    @classmethod
    def create(cls, registry: CollectorRegistry | None) -> BatchingMetrics:
        """Collectors on ``registry`` (a private one when the server gives none)."""
        reg = registry if registry is not None else CollectorRegistry()
        return cls(
            batch_size=Histogram(
                "reflex_batching_batch_size",
                "Requests stacked into one policy call",
                ["policy"],
                buckets=BATCH_SIZE_BUCKETS,
                registry=reg,
            ),
            flushes=Counter(
                "reflex_batching_flushes",
                "Batches dispatched, by what triggered the flush (size, cost, timeout, deadline)",
                ["policy", "reason"],
                registry=reg,
            ),
            queue_depth=Gauge(
                "reflex_batching_queue_depth",
                "Requests waiting to be batched",
                ["policy"],
                registry=reg,
            ),
            rejected=Counter(
                "reflex_batching_rejected",
                "Requests refused with 503 queue-full",
                ["policy"],
                registry=reg,
            ),
            queue_wait=Histogram(
                "reflex_batching_queue_wait_seconds",
                "Time a request waited in the batching queue",
                ["policy"],
                buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0),
                registry=reg,
            ),
            batch_seconds=Histogram(
                "reflex_batching_call_seconds",
                "Duration of one batched policy call",
                ["policy"],
                buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
                registry=reg,
            ),
        )
