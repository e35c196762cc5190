"""Prometheus collectors of one server, on its own ``CollectorRegistry``.

A per-app registry (not the process-global default) keeps two servers in one process (tests, the
router's fallback) from colliding, and gives wedges one place (``ctx.metrics``) to add theirs.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Enum, Gauge, Histogram
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

# Act latency spans sub-millisecond cached chunks to multi-second CPU runs of a big model.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0,
    10.0, 30.0,
)  # fmt: skip
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)
STATES = ("loading", "warming", "ready", "failed", "stopping")


class ServeMetrics:
    """The core's collectors. Labelled children are cached: ``labels()`` takes a lock and
    builds a tuple each call, which the hot path does not need to pay."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.act_latency = Histogram(
            "reflex_act_latency_seconds",
            "Time from receiving an observation to having its action chunk, by policy slot "
            "and outcome (ok or the error slug).",
            ["policy", "outcome"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.inference_latency = Histogram(
            "reflex_inference_seconds",
            "Wall time of one batched policy.infer call in the executor.",
            ["policy"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.batch_size = Histogram(
            "reflex_batch_size",
            "Observations per policy.infer call.",
            ["policy"],
            buckets=BATCH_BUCKETS,
            registry=registry,
        )
        self.requests = Counter(
            "reflex_requests",
            "Requests and WebSocket frames answered, by route, HTTP status and slug "
            "(ok for successes).",
            ["route", "status", "slug"],
            registry=registry,
        )
        # Read at scrape time from a plain counter the event loop keeps: no lock taken twice
        # per request for a number nobody reads between scrapes.
        self.in_flight_count = 0
        self.in_flight = Gauge(
            "reflex_in_flight",
            "Observations inside the wedge chain or the policy right now.",
            registry=registry,
        )
        self.in_flight.set_function(lambda: self.in_flight_count)
        self.idempotent_replays = Counter(
            "reflex_idempotent_replays",
            "Requests answered from the idempotency window (same request_id) without inference.",
            registry=registry,
        )
        self.ws_sessions = Gauge(
            "reflex_ws_sessions", "Open WebSocket sessions.", registry=registry
        )
        self.ws_queue_depth = Gauge(
            "reflex_ws_queue_depth",
            "Frames read but not yet answered, summed over WebSocket sessions.",
            registry=registry,
        )
        self.state = Enum(
            "reflex_server_state", "Lifecycle state of the server.", states=list(STATES),
            registry=registry,
        )  # fmt: skip
        self._latency: dict[tuple[str, str], object] = {}
        self._requests: dict[tuple[str, int, str], object] = {}
        self._inference: dict[str, tuple[object, object]] = {}

    def observe_act(self, policy: str, outcome: str, seconds: float) -> None:
        key = (policy, outcome)
        child = self._latency.get(key)
        if child is None:
            child = self._latency[key] = self.act_latency.labels(policy, outcome)
        child.observe(seconds)  # type: ignore[attr-defined]

    def observe_inference(self, policy: str, batch_size: int, seconds: float) -> None:
        children = self._inference.get(policy)
        if children is None:
            children = self._inference[policy] = (
                self.inference_latency.labels(policy),
                self.batch_size.labels(policy),
            )
        children[0].observe(seconds)  # type: ignore[attr-defined]
        children[1].observe(batch_size)  # type: ignore[attr-defined]

    def count_request(self, route: str, status: int, slug: str) -> None:
        key = (route, status, slug)
        child = self._requests.get(key)
        if child is None:
            child = self._requests[key] = self.requests.labels(route, str(status), slug)
        child.inc()  # type: ignore[attr-defined]

    def render(self) -> tuple[bytes, str]:
        """The text exposition format and its content type."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
