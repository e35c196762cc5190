"""``reflex serve`` options of the deadline wedge and its config class.

Config-file form (``[deadline]``)::

    [deadline]
    deadline-ms = 120
    deadline-fallback = "remote"
    fallback-url = "http://10.0.0.7:8000"
    fallback-timeout-ms = 60
"""

from __future__ import annotations

import math
from typing import Any
from urllib.parse import urlsplit

import attrs

from reflex_core.options import Option

STRATEGIES = ("hold", "tail", "remote")


def _positive_float(value: Any) -> float:
    number = float(value)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"must be a positive number, got {value!r}")
    return number


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be >= 1, got {number}")
    return number


def _http_url(value: Any) -> str:
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return text


OPTIONS: tuple[Option, ...] = (
    Option(
        "--deadline-ms",
        "answer every /act within this many ms of receiving it, with a fallback chunk if the "
        "policy is late (late inference finishes in the background)",
        type=_positive_float,
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
        type=_http_url,
        metavar="URL",
    ),
    Option(
        "--fallback-timeout-ms",
        "time budget of the remote call, bounded by the deadline; the remote request starts "
        "this long before the deadline if the policy has not answered (default: half the deadline)",
        type=_positive_float,
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
        type=_positive_float,
        metavar="HZ",
    ),
    Option(
        "--deadline-max-late",
        "late inferences allowed to keep running in the background; beyond that new requests "
        "fall back at once without queueing more work (default 8)",
        type=_positive_int,
        default=8,
        metavar="N",
    ),
)


def _choice(instance: Any, attribute: Any, value: str) -> None:
    if value not in STRATEGIES:
        raise ValueError(f"deadline_fallback must be one of {', '.join(STRATEGIES)}, got {value!r}")


def _positive_or_none(instance: Any, attribute: Any, value: float | None) -> None:
    if value is not None and not (value > 0 and math.isfinite(value)):
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


def _at_least_one(instance: Any, attribute: Any, value: int) -> None:
    if value < 1:
        raise ValueError(f"{attribute.name} must be >= 1, got {value}")


@attrs.frozen
class DeadlineConfig:
    """Field names are the options' ``dest`` names."""

    deadline_ms: float | None = attrs.field(default=None, validator=_positive_or_none)
    deadline_fallback: str = attrs.field(default="hold", validator=_choice)
    fallback_url: str | None = None
    fallback_timeout_ms: float | None = attrs.field(default=None, validator=_positive_or_none)
    fallback_token: str | None = None
    deadline_control_hz: float | None = attrs.field(default=None, validator=_positive_or_none)
    deadline_max_late: int = attrs.field(default=8, validator=_at_least_one)

    @property
    def enabled(self) -> bool:
        return self.deadline_ms is not None
