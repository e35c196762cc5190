"""Prometheus collectors of the batching wedge, registered on the server's registry."""

from __future__ import annotations

import attrs
from prometheus_client import Counter, Gauge, Histogram

from reflex_core.plugin.kit.collectors import CollectorSet, counter, gauge, histogram

BATCH_SIZE_BUCKETS = (1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128)
QUEUE_WAIT_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0)
CALL_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


@attrs.frozen
class BatchingMetrics(CollectorSet):
    """``BatchingMetrics.create(ctx.metrics)``; each lane takes its policy's children
    (:meth:`for_policy`)."""

    batch_size: Histogram = histogram(
        "reflex_batching_batch_size",
        "Requests stacked into one policy call",
        ["policy"],
        buckets=BATCH_SIZE_BUCKETS,
    )
    flushes: Counter = counter(
        "reflex_batching_flushes",
        "Batches dispatched, by what triggered the flush (size, cost, timeout, deadline)",
        ["policy", "reason"],
    )
    queue_depth: Gauge = gauge(
        "reflex_batching_queue_depth", "Requests waiting to be batched", ["policy"]
    )
    rejected: Counter = counter(
        "reflex_batching_rejected", "Requests refused with 503 queue-full", ["policy"]
    )
    queue_wait: Histogram = histogram(
        "reflex_batching_queue_wait_seconds",
        "Time a request waited in the batching queue",
        ["policy"],
        buckets=QUEUE_WAIT_BUCKETS,
    )
    batch_seconds: Histogram = histogram(
        "reflex_batching_call_seconds",
        "Duration of one batched policy call",
        ["policy"],
        buckets=CALL_BUCKETS,
    )

    def for_policy(self, policy: str) -> LaneMetrics:
        """The collectors' children for one policy, looked up once (``labels()`` takes a lock
        and builds a key tuple on every call, and a lane updates them several times a request).
        """
        return LaneMetrics(
            batch_size=self.batch_size.labels(policy),
            flushes=self.flushes,
            policy=policy,
            queue_depth=self.queue_depth.labels(policy),
            rejected=self.rejected.labels(policy),
            queue_wait=self.queue_wait.labels(policy),
            batch_seconds=self.batch_seconds.labels(policy),
        )


@attrs.define(eq=False)
class LaneMetrics:
    """One policy's children of :class:`BatchingMetrics` (the flush counter per reason too)."""

    batch_size: Histogram
    flushes: Counter
    policy: str
    queue_depth: Gauge
    rejected: Counter
    queue_wait: Histogram
    batch_seconds: Histogram
    _flushes_by_reason: dict[str, Counter] = attrs.field(factory=dict)

    def flushed(self, reason: str) -> None:
        child = self._flushes_by_reason.get(reason)
        if child is None:
            child = self._flushes_by_reason[reason] = self.flushes.labels(self.policy, reason)
        child.inc()
