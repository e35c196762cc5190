"""Per-request deadlines for Reflex: the caller gets an answer in time, with a safe fallback.

Registers the ``deadline`` wedge (``Stage.DEADLINE``). Heavy imports happen in the factory.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reflex_core.plugin import Stage, WedgeSpec, hookimpl
from reflex_deadline.config import DeadlineConfig

__version__ = "0.1.0"


def _factory(config: DeadlineConfig, next: Any, ctx: Any) -> Any:
    from reflex_deadline.wedge import make_deadline

    return make_deadline(config, next, ctx)


@hookimpl
def reflex_register_wedges(register: Callable[[WedgeSpec], None]) -> None:
    register(
        WedgeSpec(
            name="deadline",
            stage=Stage.DEADLINE,
            config_cls=DeadlineConfig,
            factory=_factory,
            is_enabled=lambda config: config.enabled,
            description="answer within --deadline-ms with a hold/tail/remote fallback; late "
            "inference finishes in the background",
        )
    )
