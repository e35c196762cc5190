"""The batching wedge's options and config (``reflex serve --max-batch 8`` or ``[batching]``)."""

from __future__ import annotations

import attrs

from reflex_core.plugin import count, duration, in_range, setting


@attrs.frozen
class BatchingConfig:
    """Each field is a ``reflex serve`` flag and a key of the ``[batching]`` table.

    :ivar max_batch: the most requests stacked into one policy call; setting it (>= 2) switches
        the wedge on.
    :ivar batch_timeout_ms: the longest the oldest queued request waits for company.
    :ivar max_batch_cost_ms: flush once the learned cost of the queued batch reaches this budget
        (and never build a batch whose estimated cost exceeds it); None: no cost budget.
    :ivar max_queue: requests waiting per policy beyond which new ones get 503 ``queue-full``.
    :ivar batch_concurrency: batches of one policy allowed in flight at once.
    :ivar cost_ewma_alpha: weight of the newest measurement in the per-size latency average.
    """

    max_batch: int | None = count(
        "enable dynamic batching: stack up to N concurrent requests per policy into one call"
    )
    batch_timeout_ms: float = duration(
        "longest a queued request waits for company once it could run",
        default=10.0,
        allow_zero=True,
    )
    max_batch_cost_ms: float | None = duration(
        "flush when the learned latency of the queued batch reaches this budget"
    )
    max_queue: int = count(
        "requests waiting per policy before new ones get 503 queue-full", default=64
    )
    batch_concurrency: int = count("batches of one policy in flight at once", default=1)
    cost_ewma_alpha: float = setting(
        "weight of the newest latency sample in the per-batch-size cost average",
        type=in_range(0, 1, low_open=True),
        default=0.2,
        metavar="A",
    )


def is_enabled(config: BatchingConfig) -> bool:
    """On when a batch can hold more than one request (``--max-batch 1`` is explicitly off).
    A cost budget without ``--max-batch`` also switches it on, so that the factory can refuse
    it rather than ignore it."""
    if config.max_batch is not None:
        return config.max_batch >= 2
    return config.max_batch_cost_ms is not None
