"""Closing a WebSocket so the client reads everything sent before the close.

An ASGI server drops the TCP connection as soon as the application returns. A server that
sends its close frame and returns at once can reset the socket while the client is still
replying with its own close frame; websockets' sync client (the one openpi's client uses) then
fails that reply and drops the rest of what it had just read, so an error frame or the last
answers sent right before the close never reach the caller. RFC 6455 (7.1.1) has the server
wait for the client's close frame before closing TCP; :func:`close_websocket` does that, for
at most ``timeout_s``.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.websockets import WebSocket, WebSocketState

# A live client answers a close frame at once; this only bounds how long a dead one holds its
# session open (the server's graceful timeout bounds a stop anyway).
CLOSE_HANDSHAKE_TIMEOUT_S = 2.0


async def close_websocket(
    websocket: WebSocket,
    code: int,
    reason: str = "",
    *,
    timeout_s: float = CLOSE_HANDSHAKE_TIMEOUT_S,
) -> None:
    """Send a close frame, then wait up to ``timeout_s`` for the client's close frame.

    Frames the client sends meanwhile are discarded (the session is over). Raises what
    ``websocket.close`` raises when the client is already gone."""
    await websocket.close(code, reason)
    if websocket.client_state != WebSocketState.CONNECTED:
        return
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(timeout_s):
            while (await websocket.receive())["type"] != "websocket.disconnect":
                pass
