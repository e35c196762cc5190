"""Opt-in OpenTelemetry tracing (``--otel-endpoint URL``; needs ``reflex-core[otel]``).

Each observation becomes a ``reflex.act`` span (request id, policy slot; an error's slug and
ERROR status when it fails), exported over OTLP/HTTP in batches off the request path. A request
rejected before it reaches the wedge chain (bad JSON, a wrong state length) gets a span too, so
failures show in traces and not only successes; so does a retry answered from the idempotency
window (``reflex.idempotent_replay``), which never enters the chain. The packages are imported
here only, so a server without the extra never pays for them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

from reflex_core import __version__
from reflex_core.errors import ConfigError, ReflexError

SERVICE_NAME = "reflex-serve"
SPAN_NAME = "reflex.act"
REQUEST_ID_ATTR = "reflex.request_id"
POLICY_ATTR = "reflex.policy"
ERROR_SLUG_ATTR = "reflex.error.slug"
REPLAY_ATTR = "reflex.idempotent_replay"
HTTP_STATUS_ATTR = "http.response.status_code"
INTERNAL_ERROR_SLUG = "internal-error"


def make_tracer(endpoint: str) -> tuple[Any, Any]:
    """A tracer exporting to ``endpoint`` and its provider (call ``provider.shutdown()`` to
    flush at exit, or await :func:`shutdown_provider`).

    :raises ConfigError: ``otel-unavailable`` when the ``otel`` extra is not installed.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise ConfigError(
            f"--otel-endpoint needs the OpenTelemetry packages: pip install 'reflex-core[otel]' "
            f"({exc})",
            slug="otel-unavailable",
        ) from exc
    url = endpoint.rstrip("/")
    if not url.endswith("/v1/traces"):
        url += "/v1/traces"
    provider = TracerProvider(
        resource=Resource.create({"service.name": SERVICE_NAME, "service.version": __version__})
    )
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    return provider.get_tracer("reflex_core.serve", __version__), provider


async def shutdown_provider(provider: Any) -> None:
    """Flush and close ``provider`` in a thread: the final export is a blocking HTTP POST,
    which must not stall the event loop while other shutdown work runs."""
    await asyncio.to_thread(provider.shutdown)


def _mark_failed(span: Any, slug: str, status: int) -> None:
    from opentelemetry.trace import Status, StatusCode

    span.set_attribute(ERROR_SLUG_ATTR, slug)
    span.set_attribute(HTTP_STATUS_ATTR, status)
    span.set_status(Status(StatusCode.ERROR, slug))


@contextlib.contextmanager
def act_span(tracer: Any, request_id: str) -> Iterator[Any]:
    """The ``reflex.act`` span around one observation's trip through the wedge chain.

    A :class:`ReflexError` leaves its slug and HTTP status on the span (status ERROR, the slug
    as description); any other exception is ``internal-error``. Cancellation (a client gone)
    is not an error of the server's and leaves the status unset.
    """
    with tracer.start_as_current_span(
        SPAN_NAME, record_exception=False, set_status_on_exception=False
    ) as span:
        span.set_attribute(REQUEST_ID_ATTR, request_id)
        try:
            yield span
        except ReflexError as exc:
            _mark_failed(span, exc.slug, exc.status)
            raise
        except Exception as exc:
            span.record_exception(exc)
            _mark_failed(span, INTERNAL_ERROR_SLUG, 500)
            raise


def record_outside_chain(
    tracer: Any, request_id: str, start_wall_ns: int, exc: ReflexError | None = None
) -> None:
    """A finished ``reflex.act`` span, from receipt (``time.time_ns()``) to now, for a request
    that never entered the wedge chain: rejected before it (``exc``), or a retry answered from
    the idempotency window (no ``exc``)."""
    span = tracer.start_span(SPAN_NAME, start_time=start_wall_ns)
    try:
        span.set_attribute(REQUEST_ID_ATTR, request_id)
        if exc is None:
            span.set_attribute(REPLAY_ATTR, True)
        else:
            _mark_failed(span, exc.slug, exc.status)
    finally:
        span.end()
