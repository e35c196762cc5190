"""reflex-batching: stack concurrent ``/act`` requests for one policy into ONE batched call.

The wedge sits at :attr:`reflex_core.plugin.Stage.BATCHING`, the bridge between the request
level and the batch level: its factory takes the inner ``BatchHandler`` (A2C2 head, policy)
and returns a request-level ``Handler``. Enable it with ``reflex serve --max-batch 8`` (or
``max-batch = 8`` under ``[batching]`` in the config file).
"""

from __future__ import annotations

from reflex_batching.config import BatchingConfig, is_enabled
from reflex_batching.cost_model import BatchCostModel
from reflex_batching.metrics import BatchingMetrics
from reflex_batching.scheduler import BatchScheduler
from reflex_core.errors import ConfigError
from reflex_core.plugin import (
    ActRequest,
    ActResult,
    BatchHandler,
    Handler,
    Stage,
    WedgeContext,
    WedgeSpec,
    registers,
)

__all__ = [
    "BatchCostModel",
    "BatchScheduler",
    "BatchingConfig",
    "make_batching_handler",
    "reflex_register_wedges",
]
__version__ = "0.1.0"


def make_batching_handler(
    config: BatchingConfig, next_batch: BatchHandler, ctx: WedgeContext
) -> Handler:
    """The wedge factory: a request-level handler that batches into ``next_batch``."""
    if config.max_batch is None:
        raise ConfigError(
            "--max-batch-cost-ms needs --max-batch N (the most requests in one call)",
            slug="batching-needs-max-batch",
            field="max-batch",
        )
    scheduler = BatchScheduler(config, next_batch, BatchingMetrics.create(ctx.metrics))
    ctx.on_shutdown.append(scheduler.close)
    ctx.health["batching"] = lambda: {
        "max_batch": scheduler.max_batch,
        "queue_depth": scheduler.queue_depths(),
    }

    async def handle(request: ActRequest) -> ActResult:
        return await scheduler.submit(request)

    handle.scheduler = scheduler  # type: ignore[attr-defined]  # for tests and introspection
    return handle


reflex_register_wedges = registers(
    WedgeSpec(
        name="batching",
        stage=Stage.BATCHING,
        config_cls=BatchingConfig,
        factory=make_batching_handler,
        is_enabled=is_enabled,
        description="stack concurrent requests per policy into one batched ORT call; "
        "flush by size, learned cost budget, timeout or deadline; 503 when the queue is full",
    ),
)
