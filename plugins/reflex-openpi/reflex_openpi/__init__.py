"""openpi's WebSocket policy protocol for Reflex: unmodified openpi clients
(``openpi_client.websocket_client_policy.WebsocketClientPolicy``) drive ``reflex serve``.

Registers the ``openpi`` transport: a WebSocket route at ``/`` and ``GET /healthz``, plus the
``--openpi-key-map`` option (``[openpi]`` table in the config file). See README.md.
"""

from __future__ import annotations

import attrs

from reflex_core.plugin import Transport, lazy, registers, setting

__version__ = "0.1.0"


@attrs.frozen
class OpenpiConfig:
    """The transport's settings (``reflex serve`` flags, the ``[openpi]`` config-file table)."""

    openpi_key_map: dict[str, str] | None = setting(
        "openpi observation keys -> state, prompt, images.<camera> or ignore, e.g. "
        "observation/image=images.front,observation/wrist_image=images.wrist (added to the "
        "defaults; see the reflex-openpi README)",
        type=lazy("reflex_openpi.keymap:parse_key_map"),
        metavar="KEY=TARGET,...",
    )


reflex_register_transports = registers(
    Transport(
        name="openpi",
        routes=lazy("reflex_openpi.transport:openpi_routes"),
        config_cls=OpenpiConfig,
        description="openpi's WebSocket protocol at / (msgpack-numpy) and GET /healthz",
    ),
)
