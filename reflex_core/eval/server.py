"""The policy server an evaluation talks to: a URL given, or a ``reflex serve`` (of an artifact)
/ ``reflex eval serve-expert`` (of an env's scripted expert) child process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx

from reflex_core.errors import ReflexError

log = logging.getLogger("reflex.eval")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def reflex_argv(*args: str) -> list[str]:
    """The same interpreter and checkout as this process, whatever is first on PATH."""
    return [sys.executable, "-m", "reflex_core.cli", *args]


def child_env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
            "HF_HUB_OFFLINE": "1"}  # fmt: skip


class ServerProcess:
    """A ``reflex`` server as a child process in its own session (Ctrl-C on the parent does not
    reach it; the parent stops it)."""

    def __init__(self, argv: list[str], base: str, log_path: Path) -> None:
        self.base = base
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, env=child_env(),
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
                    slug="eval-server-failed",
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
            slug="eval-server-failed",
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


@attrs.frozen
class ServerPlan:
    """Where the policy comes from.

    :ivar url: an already running server (``--server``).
    :ivar artifact: an export to serve (``--artifact``): ``reflex serve DIR --embodiment E``.
    :ivar expert_env: serve this env's scripted expert (``--expert``).
    :ivar embodiment: the env's embodiment (``--embodiment`` of a spawned server).
    :ivar flags: ``reflex serve`` flags for a spawned server (wedges, providers...).
    """

    url: str | None = None
    artifact: Path | None = None
    expert_env: str | None = None
    embodiment: str | None = None
    flags: tuple[str, ...] = ()
    ready_timeout_s: float = 180.0

    @property
    def spawns(self) -> bool:
        return self.url is None

    def argv(self, port: int, extra: Sequence[str] = ()) -> list[str]:
        common = ["--host", "127.0.0.1", "--port", str(port), *self.flags, *extra]
        if self.artifact is not None:
            emb = ["--embodiment", self.embodiment] if self.embodiment else []
            return reflex_argv("serve", str(self.artifact), *emb, *common)
        if self.expert_env is not None:
            return reflex_argv("eval", "serve-expert", "--env", self.expert_env, *common)
        raise ValueError("nothing to serve")


@contextlib.contextmanager
def served(
    plan: ServerPlan, extra_flags: Sequence[str] = ()
) -> Iterator[tuple[str, dict[str, Any]]]:
    """``(base_url, health)`` of the plan's server for the block: the given URL (its /health
    read once), or a child process started on a free loopback port and stopped after."""
    if not plan.spawns:
        assert plan.url is not None
        base = plan.url.rstrip("/")
        if base.startswith("ws"):
            base = "http" + base[2:].removesuffix("/ws")
        try:
            health = httpx.get(base + "/health", timeout=10.0).json()
        except (httpx.HTTPError, ValueError) as exc:
            raise ReflexError(
                f"cannot read {base}/health: {exc}", slug="eval-server-unreachable"
            ) from exc
        yield base, health
        return
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="reflex-eval-server-") as work:
        argv = plan.argv(port, extra_flags)
        log.info("starting %s", " ".join(argv[2:]))
        server = ServerProcess(argv, base, Path(work) / "server.log")
        try:
            health = server.wait_ready(plan.ready_timeout_s)
            yield base, health
        finally:
            server.stop()


def policy_cameras(health: dict[str, Any]) -> list[str]:
    """The cameras the served policy declares (``/health`` ``model.cameras``)."""
    model = health.get("model") or {}
    cameras = model.get("cameras") or []
    return [str(c) for c in cameras]
