"""The core's transports, registered through ``reflex_register_transports`` like a third
party's: HTTP ``POST /act`` and WebSocket ``/ws``."""

from __future__ import annotations

import attrs

from reflex_core.plugin.options import in_range, non_negative_float, setting
from reflex_core.plugin.registry import Transport, lazy, registers


@attrs.frozen
class WsConfig:
    """The WebSocket transport's settings (``[ws]`` table of the config file)."""

    ws_queue_size: int = setting(
        "frames a WebSocket session reads ahead of its answers",
        type=in_range(1, 1024, kind=int),
        default=4,
        metavar="N",
    )
    ws_when_full: str = setting(
        "when a session's queue is full: wait (stop reading; TCP back-pressure) or reject "
        "the frame with queue-full",
        choices=("wait", "reject"),
        default="wait",
    )
    ws_idle_timeout_s: float = setting(
        "close a session that sends no frame (and awaits no answer) for S seconds "
        "(default {default}; 0 never)",
        type=non_negative_float,
        default=60.0,
    )


reflex_register_transports = registers(
    Transport(
        name="http",
        routes=lazy("reflex_core.serve.http_transport:act_routes"),
        description="POST /act: one JSON observation in, one action chunk out",
    ),
    Transport(
        name="ws",
        routes=lazy("reflex_core.serve.ws_transport:ws_routes"),
        config_cls=WsConfig,
        description="GET /ws: a WebSocket session; observations in, chunks out in order",
    ),
)
