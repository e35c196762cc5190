"""reflex-smoothing: an example third-party wedge.

Exponential smoothing of each action chunk, ``y[t] = alpha * a[t] + (1 - alpha) * y[t-1]``,
started from the action the robot is executing when the chunk arrives (the episode's previous
smoothed chunk, time-shifted; else the measured position), so consecutive chunks join without a
jump. ``alpha = 1`` passes chunks through unchanged; smaller is smoother (and lags more).

It sits at stage 15: inside ActionGuard (10), which still checks every smoothed chunk, and
outside the SLO tracker (20) and the deadline (30), so fallback chunks are smoothed too.
"""

from __future__ import annotations

import attrs

from reflex_core.plugin import WedgeSpec, in_range, lazy, positive_float, registers, setting

__version__ = "0.1.0"
STAGE = 15  # between Stage.GUARD (10) and Stage.SLO (20)


@attrs.frozen
class SmoothingConfig:
    """Each field is declared once: a ``reflex serve`` flag (``smooth_alpha`` ->
    ``--smooth-alpha``), a key of the ``[smoothing]`` config-file table, its ``--help`` line
    and the check of its value. The core structures the resolved values into this class."""

    smooth_alpha: float | None = setting(
        "enable exponential smoothing of action chunks with this weight on the new action "
        "(0 < A <= 1; 1 = no smoothing)",
        type=in_range(0, 1, low_open=True),
        metavar="A",
    )
    smooth_control_hz: float | None = setting(
        "control rate for continuity across chunks (default: the embodiment's)", type=positive_float
    )


reflex_register_wedges = registers(
    WedgeSpec(
        name="smoothing",
        stage=STAGE,
        config_cls=SmoothingConfig,
        factory=lazy("reflex_smoothing.wedge:SmoothingWedge"),
        is_enabled=lambda config: config.smooth_alpha is not None,
        description="exponential smoothing of action chunks, continuous across chunks",
    ),
)
