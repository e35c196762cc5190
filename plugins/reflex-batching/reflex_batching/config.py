"""The batching wedge's options and config (``reflex serve --max-batch 8`` or ``[batching]``)."""

from __future__ import annotations

from typing import Any

import attrs
from attrs.validators import optional

from reflex_core.options import Option
from reflex_core.validators import non_negative, positive


@attrs.frozen
class BatchingConfig:
    """Field names are the options' ``dest`` names.

    :ivar max_batch: the most requests stacked into one policy call; setting it (>= 2) switches
        the wedge on.
    :ivar batch_timeout_ms: the longest the oldest queued request waits for company.
    :ivar max_batch_cost_ms: flush once the learned cost of the queued batch reaches this budget
        (and never build a batch whose estimated cost exceeds it); None: no cost budget.
    :ivar max_queue: requests waiting per policy beyond which new ones get 503 ``queue-full``.
    :ivar batch_concurrency: batches of one policy allowed in flight at once.
    :ivar cost_ewma_alpha: weight of the newest measurement in the per-size latency average.
    """

    max_batch: int | None = attrs.field(default=None, validator=optional(positive))
    batch_timeout_ms: float = attrs.field(default=10.0, validator=non_negative)
    max_batch_cost_ms: float | None = attrs.field(default=None, validator=optional(positive))
    max_queue: int = attrs.field(default=64, validator=positive)
    batch_concurrency: int = attrs.field(default=1, validator=positive)
    cost_ewma_alpha: float = attrs.field(default=0.2, validator=positive)

    @cost_ewma_alpha.validator
    def _alpha_at_most_one(self, _attribute: Any, value: float) -> None:
        if value > 1:
            raise ValueError(f"cost_ewma_alpha must be in (0, 1], got {value}")


def is_enabled(config: BatchingConfig) -> bool:
    """On when a batch can hold more than one request (``--max-batch 1`` is explicitly off).
    A cost budget without ``--max-batch`` also switches it on, so that the factory can refuse
    it rather than ignore it."""
    if config.max_batch is not None:
        return config.max_batch >= 2
    return config.max_batch_cost_ms is not None


OPTIONS: tuple[Option, ...] = (
    Option(
        "--max-batch",
        "enable dynamic batching: stack up to N concurrent requests per policy into one call",
        type=int,
        metavar="N",
    ),
    Option(
        "--batch-timeout-ms",
        "longest a queued request waits for company once it could run (default 10)",
        type=float,
        default=10.0,
        metavar="MS",
    ),
    Option(
        "--max-batch-cost-ms",
        "flush when the learned latency of the queued batch reaches this budget",
        type=float,
        metavar="MS",
    ),
    Option(
        "--max-queue",
        "requests waiting per policy before new ones get 503 queue-full (default 64)",
        type=int,
        default=64,
        metavar="N",
    ),
    Option(
        "--batch-concurrency",
        "batches of one policy in flight at once (default 1)",
        type=int,
        default=1,
        metavar="N",
    ),
    Option(
        "--cost-ewma-alpha",
        "weight of the newest latency sample in the per-batch-size cost average (default 0.2)",
        type=float,
        default=0.2,
        metavar="A",
    ),
)
