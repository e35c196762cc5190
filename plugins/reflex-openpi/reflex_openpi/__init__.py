"""openpi's WebSocket policy protocol for Reflex: unmodified openpi clients
(``openpi_client.websocket_client_policy.WebsocketClientPolicy``) drive ``reflex serve``.

Registers the ``openpi`` transport: a WebSocket route at ``/`` and ``GET /healthz``, plus the
``--openpi-key-map`` option (``[openpi]`` table in the config file). See README.md.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import attrs

from reflex_core.plugin import Transport, hookimpl, setting

if TYPE_CHECKING:
    from starlette.routing import BaseRoute

    from reflex_core.plugin import TransportHost

__version__ = "0.1.0"


def _key_map(value: Any) -> dict[str, str]:
    from reflex_openpi.keymap import parse_key_map

    return parse_key_map(value)


@attrs.frozen
class OpenpiConfig:
    """The transport's settings (``reflex serve`` flags, the ``[openpi]`` config-file table)."""

    openpi_key_map: dict[str, str] | None = setting(
        "openpi observation keys -> state, prompt, images.<camera> or ignore, e.g. "
        "observation/image=images.front,observation/wrist_image=images.wrist (added to the "
        "defaults; see the reflex-openpi README)",
        type=_key_map,
        metavar="KEY=TARGET,...",
    )


def _routes(host: TransportHost) -> Sequence[BaseRoute]:
    from reflex_openpi.transport import openpi_routes

    return openpi_routes(host)


@hookimpl
def reflex_register_transports(register: Callable[[Transport], None]) -> None:
    register(
        Transport(
            name="openpi",
            routes=_routes,
            config_cls=OpenpiConfig,
            description="openpi's WebSocket protocol at / (msgpack-numpy) and GET /healthz",
        )
    )
