"""Bad input never gets a 500: every malformed request is a 4xx with a stable slug, and the
server keeps serving (a good request right after each bad one succeeds), over HTTP and /ws."""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from reflex_core.serve import ReflexServer, ServeConfig

sd = sys.modules["reflex_tests_serve_double"]  # loaded by tests/conftest.py
MAX_BODY = 200_000
JSON = {"content-type": "application/json"}


def _body(**extra: Any) -> bytes:
    return json.dumps(sd.observation(**extra)).encode()


def _with(field: str, value: Any) -> bytes:
    return json.dumps({**sd.observation(), field: value}).encode()


def _png_with_bad_idat_crc() -> str:
    """A valid PNG whose pixel-data chunk carries a wrong CRC (the data itself intact)."""
    data = bytearray(base64.b64decode(sd.png_b64()))
    at = data.index(b"IDAT") - 4
    length = int.from_bytes(data[at : at + 4], "big")
    crc = at + 8 + length
    data[crc : crc + 4] = bytes(b ^ 0xFF for b in data[crc : crc + 4])
    return base64.b64encode(bytes(data)).decode()


# name -> (raw body, status, slug): the JSON body matrix, sent to /act and as /ws frames.
BAD_BODIES: dict[str, tuple[bytes, int, str]] = {
    "malformed-json": (b'{"state": [1, 2,', 400, "malformed-json"),
    "empty-body": (b"", 400, "malformed-json"),
    "whitespace-body": (b"  \n ", 400, "malformed-json"),
    "not-utf8": (b'{"state": "\xff\xfe"}', 400, "malformed-json"),
    "deeply-nested": (b"[" * 50_000 + b"]" * 50_000, 400, "malformed-json"),
    "huge-int-literal": (b'{"state": [0], "seq": ' + b"9" * 5000 + b"}", 400, "malformed-json"),
    "array-not-object": (b"[1, 2, 3]", 422, "invalid-type"),
    "string-not-object": (b'"hello"', 422, "invalid-type"),
    "null-not-object": (b"null", 422, "invalid-type"),
    "number-not-object": (b"42", 422, "invalid-type"),
    "missing-state": (b'{"prompt": "pick"}', 422, "missing-field"),
    "state-is-string": (b'{"state": "0.1, 0.2"}', 422, "invalid-type"),
    "state-nested": (b'{"state": [[0.1, 0.2]]}', 422, "invalid-type"),
    "state-of-bools": (json.dumps({"state": [True] * 8}).encode(), 422, "invalid-type"),
    "state-empty": (b'{"state": []}', 422, "invalid-value"),
    "state-wrong-length": (json.dumps({"state": [0.0] * 3}).encode(), 422, "state-length-mismatch"),
    "state-nan": (b'{"state": [NaN, 0, 0, 0, 0, 0, 0, 0]}', 422, "non-finite-state"),
    "state-inf": (b'{"state": [0, -Infinity, 0, 0, 0, 0, 0, 0]}', 422, "non-finite-state"),
    "state-beyond-float32": (b'{"state": [1e39, 0, 0, 0, 0, 0, 0, 0]}', 422, "non-finite-state"),
    "state-too-long": (json.dumps({"state": [0.0] * 5000}).encode(), 413, "state-too-long"),
    "unknown-field": (_with("promt", "pick"), 422, "unknown-field"),
    "seq-wrong-type": (_with("seq", "17"), 422, "invalid-type"),
    "seq-huge": (_with("seq", 2**70), 422, "invalid-value"),
    "seq-negative": (_with("seq", -1), 422, "invalid-value"),
    "capture-time-wrong-type": (_with("capture_time_ns", "now"), 422, "invalid-type"),
    "prompt-wrong-type": (_with("prompt", 5), 422, "invalid-type"),
    "prompt-too-long": (_with("prompt", "x" * 10_000), 422, "invalid-value"),
    "prompt-aliases-disagree": (_with("instruction", "place"), 422, "conflicting-fields"),
    "request-id-wrong-type": (_with("request_id", 5), 422, "invalid-type"),
    "max-gpu-seconds-negative": (_with("max_gpu_seconds", -1), 422, "invalid-value"),
    "images-not-object": (_with("images", ["abc"]), 422, "invalid-type"),
    "image-bad-base64": (_with("images", {"front": "!!!not base64"}), 422, "image-decode-failed"),
    "image-not-an-image": (_with("images", {"front": "aGVsbG8="}), 422, "image-decode-failed"),
    "image-unknown-camera": (_with("images", {"wrist": sd.png_b64()}), 422, "unknown-camera"),
    "noise-seed-wrong-type": (_with("noise_seed", "1"), 422, "invalid-noise-seed"),
    "noise-seed-negative": (_with("noise_seed", -1), 422, "invalid-noise-seed"),
    "noise-seed-bool": (_with("noise_seed", True), 422, "invalid-noise-seed"),
    "oversize-body": (_with("prompt", "x") + b" " * MAX_BODY, 413, "payload-too-large"),
    # lenient input refused: Python's json keeps the last of two equal keys silently
    "duplicate-key": (
        b'{"state": [0, 0, 0, 0, 0, 0, 0, 0], "prompt": "pick", "prompt": "drop"}',
        400,
        "duplicate-key",
    ),
    "duplicate-nested-key": (
        b'{"state": [0, 0, 0, 0, 0, 0, 0, 0], "images": {"front": "", "front": ""}}',
        400,
        "duplicate-key",
    ),
    "png-bad-crc": (
        _with("images", {"front": _png_with_bad_idat_crc()}),
        422,
        "image-decode-failed",
    ),
}


