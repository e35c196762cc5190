"""Per-request deadlines for Reflex: the caller gets an answer in time, with a safe fallback.

Registers the ``deadline`` wedge (``Stage.DEADLINE``). Its factory (heavy imports) is imported
only when the wedge is switched on (``lazy``).
"""

from __future__ import annotations

from reflex_core.plugin import Stage, WedgeSpec, lazy, registers
from reflex_deadline.config import DeadlineConfig

__version__ = "0.1.0"


reflex_register_wedges = registers(
    WedgeSpec(
        name="deadline",
        stage=Stage.DEADLINE,
        config_cls=DeadlineConfig,
        factory=lazy("reflex_deadline.wedge:make_deadline"),
        is_enabled=lambda config: config.enabled,
        description="answer within --deadline-ms with a hold/tail/remote fallback; late "
        "inference finishes in the background",
    ),
)
