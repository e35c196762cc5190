"""Real servers for the robot-side tests (SDK, control loop, reflex connect).

* :class:`ThreadedServer`: a :class:`ReflexServer` on the policy double under the real Hypercorn,
  on 127.0.0.1, in a thread of the test process: starts in a fraction of a second, can be
  stopped and started again on the same port (a server restart mid-stream).
* :func:`double_subprocess`: ``tests/serve_double.py`` in a subprocess, for a server that gets
  SIGKILLed.

Loaded by path by tests/conftest.py (``--import-mode=importlib`` puts no test directory on
``sys.path``), which hands it to the tests as the ``servers`` fixture.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

TESTS = Path(__file__).parent


def serve_double() -> Any:
    return sys.modules["reflex_tests_serve_double"]  # tests/conftest.py loads it first


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_health(base: str, timeout_s: float = 30.0, want: int | None = 200) -> None:
    """Poll /health until it answers ``want`` (None: until it answers at all)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = httpx.get(base + "/health", timeout=2).status_code
            if want is None or status == want:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.02)
    raise AssertionError(f"{base} never answered /health {want}")


class ThreadedServer:
    """A real Hypercorn serving a ReflexServer (policy double) from a background thread.

    :param without: transport names to leave out (``{"ws"}``: a server without WebSockets).
    :param ws: the ws transport's options (``{"ws_queue_size": 1, "ws_when_full": "reject"}``).
    """

    def __init__(
        self,
        *,
        port: int | None = None,
        api_key: str | None = None,
        without: frozenset[str] = frozenset(),
        ws: dict[str, Any] | None = None,
        **policy_kwargs: Any,
    ) -> None:
        self.port = port or free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.api_key = api_key
        self.without = without
        self.ws_options = ws or {}
        self.policy_kwargs = policy_kwargs
        self.policy: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._shutdown: asyncio.Event | None = None

    def start(self, *, wait_ready: bool = True, **policy_kwargs: Any) -> ThreadedServer:
        from hypercorn.asyncio import serve

        from reflex_core.plugin.manager import make_plugin_manager
        from reflex_core.serve.app import ReflexServer
        from reflex_core.serve.config import ResolvedServeOptions, ServeConfig
        from reflex_core.serve.hypercorn_runner import hypercorn_config

        registry = make_plugin_manager(load_entrypoints=False).registry
        for name in self.without:
            registry.transports.pop(name)
        kwargs = {**self.policy_kwargs, **policy_kwargs}
        self.policy = serve_double().DoublePolicy(**kwargs)
        config = ServeConfig(port=self.port, api_key=self.api_key, graceful_timeout_s=1.0)
        options = ResolvedServeOptions(
            serve=config,
            wedges={},
            transports={
                "ws": {"ws_queue_size": 4, "ws_when_full": "wait", **self.ws_options},
                "http": {},
            },
        )
        server = ReflexServer({"default": self.policy}, registry=registry, options=options)
        started = threading.Event()

        def run() -> None:
            loop = asyncio.new_event_loop()
            asyncio.set_event_loop(loop)
            self._loop = loop
            self._shutdown = asyncio.Event()

            async def trigger() -> None:
                assert self._shutdown is not None
                await self._shutdown.wait()
                server.begin_stopping()  # as the runner does on SIGTERM: WS sessions close

            started.set()
            try:
                loop.run_until_complete(
                    serve(server.app, hypercorn_config(config), shutdown_trigger=trigger)
                )
            finally:
                loop.close()

        self._thread = threading.Thread(target=run, name=f"server-{self.port}", daemon=True)
        self._thread.start()
        started.wait(10)
        wait_health(self.base, want=200 if wait_ready else None)
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        assert self._loop is not None and self._shutdown is not None
        self._loop.call_soon_threadsafe(self._shutdown.set)
        self._thread.join(30)
        assert not self._thread.is_alive(), "the server thread did not stop"
        self._thread = None

    def __enter__(self) -> ThreadedServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def double_subprocess(tmp_path: Path, *args: str) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """``python tests/serve_double.py --port P ARGS`` until ready; yields (process, base URL);
    killed on exit."""
    port = free_port()
    log = (tmp_path / f"double-{port}.log").open("wb")
    proc = subprocess.Popen(
        [sys.executable, str(TESTS / "serve_double.py"), "--port", str(port), *args],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_health(base)
        yield proc, base
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        log.close()
