"""``reflex serve`` options of the SLO wedge and its config class.

Config-file form (``[slo]``)::

    [slo]
    slo = ["p99=150ms", "p50=40ms"]
    slo-mode = "shed"
    slo-window-s = 30
    breaker-errors = 5
    breaker-cooldown-s = 10
"""

from __future__ import annotations

import re
from typing import Any

import attrs
from attrs.validators import in_, optional

from reflex_core.latency import parse_duration_s
from reflex_core.options import Option, non_negative_float, positive_float, positive_int
from reflex_core.validators import non_negative, positive

MODES = ("log", "shed")
_SPEC = re.compile(r"^\s*p(?P<q>[0-9]+(?:\.[0-9]+)?)\s*=\s*(?P<target>.+?)\s*$", re.IGNORECASE)


@attrs.frozen
class SloTarget:
    """``p99=150ms``: the 99th percentile of latency must stay at or under 0.150 s."""

    percentile: float
    seconds: float
    text: str

    @classmethod
    def parse(cls, text: str) -> SloTarget:
        match = _SPEC.match(str(text))
        if match is None:
            raise ValueError(f"SLO must look like p99=150ms, got {text!r}")
        q = float(match["q"])
        if not 0 < q <= 100:
            raise ValueError(f"SLO percentile must be in (0, 100], got p{match['q']}")
        seconds = parse_duration_s(match["target"], default_unit="ms")
        if seconds <= 0:
            raise ValueError(f"SLO target must be > 0, got {match['target']!r}")
        return cls(percentile=q, seconds=seconds, text=f"p{match['q']}={match['target']}")

    @property
    def label(self) -> str:
        """``p99`` / ``p99.9``, for metrics and /health."""
        return f"p{self.percentile:g}"


def _slo_spec(value: Any) -> str:
    SloTarget.parse(value)  # argparse turns the ValueError into a usage error
    return str(value)


OPTIONS: tuple[Option, ...] = (
    Option(
        "--slo",
        "latency objective per policy slot, e.g. p99=150ms (repeatable: p50, p95, p99...; "
        "units ms or s)",
        type=_slo_spec,
        multiple=True,
        metavar="pNN=TIME",
    ),
    Option(
        "--slo-mode",
        "log: report breaches in logs, /health and /metrics; shed: also answer new requests "
        "503 slo-breached (Retry-After) while breached (default log)",
        choices=MODES,
        default="log",
        metavar="log|shed",
    ),
    Option(
        "--slo-window-s",
        "percentiles cover the last this many seconds (default 30; 0: by count only)",
        type=non_negative_float,
        default=30.0,
        metavar="S",
    ),
    Option(
        "--slo-window-size",
        "... and at most this many requests per policy slot (default 1000)",
        type=positive_int,
        default=1000,
        metavar="N",
    ),
    Option(
        "--slo-min-samples",
        "judge an SLO only once a window holds this many requests (default 10)",
        type=positive_int,
        default=10,
        metavar="N",
    ),
    Option(
        "--slo-probe-interval-s",
        "in shed mode, let one request through this often while breached so recovery is "
        "measured (default 1)",
        type=positive_float,
        default=1.0,
        metavar="S",
    ),
    Option(
        "--breaker-errors",
        "open the circuit breaker after N consecutive errors or timeouts (fallbacks count)",
        type=positive_int,
        metavar="N",
    ),
    Option(
        "--breaker-cooldown-s",
        "how long the breaker stays open (503 circuit-open) before probing (default 5)",
        type=positive_float,
        default=5.0,
        metavar="S",
    ),
    Option(
        "--breaker-probes",
        "successful probe requests in half-open that close the breaker (default 1)",
        type=positive_int,
        default=1,
        metavar="N",
    ),
)


def _check_specs(instance: Any, attribute: Any, value: list[str]) -> None:
    targets = [SloTarget.parse(v) for v in value]
    labels = [t.label for t in targets]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"SLO given more than once for {', '.join(duplicates)}")


@attrs.frozen
class SloConfig:
    """Field names are the options' ``dest`` names."""

    slo: list[str] = attrs.field(factory=list, validator=_check_specs)
    slo_mode: str = attrs.field(default="log", validator=in_(MODES))
    slo_window_s: float = attrs.field(default=30.0, validator=non_negative)
    slo_window_size: int = attrs.field(default=1000, validator=positive)
    slo_min_samples: int = attrs.field(default=10, validator=positive)
    slo_probe_interval_s: float = attrs.field(default=1.0, validator=positive)
    breaker_errors: int | None = attrs.field(default=None, validator=optional(positive))
    breaker_cooldown_s: float = attrs.field(default=5.0, validator=positive)
    breaker_probes: int = attrs.field(default=1, validator=positive)

    @property
    def targets(self) -> list[SloTarget]:
        return [SloTarget.parse(v) for v in self.slo]

    @property
    def enabled(self) -> bool:
        return bool(self.slo) or self.breaker_errors is not None
