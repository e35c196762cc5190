"""The SLO wedge's settings: ``reflex serve`` flags and the ``[slo]`` config-file table.

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

from reflex_core.plugin import count, duration, setting
from reflex_core.plugin.kit.latency import parse_duration_s

MODES = ("log", "shed", "breaker")
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


def _no_duplicate_percentiles(_instance: Any, _attribute: Any, value: list[str]) -> None:
    labels = [SloTarget.parse(v).label for v in value]
    duplicates = sorted({label for label in labels if labels.count(label) > 1})
    if duplicates:
        raise ValueError(f"SLO given more than once for {', '.join(duplicates)}")


@attrs.frozen
class SloConfig:
    """Each field is a ``reflex serve`` flag and a key of the ``[slo]`` table."""

    slo: list[str] = setting(
        "latency objective per policy slot, e.g. p99=150ms (repeatable: p50, p95, p99...; "
        "units ms or s)",
        type=_slo_spec,
        multiple=True,
        metavar="pNN=TIME",
        validator=_no_duplicate_percentiles,
    )
    slo_mode: str = setting(
        "log: report breaches in logs, /health and /metrics; shed: also answer new requests "
        "503 slo-breached (Retry-After) while breached; breaker: a breach opens the circuit "
        "breaker (503 circuit-open for --breaker-cooldown-s, then probes that must meet the SLO)",
        choices=MODES,
        default="log",
        metavar="log|shed|breaker",
    )
    slo_window_s: float = duration(
        "percentiles cover the last this many seconds (default {default}; 0: by count only)",
        default=30.0,
        allow_zero=True,
    )
    slo_window_size: int = count("... and at most this many requests per policy slot", default=1000)
    slo_min_samples: int = count(
        "judge an SLO only once a window holds this many requests", default=10
    )
    slo_probe_interval_s: float = duration(
        "in shed mode, let one request through this often while breached so recovery is measured",
        default=1.0,
    )
    breaker_errors: int | None = count(
        "open the circuit breaker after N consecutive errors or timeouts (fallbacks count); "
        "with --slo-mode breaker an SLO breach opens it too"
    )
    breaker_cooldown_s: float = duration(
        "how long the breaker stays open (503 circuit-open) before probing", default=5.0
    )
    breaker_probes: int = count(
        "successful probe requests in half-open that close the breaker", default=1
    )

    @property
    def targets(self) -> list[SloTarget]:
        return [SloTarget.parse(v) for v in self.slo]

    @property
    def breaker_enabled(self) -> bool:
        """A circuit breaker runs: on errors (``--breaker-errors``), on SLO breaches
        (``--slo-mode breaker``), or both."""
        return self.breaker_errors is not None or self.slo_mode == "breaker"

    @property
    def enabled(self) -> bool:
        return bool(self.slo) or self.breaker_errors is not None
