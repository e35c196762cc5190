"""Latency SLOs and a circuit breaker for Reflex.

Registers the ``slo`` wedge (``Stage.SLO``). Heavy imports happen in the factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reflex_core.plugin import Stage, WedgeSpec, hookimpl
from reflex_slo.config import SloConfig

__version__ = "0.1.0"


def _factory(config: SloConfig, next: Any, ctx: Any) -> Any:
    from reflex_slo.wedge import make_slo

    return make_slo(config, next, ctx)


@hookimpl
def reflex_register_wedges(register: Callable[[WedgeSpec], None]) -> None:
    register(
        WedgeSpec(
            name="slo",
            stage=Stage.SLO,
            config_cls=SloConfig,
            factory=_factory,
            is_enabled=lambda config: config.enabled,
            description="rolling latency percentiles per policy, SLOs like p99=150ms (log or "
            "shed), circuit breaker on consecutive errors/timeouts",
        )
    )
