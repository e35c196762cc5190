"""``reflex`` as a child process: what ``reflex demo`` and ``reflex eval`` start a server with.

The child runs in its own session (Ctrl-C on the parent does not reach it; the parent stops it),
with the parent's interpreter and checkout, one thread per kernel and no hub access.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import httpx

from reflex_core.errors import ReflexError


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


#: Flags every short-lived loopback server we spawn (demo, eval) gets: Hypercorn keeps a closed
#: WebSocket session's connection until its next ping, so stopping the server waited the whole
#: default interval after the last episode (measured 20.2 s with a 20 s interval).
SPAWNED_SERVE_FLAGS = ("--ws-ping-interval-s", "0.5")


def reflex_argv(*args: str) -> list[str]:
    """The same interpreter and checkout as this process, whatever is first on PATH."""
    return [sys.executable, "-m", "reflex_core.cli", *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "HF_HUB_OFFLINE": "1"}  # fmt: skip


class ServerProcess:
    """A ``reflex`` server as a child process; failures to start raise ``slug``."""

    def __init__(
        self,
        argv: list[str],
        base: str,
        log_path: Path,
        *,
        slug: str = "server-failed",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.base = base
        self.slug = slug
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env={**child_env(), **(env or {})},
            start_new_session=True,
        )  # fmt: skip
        self.exit_code: int | None = None

    def log_tail(self, lines: int = 15) -> str:
        self._log.flush()
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise ReflexError(
                    f"the server exited with {self.proc.returncode}:\n{self.log_tail()}",
                    slug=self.slug,
                )
            try:
                response = httpx.get(self.base + "/health", timeout=2.0)
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise ReflexError(
            f"the server was not ready after {timeout_s:.0f} s:\n{self.log_tail()}",
            slug=self.slug,
        )

    def stop(self, timeout_s: float = 30.0) -> int:
        """SIGTERM (graceful), SIGKILL if it lingers; returns the exit code once it is gone."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self._log.close()
        self.exit_code = self.proc.returncode
        return self.exit_code
