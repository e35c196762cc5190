"""Crash test: a real server under load, killed with SIGKILL, leaves an audit log that records
every chunk a client received before the kill; every line parses except at most one torn
tail line, which the reader reports and skips."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from reflex_actionguard.audit import summarize

from reflex_core.plugin.kit.jsonl import read_jsonl, rotated_files
from reflex_core.plugin.testing import wait_until_ready

pytestmark = pytest.mark.slow

RUNNER = Path(__file__).with_name("serve_wedges.py")
STATE = [0.0, 0.1, 0.2, -1.5, 0.3, 1.5, 0.1, 0.02]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_sigkill_under_load_loses_no_returned_chunk(tmp_path: Path) -> None:
    log = tmp_path / "audit" / "guard.jsonl"
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    sections = {
        "actionguard": {
            "guard": "clamp",
            "guard-audit-log": str(log),
            "guard-audit-max-bytes": 256 * 1024,  # rotate a few times during the run
            "guard-trip-after": 0,
        }
    }
    server_log = (tmp_path / "server.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable,
            str(RUNNER),
            "--port",
            str(port),
            "--plugins",
            "actionguard",
            "--embodiment",
            "franka",
            "--nan-every",
            "7",
            "--sections",
            json.dumps(sections),
        ],
        stdout=server_log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    acked: list[str] = []
    acked_lock = threading.Lock()
    stop = threading.Event()
    try:
        deadline = time.monotonic() + 60
        wait_until_ready(base, proc, log_path=tmp_path / "server.log", timeout_s=60)

        def client(worker: int) -> None:
            with httpx.Client(base_url=base, timeout=10) as http:
                i = 0
                while not stop.is_set():
                    rid = f"w{worker}-{i}"
                    i += 1
                    try:
                        r = http.post(
                            "/act",
                            json={"state": STATE, "episode_id": f"ep{worker}"},
                            headers={"X-Request-ID": rid},
                        )
                    except httpx.TransportError:
                        return  # the server is gone
                    if r.status_code == 200:
                        with acked_lock:
                            acked.append(rid)

        threads = [threading.Thread(target=client, args=(w,)) for w in range(6)]
        for t in threads:
            t.start()
        while True:
            with acked_lock:
                if len(acked) >= 400:
                    break
            assert time.monotonic() < deadline + 60, "load never got going"
            time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)  # mid-load: requests are in flight
        proc.wait(10)
        stop.set()
        for t in threads:
            t.join(20)
    finally:
        stop.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        server_log.close()

    scan = read_jsonl(log)
    assert len(scan.bad_lines) <= 1, scan.bad_lines
    assert all(b.reason == "torn" for b in scan.bad_lines)
    recorded = {r["request_id"] for r in scan.records if r.get("event") == "decision"}
    missing = sorted(set(acked) - recorded)
    assert not missing, f"{len(missing)} chunks returned to clients are not in the audit log"
    assert len(rotated_files(log)) >= 1
    verdicts = {r["verdict"] for r in scan.records}
    assert "rejected" in verdicts  # the NaN chunks were stopped and recorded
    summary = summarize(log)
    assert summary.verdicts["rejected"] >= 1 and summary.records == len(scan.records)
