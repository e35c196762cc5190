"""The SLO wedge: rolling latency percentiles per policy slot, SLO breach handling, and a
circuit breaker on consecutive errors or timeouts.

It sits at ``Stage.SLO``: inside the guard, outside the deadline wedge. Latency is measured from
when the server received the request to when the answer comes back through this wedge (what the
client waits for, queueing included) and recorded under the policy slot that answered.

A failure, for the breaker, is a request that raised a server-side error (5xx or an unexpected
exception) or that the deadline wedge had to answer with a fallback (``metadata.fallback.used``:
reason ``deadline``/``backlog`` count as timeouts, ``policy-error`` as an error). Client errors
(4xx) count for nothing.

With ``--slo-mode breaker`` an SLO breach opens the breaker too: the breached slot's window is
cleared (its slow samples were the breach; they must not re-open the breaker the moment it
closes), requests get 503 ``circuit-open`` for the cool-down, then half-open probes go through,
and a probe slower than the loosest SLO target counts as a failure (it re-opens the breaker);
the window fills again from the requests admitted once it closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterator
from typing import Any

from reflex_core.errors import ConfigError, ReflexError, Unavailable
from reflex_core.plugin import ActRequest, ActResult, Handler, WedgeContext, answering_slot
from reflex_core.plugin.kit.collectors import Collectors
from reflex_core.plugin.kit.latency import LatencyWindows
from reflex_slo.breaker import STATE_VALUES, CircuitBreaker, Ticket
from reflex_slo.config import SloConfig, SloTarget

log = logging.getLogger(__name__)

_TIMEOUT_REASONS = ("deadline", "backlog")


def _failure_of(result: ActResult) -> str | None:
    """Why a returned result still counts as a failure (a deadline fallback), or None."""
    fallback = result.metadata.get("fallback")
    if isinstance(fallback, dict) and fallback.get("used"):
        reason = str(fallback.get("reason") or "fallback")
        return f"timeout ({reason})" if reason in _TIMEOUT_REASONS else f"error ({reason})"
    return None


class SloWedge:
    """The wedge's state and handler (an instance is the handler)."""

    def __init__(
        self,
        config: SloConfig,
        next: Handler,
        *,
        metrics: Any = None,
        clock: Any = time.monotonic,
    ) -> None:
        self.config = config
        self.next = next
        self.targets: list[SloTarget] = config.targets
        self.mode = config.slo_mode
        self._clock = clock
        self.windows: LatencyWindows[str] = LatencyWindows(
            config.slo_window_size, config.slo_window_s or None, clock=clock
        )
        self.breached: dict[str, list[str]] = {}  # slot -> breached target labels
        self._last_probe = -float("inf")
        self.shed_count = 0

        collectors = Collectors(metrics)
        self._transitions = collectors.counter(
            "reflex_breaker_transitions_total", "Circuit breaker state changes", ["from", "to"]
        )
        self._breaker_state = collectors.gauge(
            "reflex_breaker_state", "Circuit breaker state: 0 closed, 1 half-open, 2 open"
        )
        self._rejected = collectors.counter(
            "reflex_slo_rejected_total",
            "Requests answered 503 by the SLO wedge, by reason",
            ["reason"],
            zeros=("slo-breached", "circuit-open"),
        )
        self._breached_gauge = collectors.gauge(
            "reflex_slo_breached", "1 while a policy slot breaches one of its SLOs", ["policy"]
        )
        self._failures = collectors.counter(
            "reflex_slo_failures_total",
            "Errors and timeouts seen by the circuit breaker, by kind",
            ["kind"],
        )
        collectors.registry.register(_LatencyCollector(self))

        if self.mode == "breaker" and not self.targets:
            raise ConfigError(
                "--slo-mode breaker opens the circuit breaker on an SLO breach: give at least "
                "one --slo pNN=TIME",
                slug="slo-breaker-needs-slo",
            )
        # A probe slower than the loosest objective did not show a recovered policy.
        self.probe_limit_s = max((t.seconds for t in self.targets), default=None)
        self.breaker: CircuitBreaker | None = None
        if config.breaker_enabled:
            self.breaker = CircuitBreaker(
                config.breaker_errors,
                config.breaker_cooldown_s,
                config.breaker_probes,
                clock=clock,
                on_transition=self._on_transition,
            )
        self._breaker_state.set(STATE_VALUES["closed"])

    # -- request path ---------------------------------------------------------------------

    async def __call__(self, request: ActRequest) -> ActResult:
        ticket = None
        if self.breaker is not None:
            try:
                ticket = self.breaker.admit()
            except Unavailable:
                self._rejected.labels("circuit-open").inc()
                raise
        try:
            self._check_shed()
        except Unavailable:
            if ticket is not None and self.breaker is not None:
                self.breaker.release(ticket)
            raise
        try:
            result = await self.next(request)
        except asyncio.CancelledError:
            self._settle(ticket, None, neutral=True)
            raise
        except ReflexError as exc:
            if exc.status < 500:
                self._settle(ticket, None, neutral=True)
            else:
                kind = "timeout" if exc.status == 504 else "error"
                self._settle(ticket, f"{kind} ({exc.slug})")
            raise
        except Exception as exc:
            self._settle(ticket, f"error ({type(exc).__name__})")
            raise
        latency_s = max(0.0, (time.monotonic_ns() - request.received_ns) / 1e9)
        slot = answering_slot(request, result)
        failure = _failure_of(result)
        if (
            failure is None
            and self.mode == "breaker"
            and ticket is not None
            and ticket.probe
            and self.probe_limit_s is not None
            and latency_s > self.probe_limit_s
        ):
            failure = f"slo (probe took {latency_s * 1e3:.1f} ms > {self.probe_limit_s * 1e3:g} ms)"
        self.windows.record(slot, latency_s)
        self._evaluate(slot)
        self._settle(ticket, failure)
        return result

    def _settle(self, ticket: Ticket | None, failure: str | None, *, neutral: bool = False) -> None:
        if failure is not None:
            self._failures.labels(failure.split(" ", 1)[0]).inc()
        if ticket is None or self.breaker is None:
            return
        if neutral:
            self.breaker.release(ticket)
        elif failure is None:
            self.breaker.success(ticket)
        else:
            self.breaker.failure(ticket, failure)

    def _check_shed(self) -> None:
        if self.mode != "shed" or not self.targets:
            return
        breached = self._refresh_all()
        if not breached:
            return
        now = self._clock()
        if now - self._last_probe >= self.config.slo_probe_interval_s:
            # One request per interval goes through, so a recovered policy shows it.
            self._last_probe = now
            return
        self.shed_count += 1
        self._rejected.labels("slo-breached").inc()
        detail = "; ".join(f"{slot}: {', '.join(labels)}" for slot, labels in breached.items())
        raise Unavailable(
            f"latency SLO breached ({detail}); shedding load",
            slug="slo-breached",
            retry_after_s=self.config.slo_probe_interval_s,
            details={"breached": breached},
        )

    # -- SLO evaluation -------------------------------------------------------------------

    def quantiles(self, slot: str) -> dict[float, float]:
        """The tracked percentiles (those of the SLOs, plus p50/p95/p99) of one slot, in
        seconds, keyed by percentile (99.0)."""
        qs = sorted({50.0, 95.0, 99.0, *(t.percentile for t in self.targets)})
        return self.windows[slot].percentiles(qs)

    def percentiles(self, slot: str) -> dict[str, float]:
        """:meth:`quantiles` keyed ``p50`` / ``p99``..."""
        return {f"p{q:g}": v for q, v in self.quantiles(slot).items()}

    def _breaches(self, slot: str) -> list[str]:
        window = self.windows[slot]
        if len(window) < self.config.slo_min_samples:
            return []
        values = window.percentiles([t.percentile for t in self.targets])
        return [t.label for t in self.targets if values.get(t.percentile, 0.0) > t.seconds]

    def _evaluate(self, slot: str) -> list[str]:
        if not self.targets:
            return []
        now_breached = self._breaches(slot)
        before = self.breached.get(slot, [])
        if now_breached and not before:
            log.warning(
                "policy %s breaches its latency SLO %s (%s)",
                slot,
                ", ".join(now_breached),
                self._describe(slot),
            )
        elif before and not now_breached:
            log.info("policy %s is back within its latency SLOs (%s)", slot, self._describe(slot))
        if now_breached and self.mode == "breaker" and self.breaker is not None:
            # The breaker takes the breach over: open it, and start the slot's window afresh
            # so the slow samples that made the breach cannot re-open it after the cool-down.
            reason = f"slo ({slot}: {self._describe(slot)})"
            if self.breaker.trip(reason):
                log.warning("policy %s: SLO breach opens the circuit breaker", slot)
            self.windows[slot].clear()
            self.breached.pop(slot, None)
            self._breached_gauge.labels(slot).set(0)
            return now_breached
        if now_breached:
            self.breached[slot] = now_breached
        else:
            self.breached.pop(slot, None)
        self._breached_gauge.labels(slot).set(1 if now_breached else 0)
        return now_breached

    def _refresh_all(self) -> dict[str, list[str]]:
        """Re-evaluate every slot (samples age out even without traffic)."""
        for slot in self.windows.keys():
            self._evaluate(slot)
        return dict(self.breached)

    def _describe(self, slot: str) -> str:
        values = self.windows[slot].percentiles([t.percentile for t in self.targets])
        return ", ".join(
            f"{t.label} {values.get(t.percentile, float('nan')) * 1e3:.1f} ms vs {t.seconds * 1e3:g} ms"
            for t in self.targets
        )

    # -- operations -----------------------------------------------------------------------

    def _on_transition(self, before: str, after: str) -> None:
        self._transitions.labels(before, after).inc()
        self._breaker_state.set(STATE_VALUES[after])

    def health(self) -> dict[str, Any]:
        breached = self._refresh_all() if self.targets else {}
        breaker = self.breaker.snapshot() if self.breaker is not None else None
        if self.breaker is not None:
            self._breaker_state.set(STATE_VALUES[self.breaker.state])
        slots = {
            slot: {
                "samples": len(window),
                "latency_s": self.percentiles(slot),
                "breached": breached.get(slot, []),
            }
            for slot, window in self.windows.items()
        }
        return {
            "mode": self.mode,
            "targets": [{"slo": t.label, "seconds": t.seconds} for t in self.targets],
            "window": {"seconds": self.config.slo_window_s, "size": self.config.slo_window_size},
            "policies": slots,
            "breached": bool(breached),
            "shed": self.shed_count,
            "breaker": breaker,
            "degraded": bool(breached) or (breaker is not None and breaker["state"] != "closed"),
        }


class _LatencyCollector:
    """``reflex_slo_latency_seconds{policy, quantile}``, computed when /metrics is scraped."""

    def __init__(self, wedge: SloWedge) -> None:
        self.wedge = wedge

    def describe(self) -> list[Any]:
        return []  # computed lazily; nothing to check for duplicates up front

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        family = GaugeMetricFamily(
            "reflex_slo_latency_seconds",
            "Rolling request latency percentiles per policy slot",
            labels=["policy", "quantile"],
        )
        for slot, _window in self.wedge.windows.items():
            for q, value in self.wedge.quantiles(slot).items():
                family.add_metric([slot, f"{q / 100:g}"], value)
        yield family


def make_slo(config: SloConfig, next: Handler, ctx: WedgeContext) -> SloWedge:
    """The wedge factory: register health (``ctx.health["slo"]``) and metrics."""
    wedge = SloWedge(config, next, metrics=ctx.metrics)
    ctx.health["slo"] = wedge.health
    return wedge
