"""The deadline wedge's settings: ``reflex serve`` flags and the ``[deadline]`` config-file
table::

    [deadline]
    deadline-ms = 120
    deadline-fallback = "remote"
    fallback-url = "http://10.0.0.7:8000"
    fallback-timeout-ms = 60
"""

from __future__ import annotations

import attrs

from reflex_core.plugin import count, duration, http_url, positive_float, setting

STRATEGIES = ("hold", "tail", "decay", "remote")


@attrs.frozen
class DeadlineConfig:
    """Each field is a ``reflex serve`` flag and a key of the ``[deadline]`` table."""

    deadline_ms: float | None = duration(
        "answer every /act within this many ms of receiving it, with a fallback chunk if the "
        "policy is late (late inference finishes in the background)"
    )
    deadline_fallback: str = setting(
        "what a late request gets, per the embodiment's action kind: hold (keep still: the "
        "current position, zero deltas/velocities), tail (rest of the episode's last chunk, "
        "time-shifted), decay (that rest, slowing to rest), remote (another reflex serve via "
        "--fallback-url)",
        choices=STRATEGIES,
        default="hold",
        metavar="hold|tail|decay|remote",
    )
    fallback_url: str | None = setting(
        "the other `reflex serve` for --deadline-fallback remote (its /act is POSTed to)",
        type=http_url,
        metavar="URL",
    )
    fallback_timeout_ms: float | None = duration(
        "time budget of the remote call, bounded by the deadline; the remote request starts "
        "this long before the deadline if the policy has not answered (default: half the deadline)"
    )
    fallback_token: str | None = setting(
        "bearer token for the fallback server (default: $REFLEX_FALLBACK_TOKEN)",
        metavar="TOKEN",
        repr=False,
    )
    deadline_control_hz: float | None = setting(
        "control rate for the tail and decay strategies' time shift (default: the embodiment's)",
        type=positive_float,
    )
    deadline_max_late: int = count(
        "late inferences kept running in the background; while that many are, new requests "
        "fall back (at their deadline) without queueing more work, and a call going late past "
        "the cap is dropped",
        default=8,
    )

    @property
    def enabled(self) -> bool:
        return self.deadline_ms is not None
