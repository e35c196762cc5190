"""reflex-smoothing: an example third-party wedge.

Exponential smoothing of each action chunk, ``y[t] = alpha * a[t] + (1 - alpha) * y[t-1]``,
started from the action the robot is executing when the chunk arrives (the episode's previous
smoothed chunk, time-shifted; else the measured position), so consecutive chunks join without a
jump. ``alpha = 1`` passes chunks through unchanged; smaller is smoother (and lags more).

It sits at stage 15: inside ActionGuard (10), which still checks every smoothed chunk, and
outside the SLO tracker (20) and the deadline (30), so fallback chunks are smoothed too.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import attrs

from reflex_core.hookspecs import hookimpl
from reflex_core.options import Option, positive_float
from reflex_core.registry import WedgeSpec

__version__ = "0.1.0"
STAGE = 15  # between Stage.GUARD (10) and Stage.SLO (20)


def _alpha(value: Any) -> float:
    alpha = float(value)
    if not 0.0 < alpha <= 1.0:
        raise ValueError(f"alpha must be in (0, 1], got {value!r}")
    return alpha


OPTIONS = (
    Option(
        "--smooth-alpha",
        "enable exponential smoothing of action chunks with this weight on the new action "
        "(0 < A <= 1; 1 = no smoothing)",
        type=_alpha,
        metavar="A",
    ),
    Option(
        "--smooth-control-hz",
        "control rate for continuity across chunks (default: the embodiment's)",
        type=positive_float,
        metavar="HZ",
    ),
)


@attrs.frozen
class SmoothingConfig:
    """Field names are the options' ``dest`` names (the core structures them with cattrs)."""

    smooth_alpha: float | None = None
    smooth_control_hz: float | None = None


def _factory(config: SmoothingConfig, next: Any, ctx: Any) -> Any:
    from reflex_smoothing.wedge import SmoothingWedge

    return SmoothingWedge(config, next, ctx)


@hookimpl
def reflex_register_wedges(register: Callable[[WedgeSpec], None]) -> None:
    register(
        WedgeSpec(
            name="smoothing",
            stage=STAGE,
            config_cls=SmoothingConfig,
            options=OPTIONS,
            factory=_factory,
            is_enabled=lambda config: config.smooth_alpha is not None,
            description="exponential smoothing of action chunks, continuous across chunks",
        )
    )
