"""The robot-side client SDK (no torch): send observations, receive action chunks.

>>> from reflex_core.robot.sdk import ActionStream
>>> with ActionStream("http://127.0.0.1:8000", embodiment="franka", prompt="pick") as stream:
...     stream.send_observation(state=joints, images={"front": frame})
...     chunk = stream.recv_action(timeout=1.0)

:class:`ActionStream` is blocking, :class:`AsyncActionStream` its asyncio twin. Errors are typed
(:mod:`reflex_core.robot.sdk.errors`). To run a robot at its control rate on top of a stream, see
:mod:`reflex_core.robot.control` (``@connect``, ``ControlLoop``).
"""

from reflex_core.robot.sdk.async_stream import AsyncActionStream
from reflex_core.robot.sdk.errors import (
    AuthError,
    BadRequest,
    DeadlineExceeded,
    PayloadTooLarge,
    ReflexError,
    RequestTimeout,
    ServerError,
    TransportError,
    Unavailable,
    ValidationError,
)
from reflex_core.robot.sdk.sansio import Backoff, Endpoints, endpoints_from_url
from reflex_core.robot.sdk.stream import ActionStream

__all__ = [
    "ActionStream",
    "AsyncActionStream",
    "AuthError",
    "Backoff",
    "BadRequest",
    "DeadlineExceeded",
    "Endpoints",
    "PayloadTooLarge",
    "ReflexError",
    "RequestTimeout",
    "ServerError",
    "TransportError",
    "Unavailable",
    "ValidationError",
    "endpoints_from_url",
]
