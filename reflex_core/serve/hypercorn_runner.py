"""Run a :class:`~reflex_core.serve.app.ReflexServer` under Hypercorn, programmatically.

SIGTERM / SIGINT start a graceful shutdown: the server reports ``stopping``, WebSocket sessions
answer the frames they hold and close, Hypercorn stops accepting connections and waits up to
``--graceful-timeout-s`` for in-flight requests, then the shutdown hooks run and the process
exits 0. A server whose start-up failed (bad artifact, failed warm-up) shuts down the same way
and exits 1.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from typing import TYPE_CHECKING

from hypercorn.asyncio.run import worker_serve
from hypercorn.config import Config as HypercornConfig
from hypercorn.utils import wrap_app

from reflex_core.errors import ConfigError

if TYPE_CHECKING:
    from reflex_core.serve.app import ReflexServer
    from reflex_core.serve.config import ServeConfig

log = logging.getLogger("reflex.serve")


def bind_address(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def hypercorn_config(config: ServeConfig) -> HypercornConfig:
    """Hypercorn settings derived from the serving options."""
    hc = HypercornConfig()
    hc.bind = [bind_address(config.host, config.port)]
    hc.graceful_timeout = config.graceful_timeout_s
    # A frame over --max-body-bytes gets an error frame from the session; only frames far
    # beyond it are cut by Hypercorn itself (close code 1009) before being buffered whole.
    hc.websocket_max_message_size = 2 * config.max_body_bytes + 1024
    # A robot at 50 Hz would otherwise reconnect every 20 s (Hypercorn's default is 1000).
    hc.keep_alive_max_requests = 1_000_000
    # A connection with no request in flight (kept alive, or headers still arriving: a
    # slowloris) is closed after this; a body that stalls is the app's (--body-timeout-s).
    hc.keep_alive_timeout = config.idle_timeout_s
    hc.websocket_ping_interval = config.ws_ping_interval_s or None
    hc.include_server_header = False
    hc.accesslog = None
    hc.errorlog = logging.getLogger("hypercorn.error")
    return hc


def _close_unbound_sockets(exc: BaseException) -> None:
    # Hypercorn's create_sockets() leaves the socket it failed to bind open; close it here
    # rather than leak a file descriptor (and a ResourceWarning) per failed start.
    tb = exc.__traceback__
    while tb is not None:
        for value in list(tb.tb_frame.f_locals.values()):
            if isinstance(value, socket.socket):
                value.close()
        tb = tb.tb_next


async def serve(server: ReflexServer, hc: HypercornConfig | None = None) -> int:
    """Serve until SIGTERM/SIGINT (or a failed start-up); returns the process exit code."""
    hc = hc or hypercorn_config(server.config)
    # Bind before the lifespan starts: a taken port is one clear error, not a half-started app.
    try:
        sockets = hc.create_sockets()
    except OSError as exc:
        _close_unbound_sockets(exc)
        raise ConfigError(
            f"cannot listen on {', '.join(hc.bind)}: {exc.strerror or exc} "
            "(another server on that port? pick one with --port)",
            slug="address-unavailable",
        ) from exc
    loop = asyncio.get_running_loop()
    signalled = asyncio.Event()

    def on_signal(name: str) -> None:
        if signalled.is_set():
            log.warning(
                "%s again: still waiting for in-flight requests (up to %ss)",
                name,
                hc.graceful_timeout,
            )
            return
        log.info("%s: finishing in-flight requests, then stopping", name)
        signalled.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig.name)

    async def shutdown_trigger() -> None:
        waiters = [
            asyncio.ensure_future(signalled.wait()),
            asyncio.ensure_future(server.failed.wait()),
        ]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        server.begin_stopping()

    try:
        await worker_serve(
            wrap_app(server.app, hc.wsgi_max_body_size, "asgi"),
            hc,
            sockets=sockets,
            shutdown_trigger=shutdown_trigger,
        )
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    if server.failure is not None:
        log.error("exiting: start-up failed (%s)", server.failure)
        return 1
    log.info("stopped")
    return 0


def resolve_event_loop(name: str) -> str:
    """``auto`` -> ``uvloop`` when it imports, else ``asyncio``; the others as given.

    :raises ConfigError: ``uvloop-unavailable`` when uvloop is asked for by name but missing.
    """
    if name == "asyncio":
        return name
    try:
        import uvloop  # noqa: F401
    except ImportError as exc:
        if name == "auto":
            return "asyncio"
        raise ConfigError(
            f"--event-loop uvloop needs uvloop, which is not installed here ({exc}); "
            "pip install uvloop, or use --event-loop asyncio",
            slug="uvloop-unavailable",
        ) from exc
    return "uvloop"


def run(server: ReflexServer, hc: HypercornConfig | None = None) -> int:
    """Blocking entry point for ``reflex serve``, on the event loop ``--event-loop`` names
    (``auto``: uvloop where installed, a C loop that costs less per request and frame).

    :raises ConfigError: ``uvloop-unavailable`` when uvloop is asked for but not installed.
    """
    loop = resolve_event_loop(server.config.event_loop)
    log.info("event loop: %s", loop)
    if loop == "uvloop":
        import uvloop

        return uvloop.run(serve(server, hc))
    return asyncio.run(serve(server, hc))
