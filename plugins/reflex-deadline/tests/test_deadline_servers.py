"""Real servers: the deadline wedge under a real Hypercorn, and the remote fallback making a
real HTTP call to another `reflex serve` (the core's policy double under Hypercorn)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from reflex_core.plugin.testing import make_request, wait_until_ready

from .conftest import SlowPolicy, T

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).resolve().parents[2] / "reflex-actionguard" / "tests" / "serve_wedges.py"
STATE = [0.0, 0.1, 0.2, -1.5, 0.3, 1.5, 0.1, 0.02]  # inside the franka limits


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextlib.contextmanager
def wedge_server(tmp_path: Path, *args: str) -> Iterator[str]:
    """A serve_wedges.py subprocess; yields its base URL once /health is 200."""
    port = free_port()
    log_path = tmp_path / f"server-{port}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, str(RUNNER), "--port", str(port), *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "OMP_NUM_THREADS": "1"},
        )
        base = f"http://127.0.0.1:{port}"
        try:
            wait_until_ready(base, proc, log_path=log_path, timeout_s=60)
            yield base
        finally:
            proc.kill()
            proc.wait(10)


def test_real_hypercorn_answers_by_the_deadline(tmp_path: Path) -> None:
    sections = {"deadline": {"deadline-ms": 100}, "actionguard": {"guard": "clamp"}}
    with wedge_server(
        tmp_path,
        "--plugins",
        "deadline,actionguard",
        "--embodiment",
        "franka",
        "--infer-delay-s",
        "1.0",
        "--sections",
        json.dumps(sections),
    ) as base:
        with httpx.Client(base_url=base, timeout=10) as client:
            started = time.monotonic()
            r = client.post("/act", json={"state": STATE, "episode_id": "ep"})
            elapsed = time.monotonic() - started
            assert r.status_code == 200, r.text
            body = r.json()
            meta = body["metadata"]
            assert meta["fallback"]["used"] is True and meta["fallback"]["strategy"] == "hold"
            # the hold passed the guard further out
            assert meta["guard"]["verdict"] == "pass"
            np.testing.assert_allclose(body["actions"], np.tile(STATE, (10, 1)), rtol=1e-6)
            assert elapsed < 0.7, f"{elapsed:.3f} s for a 100 ms deadline and a 1 s policy"
            metrics = client.get("/metrics").text
            assert 'reflex_deadline_fallbacks_total{strategy="hold"} 1.0' in metrics
            assert "reflex_deadline_late_total 1.0" in metrics
            health = client.get("/health").json()
            assert health["wedge_health"]["deadline"]["strategy"] == "hold"


async def answer_then_close(handler, timed: bool = False):
    """One request, then the wedge's shutdown (it closes its HTTP client on this loop)."""
    started = time.monotonic()
    result = await handler(make_request(STATE))
    if timed:
        result.metadata["answered_after_s"] = time.monotonic() - started
    await handler.aclose()
    return result


@pytest.fixture(scope="module")
def remote_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Another `reflex serve` (no wedges) for the remote fallback."""
    with wedge_server(tmp_path_factory.mktemp("remote")) as base:
        yield base


def test_remote_fallback_posts_to_another_reflex_serve(
    build_deadline, franka, remote_server
) -> None:
    policy = SlowPolicy(1.0)
    handler, ctx = build_deadline(
        {
            "deadline_ms": 600,
            "deadline_fallback": "remote",
            "fallback_url": remote_server,
            "fallback_timeout_ms": 400,
        },
        policy,
        embodiment=franka,
    )

    async def main():
        request = make_request(STATE, episode_id="ep")
        result = await handler(request)
        elapsed = (time.monotonic_ns() - request.received_ns) / 1e9
        await handler.aclose()  # what the server's shutdown does: close the HTTP client
        return elapsed, result

    elapsed, result = asyncio.run(main())
    meta = result.metadata["fallback"]
    assert meta["strategy"] == "remote", meta
    assert meta["remote_url"] == remote_server + "/act"
    assert meta["remote_model"] == {"family": "pi05", "model_version": "double01"}
    assert result.actions.shape == (10, 8)  # the remote double's chunk, not a hold
    assert not np.allclose(result.actions, np.tile(STATE, (10, 1)))
    assert elapsed < 0.6 + 0.3
    assert (
        ctx.metrics.get_sample_value("reflex_deadline_fallbacks_total", {"strategy": "remote"}) == 1
    )


def test_a_failing_policy_goes_to_the_remote_at_once(build_deadline, franka, remote_server) -> None:
    policy = SlowPolicy(0.0)
    policy.error = RuntimeError("boom")
    handler, _ = build_deadline(
        {"deadline_ms": 2000, "deadline_fallback": "remote", "fallback_url": remote_server},
        policy,
        embodiment=franka,
    )
    started = time.monotonic()
    result = asyncio.run(answer_then_close(handler))
    meta = result.metadata["fallback"]
    assert (meta["strategy"], meta["reason"]) == ("remote", "policy-error")
    assert time.monotonic() - started < 1.5  # did not sit out the hedge delay


def test_an_unreachable_remote_holds(build_deadline, franka) -> None:
    # A refused connection answers at once; the generous deadline only keeps a loaded machine
    # (client start-up, scheduling) from turning "unreachable" into "out of time".
    handler, ctx = build_deadline(
        {
            "deadline_ms": 1500,
            "deadline_fallback": "remote",
            "fallback_url": f"http://127.0.0.1:{free_port()}",
        },
        SlowPolicy(3.0),
        embodiment=franka,
    )
    result = asyncio.run(answer_then_close(handler))
    meta = result.metadata["fallback"]
    assert (meta["strategy"], meta["configured"]) == ("hold", "remote")
    assert "remote unreachable" in meta["detail"]
    np.testing.assert_allclose(result.actions, np.tile(STATE, (T, 1)))
    assert ctx.metrics.get_sample_value("reflex_deadline_remote_failures_total") == 1


def test_a_remote_slower_than_its_budget_holds(build_deadline, franka, tmp_path) -> None:
    with wedge_server(tmp_path, "--infer-delay-s", "2.0") as slow_remote:
        handler, _ = build_deadline(
            {
                "deadline_ms": 400,
                "deadline_fallback": "remote",
                "fallback_url": slow_remote,
                "fallback_timeout_ms": 200,
            },
            SlowPolicy(1.0),
            embodiment=franka,
        )
        result = asyncio.run(answer_then_close(handler, timed=True))
        assert result.metadata["answered_after_s"] < 1.0
    meta = result.metadata["fallback"]
    assert meta["strategy"] == "hold"
    assert "timed out" in meta["detail"] or "did not answer" in meta["detail"]
