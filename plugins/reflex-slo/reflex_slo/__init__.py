"""Latency SLOs and a circuit breaker for Reflex.

Registers the ``slo`` wedge (``Stage.SLO``). Its factory (heavy imports) is imported only when
the wedge is switched on (``lazy``).
"""

from __future__ import annotations

from reflex_core.plugin import Stage, WedgeSpec, lazy, registers
from reflex_slo.config import SloConfig

__version__ = "0.1.0"


reflex_register_wedges = registers(
    WedgeSpec(
        name="slo",
        stage=Stage.SLO,
        config_cls=SloConfig,
        factory=lazy("reflex_slo.wedge:make_slo"),
        is_enabled=lambda config: config.enabled,
        description="rolling latency percentiles per policy, SLOs like p99=150ms (log or "
        "shed), circuit breaker on consecutive errors/timeouts",
    ),
)
