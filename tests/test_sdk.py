"""The client SDK: encoding, endpoints, error typing, and ActionStream / AsyncActionStream
against a real Hypercorn server (the policy double, in a thread): both transports, the HTTP
fallback, every error class, timeouts and reconnecting across a server restart."""

from __future__ import annotations

import asyncio
import base64
import io
import threading
import time
from typing import Any

import numpy as np
import pytest
from PIL import Image

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.robot.sdk import (
    ActionStream,
    AsyncActionStream,
    AuthError,
    Backoff,
    RequestTimeout,
    TransportError,
    Unavailable,
    ValidationError,
    endpoints_from_url,
)
from reflex_core.robot.sdk.errors import ServerError, error_from_payload
from reflex_core.robot.sdk.sansio import ObservationEncoder, PendingTable, chunk_from_payload
from reflex_core.wire import decode_image

STATE = [0.1 * i for i in range(8)]
FAST = Backoff(initial_s=0.02, max_s=0.2, budget_s=10.0)


def frame(height: int = 12, width: int = 16, value: int = 90) -> np.ndarray:
    image = np.full((height, width, 3), value, dtype=np.uint8)
    image[:, : width // 2, 0] = 250
    return image


# ------------------------------------------------------------------------------ pure parts


@pytest.mark.parametrize(
    ("url", "ws", "act"),
    [
        ("http://h:8000", "ws://h:8000/ws", "http://h:8000/act"),
        ("ws://h:8000/ws", "ws://h:8000/ws", "http://h:8000/act"),
        ("https://proxy/reflex/", "wss://proxy/reflex/ws", "https://proxy/reflex/act"),
        ("wss://h/act", "wss://h/ws", "https://h/act"),
    ],
)
def test_endpoints_from_any_url(url: str, ws: str, act: str) -> None:
    endpoints = endpoints_from_url(url)
    assert (endpoints.ws, endpoints.act) == (ws, act)


def test_a_bad_url_is_a_config_error() -> None:
    with pytest.raises(Exception) as info:
        endpoints_from_url("ftp://h")
    assert getattr(info.value, "slug", None) == "invalid-server-url"


def test_images_are_encoded_from_arrays_bytes_or_base64() -> None:
    encoder = ObservationEncoder(prompt="session prompt", episode_id="ep")
    png = io.BytesIO()
    Image.fromarray(frame()).save(png, format="PNG")
    b64 = base64.b64encode(png.getvalue()).decode()
    item = encoder.encode(STATE, {"a": frame(), "b": png.getvalue(), "c": b64}, capture_time_ns=123)
    images = item.payload["images"]
    assert images["c"] == b64
    assert decode_image(images["b"]).tolist() == frame().tolist()  # PNG bytes kept as they are
    jpeg = decode_image(images["a"])
    assert jpeg.shape == (12, 16, 3) and np.abs(jpeg.astype(int) - frame()).mean() < 4
    assert item.payload["prompt"] == "session prompt" and item.payload["episode_id"] == "ep"
    assert (item.seq, item.capture_time_ns, item.payload["capture_time_ns"]) == (0, 123, 123)
    second = encoder.encode(STATE, prompt="override")
    assert second.seq == 1 and second.payload["prompt"] == "override"
    assert second.payload["request_id"] == f"{encoder.session_id}-1"
    assert abs(second.capture_time_ns - time.time_ns()) < 5e9


def test_the_state_is_checked_against_the_embodiment_before_sending() -> None:
    encoder = ObservationEncoder(embodiment=EmbodimentConfig.load_preset("franka"))
    with pytest.raises(ValidationError) as info:
        encoder.encode([0.0] * 7)
    assert info.value.slug == "state-length-mismatch" and info.value.details["expected"] == 8
    with pytest.raises(ValidationError) as info:
        encoder.encode([float("nan")] * 8)
    assert info.value.slug == "non-finite-state"
    with pytest.raises(ValidationError) as info:
        encoder.encode(STATE, {"front": np.zeros((4, 4), dtype=np.float32)})
    assert info.value.field == "images.front"


@pytest.mark.parametrize(
    ("status", "cls", "slug"),
    [
        (401, AuthError, "unauthorized"),
        (422, ValidationError, "state-length-mismatch"),
        (503, Unavailable, "not-ready"),
        (500, ServerError, "internal-error"),
        (418, ValidationError, "teapot"),
    ],
)
def test_error_bodies_become_typed_errors_keeping_the_slug(status, cls, slug) -> None:
    error = error_from_payload(
        status,
        {"type": "error", "error": slug, "message": "m", "field": "state"},
        retry_after_header="2",
    )
    assert isinstance(error, cls)
    assert (error.slug, error.status, error.field, error.retry_after_s) == (
        slug,
        status,
        "state",
        2.0,
    )


def test_chunks_carry_timings_keyed_to_the_capture_time() -> None:
    encoder = ObservationEncoder()
    item = encoder.encode(STATE, capture_time_ns=time.time_ns() - 5_000_000)
    item.sent_ns = time.monotonic_ns()
    chunk = chunk_from_payload(
        {
            "type": "action_chunk",
            "seq": 0,
            "actions": [[1, 2], [3, 4]],
            "metadata": {"timings": {"inference_ms": 3}},
        },
        item,
    )
    assert chunk["actions"].dtype == np.float32 and chunk["actions"].shape == (2, 2)
    assert chunk["timings"]["capture_time_ns"] == item.capture_time_ns
    assert chunk["timings"]["latency_ms"] >= 5 and chunk["timings"]["inference_ms"] == 3
    with pytest.raises(ServerError):
        chunk_from_payload({"type": "action_chunk", "actions": [[float("nan")]]}, item)


def _table(n: int) -> PendingTable:
    encoder, table = ObservationEncoder(), PendingTable()
    for _ in range(n):
        table.add(encoder.encode(STATE))
    return table


def test_frames_are_matched_to_their_observation() -> None:
    table = _table(3)
    assert table.take({"seq": 1}).seq == 1
    assert table.take({"seq": 9}) is None  # nothing pending with that seq: a duplicate
    assert [i.seq for i in table.values()] == [2]  # 0 was passed by 1: refused earlier
    table = _table(2)
    assert table.take({"type": "error", "error": "malformed-json"}).seq == 0  # in order
    assert len(table) == 1


QUEUE_FULL = {"type": "error", "error": "queue-full", "status": 503}


def test_queue_full_refusals_without_a_seq_are_orphans() -> None:
    # five sent; the server took 0 and queued 1, refused 2, 3, 4 before answering 0 and 1
    table = _table(5)
    assert [table.take(QUEUE_FULL) for _ in range(3)] == [True] * 3
    assert len(table) == 2
    assert table.take({"seq": 0}).seq == 0 and table.take({"seq": 1}).seq == 1
    assert len(table) == 0 and table.values() == []
    # the same burst when the server refused 1, 3, 4 and answered 0 and 2
    table = _table(5)
    for _ in range(3):
        table.take(QUEUE_FULL)
    assert table.take({"seq": 0}).seq == 0 and table.take({"seq": 2}).seq == 2
    assert len(table) == 0 and table.values() == []


def test_a_queue_full_refusal_with_a_seq_settles_only_its_observation() -> None:
    # five sent; the server refused 2, 3, 4 by seq before answering 0 and 1
    table = _table(5)
    for seq in (2, 3, 4):
        assert table.take({**QUEUE_FULL, "seq": seq}).seq == seq
    assert [i.seq for i in table.values()] == [0, 1]  # still owed their answers
    assert table.take({"seq": 0}).seq == 0 and table.take({"seq": 1}).seq == 1
    assert len(table) == 0


# ------------------------------------------------------------------------- a real server


@pytest.fixture(scope="module")
def server(servers: Any):
    with servers.ThreadedServer() as running:
        yield running


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_round_trip_in_order_with_images(server, transport: str) -> None:
    with ActionStream(server.base, transport=transport, prompt="pick", reconnect=FAST) as stream:
        assert stream.transport == transport
        captured = time.time_ns()
        seqs = [
            stream.send_observation(STATE, {"front": frame()}, capture_time_ns=captured + i)
            for i in range(3)
        ]
        assert seqs == [0, 1, 2] and stream.pending == 3
        chunks = [stream.recv_action(timeout=10) for _ in seqs]
    assert [c["seq"] for c in chunks] == seqs
    for i, chunk in enumerate(chunks):
        assert chunk["actions"].shape == (10, 8)
        assert chunk["timings"]["capture_time_ns"] == captured + i
        assert chunk["metadata"]["timings"]["capture_time_ns"] == captured + i  # the server's
        assert chunk["timings"]["latency_ms"] >= 0 and "inference_ms" in chunk["timings"]


@pytest.mark.slow
def test_auto_falls_back_to_http_when_the_server_has_no_websocket(servers: Any) -> None:
    with servers.ThreadedServer(without=frozenset({"ws"})) as no_ws:
        with ActionStream(no_ws.base, reconnect=FAST) as stream:
            chunk = stream.act(STATE, timeout=10)
            assert stream.transport == "http"
    assert chunk["actions"].shape == (10, 8)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_auth_errors_are_typed(servers: Any, transport: str) -> None:
    with servers.ThreadedServer(api_key="sesame") as locked:
        with pytest.raises(AuthError) as info:
            with ActionStream(locked.base, transport=transport, api_key="wrong") as stream:
                stream.act(STATE, timeout=10)
        assert (info.value.status, info.value.slug) == (401, "unauthorized")
        with ActionStream(locked.base, transport=transport, api_key="sesame") as stream:
            assert stream.act(STATE, timeout=10)["actions"].shape == (10, 8)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_validation_errors_carry_the_servers_slug(server, transport: str) -> None:
    with ActionStream(server.base, transport=transport, reconnect=FAST) as stream:
        stream.send_observation([0.0] * 3)
        stream.send_observation(STATE, {"nope": frame()})
        stream.send_observation(STATE)
        with pytest.raises(ValidationError) as short:
            stream.recv_action(timeout=10)
        with pytest.raises(ValidationError) as camera:
            stream.recv_action(timeout=10)
        fine = stream.recv_action(timeout=10)  # the stream goes on after an error
    assert (short.value.slug, short.value.status) == ("state-length-mismatch", 422)
    assert camera.value.slug == "unknown-camera"
    assert fine["seq"] == 2


@pytest.mark.slow
def test_not_ready_is_unavailable_with_retry_after(servers: Any) -> None:
    loading = servers.ThreadedServer(warmup_delay_s=1.0)
    loading.start(wait_ready=False)
    try:
        with ActionStream(loading.base, transport="http", wait_ready=False) as stream:
            with pytest.raises(Unavailable) as info:
                stream.act(STATE, timeout=10)
        assert (info.value.status, info.value.slug, info.value.retry_after_s) == (
            503,
            "not-ready",
            1.0,
        )
        # waiting for readiness (the default) gets a chunk once warm-up is over
        with ActionStream(loading.base, transport="ws", reconnect=FAST) as stream:
            assert stream.act(STATE, timeout=10)["actions"].shape == (10, 8)
    finally:
        loading.stop()


@pytest.mark.slow
def test_a_full_server_queue_is_unavailable(servers: Any) -> None:
    with servers.ThreadedServer(
        infer_delay_s=0.3, ws={"ws_queue_size": 1, "ws_when_full": "reject"}
    ) as busy:
        with ActionStream(busy.base, transport="ws") as stream:
            for _ in range(5):
                stream.send_observation(STATE)
            outcomes: list[object] = []
            for _ in range(5):
                try:
                    outcomes.append(stream.recv_action(timeout=10)["seq"])
                except Unavailable as exc:
                    outcomes.append(exc.slug)
    assert "queue-full" in outcomes
    assert any(isinstance(o, int) for o in outcomes)


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_a_timeout_keeps_the_observation_pending(servers: Any, transport: str) -> None:
    with servers.ThreadedServer(infer_delay_s=0.6) as slow:
        with ActionStream(slow.base, transport=transport) as stream:
            seq = stream.send_observation(STATE)
            started = time.monotonic()
            with pytest.raises(RequestTimeout) as info:
                stream.recv_action(timeout=0.1)
            assert time.monotonic() - started < 0.5
            assert info.value.slug == "timeout" and stream.pending == 1
            assert stream.recv_action(timeout=10)["seq"] == seq


@pytest.mark.slow
def test_an_unreachable_server_is_a_transport_error(servers: Any) -> None:
    port = servers.free_port()
    started = time.monotonic()
    with pytest.raises(TransportError) as info:
        ActionStream(f"http://127.0.0.1:{port}", connect_timeout_s=0.5, reconnect=FAST).connect()
    assert info.value.slug == "transport-error" and time.monotonic() - started < 3


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_reconnects_after_a_server_restart_mid_stream(servers: Any, transport: str) -> None:
    first = servers.ThreadedServer().start()
    second = servers.ThreadedServer(port=first.port, warmup_delay_s=0.3)
    try:
        with ActionStream(first.base, transport=transport, reconnect=FAST) as stream:
            assert stream.act(STATE, timeout=10)["seq"] == 0
            first.stop()  # closes the WebSocket (going away) and the port
            # the new server comes up a moment later and warms up before it is ready
            restart = threading.Timer(0.3, lambda: second.start(wait_ready=False))
            restart.start()
            seq = stream.send_observation(STATE)  # into the gap: sent again on reconnect
            chunk = stream.recv_action(timeout=15)
            restart.join()
            assert chunk["seq"] == seq and chunk["actions"].shape == (10, 8)
            assert stream.reconnects >= 1
            assert stream.act(STATE, timeout=10)["seq"] == seq + 1
    finally:
        first.stop()
        second.stop()
    assert second.policy.calls, "the restarted server answered"


@pytest.mark.slow
def test_auto_moves_to_http_when_the_restarted_server_has_no_websocket(servers: Any) -> None:
    first = servers.ThreadedServer().start()
    second = servers.ThreadedServer(port=first.port, without=frozenset({"ws"}))
    try:
        with ActionStream(first.base, reconnect=FAST) as stream:
            assert stream.act(STATE, timeout=10)["seq"] == 0 and stream.transport == "ws"
            first.stop()
            restart = threading.Timer(0.2, second.start)
            restart.start()
            seq = stream.send_observation(STATE)
            chunk = stream.recv_action(timeout=15)
            restart.join()
            assert chunk["seq"] == seq and stream.transport == "http"
            assert stream.act(STATE, timeout=10)["seq"] == seq + 1
    finally:
        first.stop()
        second.stop()


@pytest.mark.slow
def test_reconnecting_gives_up_after_its_budget(servers: Any) -> None:
    running = servers.ThreadedServer().start()
    try:
        budget = Backoff(initial_s=0.02, max_s=0.1, budget_s=0.5)
        with ActionStream(running.base, transport="ws", reconnect=budget) as stream:
            stream.act(STATE, timeout=10)
            running.stop()
            started = time.monotonic()
            with pytest.raises(TransportError):
                stream.act(STATE, timeout=10)
            assert time.monotonic() - started < 5
    finally:
        running.stop()


# ---------------------------------------------------------------------------- the asyncio twin


@pytest.mark.slow
@pytest.mark.parametrize("transport", ["ws", "http"])
def test_async_stream_round_trip_errors_and_timeout(servers: Any, transport: str) -> None:
    with servers.ThreadedServer(infer_delay_s=0.2) as running:

        async def session() -> None:
            async with AsyncActionStream(
                running.base, transport=transport, prompt="pick"
            ) as stream:
                assert stream.transport == transport
                seq = await stream.send_observation(STATE, {"front": frame()})
                with pytest.raises(RequestTimeout):
                    await stream.recv_action(timeout=0.05)
                chunk = await stream.recv_action(timeout=10)
                assert chunk["seq"] == seq and chunk["actions"].shape == (10, 8)
                await stream.send_observation([1.0])
                with pytest.raises(ValidationError) as info:
                    await stream.recv_action(timeout=10)
                assert info.value.slug == "state-length-mismatch"

        asyncio.run(session())


@pytest.mark.slow
def test_async_stream_reconnects_after_a_restart(servers: Any) -> None:
    first = servers.ThreadedServer().start()
    second = servers.ThreadedServer(port=first.port)

    async def session() -> None:
        async with AsyncActionStream(first.base, transport="ws", reconnect=FAST) as stream:
            await stream.act(STATE, timeout=10)
            await asyncio.to_thread(first.stop)
            restart = asyncio.get_running_loop().run_in_executor(None, second.start)
            seq = await stream.send_observation(STATE)
            chunk = await stream.recv_action(timeout=15)
            await restart
            assert chunk["seq"] == seq and stream.reconnects >= 1

    try:
        asyncio.run(session())
    finally:
        first.stop()
        second.stop()
