"""The policy server an evaluation talks to: a URL given, or a ``reflex serve`` (of an artifact)
/ ``reflex eval serve-expert`` (of an env's scripted expert) child process on 127.0.0.1."""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import attrs
import httpx

from reflex_core.errors import ReflexError
from reflex_core.serve.child import SPAWNED_SERVE_FLAGS, ServerProcess, free_port, reflex_argv

log = logging.getLogger("reflex.eval")


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
        common = ["--host", "127.0.0.1", "--port", str(port), *SPAWNED_SERVE_FLAGS]
        common += [*self.flags, *extra]
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
        # Each server its own state directory: servers of a sweep or of --server-per-worker run
        # at once, and two of them must not contend for one guard audit log.
        server = ServerProcess(
            argv,
            base,
            Path(work) / "server.log",
            slug="eval-server-failed",
            env={"REFLEX_STATE_DIR": str(Path(work) / "state")},
        )
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
