"""``--otel-endpoint``: the server's ``reflex.act`` spans reach a real OTLP/HTTP collector (a
local ``http.server`` that decodes the protobuf export requests), with the request id, the
policy slot, and ERROR status plus slug for rejected requests; shutdown flushes them."""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.trace.v1.trace_pb2 import Status

from reflex_core.serve import ReflexServer, ServeConfig
from reflex_core.serve.tracing import SERVICE_NAME

sd = sys.modules["reflex_tests_serve_double"]  # loaded by tests/conftest.py
pytestmark = pytest.mark.anyio


class Collector:
    """What the collector received: (path, content type, decoded request) per POST."""

    def __init__(self) -> None:
        self.posts: list[tuple[str, str, ExportTraceServiceRequest]] = []
        self.lock = threading.Lock()

    def spans(self) -> list[tuple[dict[str, Any], Any]]:
        """Every span received, with its resource's attributes."""
        out = []
        with self.lock:
            for _, _, request in self.posts:
                for resource_spans in request.resource_spans:
                    resource = attributes(resource_spans.resource.attributes)
                    for scope_spans in resource_spans.scope_spans:
                        out.extend((resource, span) for span in scope_spans.spans)
        return out


def attributes(kvs: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for kv in kvs:
        kind = kv.value.WhichOneof("value")
        out[kv.key] = getattr(kv.value, kind) if kind else None
    return out


@pytest.fixture
def collector() -> Iterator[tuple[Collector, str]]:
    received = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            request = ExportTraceServiceRequest()
            request.ParseFromString(body)
            with received.lock:
                received.posts.append((self.path, self.headers.get("Content-Type", ""), request))
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield received, f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


def client_for(server: ReflexServer) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(server.app), base_url="http://test")


async def test_act_spans_reach_an_otlp_collector_and_shutdown_flushes_them(
    collector: tuple[Collector, str],
) -> None:
    received, endpoint = collector
    server = ReflexServer(
        {"default": sd.DoublePolicy()}, options=ServeConfig(otel_endpoint=endpoint)
    )
    ok_ids = [f"trace-ok-{i}" for i in range(3)]
    async with sd.lifespan(server.app), client_for(server) as client:
        for request_id in ok_ids:
            r = await client.post(
                "/act", json=sd.observation(), headers={"X-Request-ID": request_id}
            )
            assert r.status_code == 200, r.text
        bad = await client.post(
            "/act", json=sd.observation(state_dim=5), headers={"X-Request-ID": "trace-bad"}
        )
        assert bad.status_code == 422 and bad.json()["error"] == "state-length-mismatch"
        # The batch processor exports every 5 s; nothing may have arrived yet, and leaving the
        # lifespan (server shutdown) must flush whatever is pending.
    assert received.posts, "shutdown did not flush the spans to the collector"
    assert {path for path, _, _ in received.posts} == {"/v1/traces"}
    assert {ctype for _, ctype, _ in received.posts} == {"application/x-protobuf"}

    spans = received.spans()
    assert {span.name for _, span in spans} == {"reflex.act"}
    by_id = {attributes(span.attributes)["reflex.request_id"]: (res, span) for res, span in spans}
    assert sorted(by_id) == sorted([*ok_ids, "trace-bad"]) and len(spans) == 4
    for request_id in ok_ids:
        resource, span = by_id[request_id]
        assert resource["service.name"] == SERVICE_NAME
        attrs = attributes(span.attributes)
        assert attrs["reflex.policy"] == "default"
        assert "reflex.error.slug" not in attrs
        assert span.status.code == Status.STATUS_CODE_UNSET
        assert span.end_time_unix_nano > span.start_time_unix_nano > 0
    _, bad_span = by_id["trace-bad"]
    bad_attrs = attributes(bad_span.attributes)
    assert bad_span.status.code == Status.STATUS_CODE_ERROR
    assert bad_span.status.message == "state-length-mismatch"
    assert bad_attrs["reflex.error.slug"] == "state-length-mismatch"
    assert bad_attrs["http.response.status_code"] == 422
    assert bad_span.end_time_unix_nano >= bad_span.start_time_unix_nano > 0


async def test_a_failure_inside_the_chain_marks_its_span(
    collector: tuple[Collector, str],
) -> None:
    received, endpoint = collector
    from reflex_core.errors import Unavailable

    policy = sd.DoublePolicy(infer_error=Unavailable("the device went away", slug="device-lost"))
    server = ReflexServer({"default": policy}, options=ServeConfig(otel_endpoint=endpoint))
    async with sd.lifespan(server.app), client_for(server) as client:
        r = await client.post("/act", json=sd.observation(), headers={"X-Request-ID": "in-chain"})
        assert r.status_code == 503, r.text
    ((_, span),) = received.spans()
    attrs = attributes(span.attributes)
    assert attrs["reflex.request_id"] == "in-chain"
    assert attrs["reflex.error.slug"] == "device-lost"
    assert attrs["http.response.status_code"] == 503
    assert span.status.code == Status.STATUS_CODE_ERROR and span.status.message == "device-lost"


async def test_idempotent_replays_and_reused_ids_get_spans_too(
    collector: tuple[Collector, str],
) -> None:
    received, endpoint = collector
    policy = sd.DoublePolicy()
    server = ReflexServer({"default": policy}, options=ServeConfig(otel_endpoint=endpoint))
    async with sd.lifespan(server.app), client_for(server) as client:
        body = sd.observation(request_id="once", capture_time_ns=1)
        first = await client.post("/act", json=body, headers={"X-Request-ID": "t-first"})
        retry = await client.post("/act", json=body, headers={"X-Request-ID": "t-retry"})
        reused = await client.post(
            "/act",
            json=sd.observation(request_id="once", capture_time_ns=2),
            headers={"X-Request-ID": "t-reused"},
        )
    assert (first.status_code, retry.status_code, reused.status_code) == (200, 200, 409)
    assert policy.calls == [1]
    by_id = {attributes(s.attributes)["reflex.request_id"]: s for _, s in received.spans()}
    assert sorted(by_id) == ["t-first", "t-retry", "t-reused"]
    assert "reflex.idempotent_replay" not in attributes(by_id["t-first"].attributes)
    replay = attributes(by_id["t-retry"].attributes)
    assert replay["reflex.idempotent_replay"] is True
    assert by_id["t-retry"].status.code == Status.STATUS_CODE_UNSET
    refused = by_id["t-reused"]
    assert refused.status.code == Status.STATUS_CODE_ERROR
    assert attributes(refused.attributes)["reflex.error.slug"] == "request-id-reused"
    assert attributes(refused.attributes)["http.response.status_code"] == 409
    for span in by_id.values():
        assert span.end_time_unix_nano >= span.start_time_unix_nano > 0