@pytest.fixture(scope="module")
def client() -> Iterator[TestClient]:
    server = ReflexServer(
        {"default": sd.DoublePolicy()}, options=ServeConfig(max_body_bytes=MAX_BODY)
    )
    with TestClient(server.app, raise_server_exceptions=False) as test_client:
        for _ in range(500):
            if test_client.get("/health").status_code == 200:
                break
            time.sleep(0.01)
        yield test_client


def assert_error(response: Any, status: int, slug: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["type"] == "error" and body["error"] == slug
    assert body["request_id"] == response.headers["x-request-id"]
    assert isinstance(body["message"], str) and body["message"]


def assert_still_serving(client: TestClient) -> None:
    good = client.post("/act", content=_body(seq=1), headers=JSON)
    assert good.status_code == 200, good.text
    assert good.json()["type"] == "action_chunk"


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_body_over_http(client: TestClient, case: str) -> None:
    body, status, slug = BAD_BODIES[case]
    response = client.post("/act", content=body, headers=JSON)
    assert 400 <= response.status_code < 500
    assert_error(response, status, slug)
    assert_still_serving(client)


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_frame_over_websocket_keeps_the_socket_open(client: TestClient, case: str) -> None:
    body, status, slug = BAD_BODIES[case]
    with client.websocket_connect("/ws") as ws:
        ws.send_bytes(body)
        error = ws.receive_json()
        ws.send_text(_body(seq=2).decode())
        good = ws.receive_json()
    assert error["type"] == "error" and error["error"] == slug and error["status"] == status
    assert good["type"] == "action_chunk" and good["seq"] == 2


@pytest.mark.parametrize(
    "content_type",
    [
        None,
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data",
        "application/xml",
        # JSON, but not in UTF-8
        "application/json; charset=latin-1",
        "application/json; charset=utf-16",
        'application/json; charset="cp1252"',
    ],
)
def test_wrong_content_type_or_charset_is_415(client: TestClient, content_type: str | None) -> None:
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/act", content=_body(), headers=headers)
    assert_error(response, 415, "unsupported-media-type")
    assert response.json()["field"] == "Content-Type"
    assert_still_serving(client)


@pytest.mark.parametrize("encoding", ["gzip", "br", "deflate", "x-custom"])
def test_a_content_encoding_the_server_does_not_decode_is_415(
    client: TestClient, encoding: str
) -> None:
    headers = {**JSON, "content-encoding": encoding}
    response = client.post("/act", content=_body(), headers=headers)
    assert_error(response, 415, "unsupported-content-encoding")
    identity = {**JSON, "content-encoding": "identity"}
    assert client.post("/act", content=_body(), headers=identity).status_code == 200
    assert_still_serving(client)


@pytest.mark.parametrize(
    "content_type",
    [
        "application/json; charset=utf-8",
        "application/json; charset=UTF-8",
        "application/vnd.x+json",
    ],
)
def test_json_media_types_are_accepted(client: TestClient, content_type: str) -> None:
    response = client.post("/act", content=_body(), headers={"content-type": content_type})
    assert response.status_code == 200


def test_oversize_chunked_body_is_413(client: TestClient) -> None:
    def chunks() -> Iterator[bytes]:
        yield b'{"state": ['
        for _ in range(100):
            yield b"0.0, " * 1000

    response = client.post("/act", content=chunks(), headers=JSON)
    assert_error(response, 413, "payload-too-large")
    assert_still_serving(client)


def test_seq_and_request_id_edge_values_are_accepted(client: TestClient) -> None:
    response = client.post(
        "/act", content=_body(seq=2**63 - 1, request_id="r" * 128, capture_time_ns=0), headers=JSON
    )
    assert response.status_code == 200
    assert response.json()["seq"] == 2**63 - 1


@pytest.mark.parametrize(
    ("method", "path", "status", "slug"),
    [
        ("GET", "/act", 405, "method-not-allowed"),
        ("DELETE", "/act", 405, "method-not-allowed"),
        ("POST", "/health", 405, "method-not-allowed"),
        ("GET", "/nope", 404, "not-found"),
        ("POST", "/act/extra", 404, "not-found"),
    ],
)
def test_routing_errors(client: TestClient, method: str, path: str, status: int, slug: str) -> None:
    response = client.request(method, path, content=_body(), headers=JSON)
    assert_error(response, status, slug)
    assert_still_serving(client)


@pytest.mark.parametrize("request_id", ["has space", "a" * 129, "semi;colon", 'quote"d'])
def test_invalid_request_id_header(client: TestClient, request_id: str) -> None:
    response = client.post("/act", content=_body(), headers={**JSON, "X-Request-ID": request_id})
    assert_error(response, 400, "invalid-request-id")
    assert response.json()["field"] == "X-Request-ID"
    assert_still_serving(client)


def test_auth_failures_are_401_and_the_server_keeps_serving() -> None:
    server = ReflexServer({"default": sd.DoublePolicy()}, options=ServeConfig(api_key="key-1"))
    with TestClient(server.app) as client:
        for _ in range(500):
            if client.get("/health").status_code == 200:
                break
            time.sleep(0.01)
        for header in (
            {},
            {"Authorization": "Bearer "},
            {"Authorization": "Bearer key-2"},
            {"Authorization": "key-1"},
            {"Authorization": "Bearer key-1 extra"},
        ):
            assert_error(
                client.post("/act", content=_body(), headers={**JSON, **header}),
                401,
                "unauthorized",
            )
        ok = client.post("/act", content=_body(), headers={**JSON, "Authorization": "Bearer key-1"})
    assert ok.status_code == 200
