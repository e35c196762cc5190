"""Opt-in OpenTelemetry tracing (``--otel-endpoint URL``; needs ``reflex-core[otel]``).

Each observation becomes a ``reflex.act`` span (request id, policy slot), exported over
OTLP/HTTP in batches off the request path. The packages are imported here only, so a server
without the extra never pays for them.
"""

from __future__ import annotations

from typing import Any

from reflex_core import __version__
from reflex_core.errors import ConfigError

SERVICE_NAME = "reflex-serve"


def make_tracer(endpoint: str) -> tuple[Any, Any]:
    """A tracer exporting to ``endpoint`` and its provider (call ``provider.shutdown()`` to
    flush at exit).

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
