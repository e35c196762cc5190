"""``reflex serve`` options of the deadline wedge and its config class.

Config-file form (``[deadline]``)::

    [deadline]
    deadline-ms = 120
    deadline-fallback = "remote"
    fallback-url = "http://10.0.0.7:8000"
    fallback-timeout-ms = 60
"""

from __future__ import annotations

import attrs
from attrs.validators import in_, optional

from reflex_core.options import Option, http_url, positive_float, positive_int
from reflex_core.validators import positive

STRATEGIES = ("hold", "tail", "remote")


OPTIONS: tuple[Option, ...] = (
    Option(
        "--deadline-ms",
        "answer every /act within this many ms of receiving it, with a fallback chunk if the "
        "policy is late (late inference finishes in the background)",
        type=positive_float,
        metavar="MS",
    ),
    Option(
        "--deadline-fallback",
        "what a late request gets: hold (current position), tail (rest of the episode's last "
        "chunk, time-shifted), remote (another reflex serve via --fallback-url) (default hold)",
        choices=STRATEGIES,
        default="hold",
        metavar="hold|tail|remote",
    ),
    Option(
        "--fallback-url",
        "the other `reflex serve` for --deadline-fallback remote (its /act is POSTed to)",
        type=http_url,
        metavar="URL",
    ),
    Option(
        "--fallback-timeout-ms",
        "time budget of the remote call, bounded by the deadline; the remote request starts "
        "this long before the deadline if the policy has not answered (default: half the deadline)",
        type=positive_float,
        metavar="MS",
    ),
    Option(
        "--fallback-token",
        "bearer token for the fallback server (default: $REFLEX_FALLBACK_TOKEN)",
        metavar="TOKEN",
    ),
    Option(
        "--deadline-control-hz",
        "control rate for the tail strategy's time shift (default: the embodiment's)",
        type=positive_float,
        metavar="HZ",
    ),
    Option(
        "--deadline-max-late",
        "late inferences allowed to keep running in the background; beyond that new requests "
        "fall back at once without queueing more work (default 8)",
        type=positive_int,
        default=8,
        metavar="N",
    ),
)


@attrs.frozen
class DeadlineConfig:
    """Field names are the options' ``dest`` names."""

    deadline_ms: float | None = attrs.field(default=None, validator=optional(positive))
    deadline_fallback: str = attrs.field(default="hold", validator=in_(STRATEGIES))
    fallback_url: str | None = None
    fallback_timeout_ms: float | None = attrs.field(default=None, validator=optional(positive))
    fallback_token: str | None = None
    deadline_control_hz: float | None = attrs.field(default=None, validator=optional(positive))
    deadline_max_late: int = attrs.field(default=8, validator=positive)

    @property
    def enabled(self) -> bool:
        return self.deadline_ms is not None
