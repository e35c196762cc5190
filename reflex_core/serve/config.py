"""``reflex serve`` options: the core's own flags, the TOML config file, and their resolution.

The core's flags are settings of :class:`ServeConfig` (:func:`~reflex_core.plugin.options.setting`)
like any wedge's, so they read from the ``[serve]`` table of the config file the same way a
wedge reads its own table::

    [serve]
    port = 8080
    cors-origin = ["http://localhost:3000"]

    [actionguard]
    guard = "clamp"

The command line wins over the file, the file over the defaults. The API key also comes from
``REFLEX_API_KEY`` (command line > environment > file).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.errors import ConfigError
from reflex_core.plugin.options import (
    Option,
    comma_list,
    count,
    duration,
    http_url,
    in_range,
    load_toml_config,
    options_of,
    positive_float,
    resolve_options,
    setting,
)

API_KEY_ENV = "REFLEX_API_KEY"
DEFAULT_MAX_BODY_BYTES = 8 * 1024 * 1024
SERVE_SECTION = "serve"
EVENT_LOOPS = ("auto", "asyncio", "uvloop")


def _origin(value: Any) -> str:
    text = str(value).rstrip("/")
    if text != "*" and not text.startswith(("http://", "https://")):
        raise ValueError(f"a CORS origin looks like https://host[:port] or '*', got {value!r}")
    return text


@attrs.frozen
class ServeConfig:
    """The core's resolved serving options; each field but ``artifact_dir`` is a
    ``reflex serve`` flag and a key of the ``[serve]`` table (see :data:`SERVE_OPTIONS`)."""

    artifact_dir: Path | None = None
    embodiment: str | None = setting(
        "robot preset name (franka, so100, ur5, or a plugin's); "
        "without it the server returns raw model actions",
        metavar="NAME",
    )
    custom_embodiment_config: Path | None = setting(
        "path to your own embodiment JSON", type=Path, metavar="PATH"
    )
    host: str = setting("interface to bind (default {default}: local only)", default="127.0.0.1")
    port: int = setting(
        "TCP port (default {default}; 0 picks a free one)",
        type=in_range(0, 65535, kind=int),
        default=8000,
    )
    api_key: str | None = setting(
        f"require 'Authorization: Bearer KEY' (or set {API_KEY_ENV}); "
        "/health and /metrics stay open",
        metavar="KEY",
        repr=False,
    )
    cors_origin: tuple[str, ...] = setting(
        "allow browser calls from this origin (repeatable; CORS is off without it)",
        type=_origin,
        multiple=True,
        metavar="ORIGIN",
        converter=tuple,
    )
    max_body_bytes: int = count(
        "largest request body or WebSocket frame accepted (default {default}; 413 above)",
        default=DEFAULT_MAX_BODY_BYTES,
        metavar="N",
    )
    providers: tuple[str, ...] | None = setting(
        "onnxruntime execution providers in order, comma-separated (default: the best available)",
        type=comma_list,
        metavar="P,...",
        converter=attrs.converters.optional(tuple),
    )
    trusted_keys: str | None = setting(
        "refuse an artifact not signed by one of the ed25519 public keys (*.pem) in DIR "
        "(see `reflex keygen`, `reflex export --sign-key`)",
        metavar="DIR",
    )
    allow_cpu_fallback: bool = setting(
        "fall back to CPU when a requested GPU provider cannot load (otherwise that is an error)",
        is_flag=True,
    )
    adaptive_steps: float | None = setting(
        "stop denoising early when successive steps change less than TOL",
        type=positive_float,
        metavar="TOL",
    )
    prefix_cache: int | None = count(
        "prefix KV cache entries per policy (0 disables)", allow_zero=True
    )
    workers_threads: int = count(
        "inference threads (bounded executor, default {default}); /health answers while they compute",
        default=2,
    )
    idempotency_window_s: float = duration(
        "a retry with the same request_id within S seconds gets the same chunk "
        "(default {default}; 0 disables)",
        default=30.0,
        allow_zero=True,
    )
    graceful_timeout_s: float = duration(
        "on SIGTERM/SIGINT, how long in-flight requests may take to finish",
        default=30.0,
        allow_zero=True,
    )
    otel_endpoint: str | None = setting(
        "send OpenTelemetry traces to this OTLP/HTTP endpoint (needs reflex-core[otel])",
        type=http_url,
        metavar="URL",
    )
    event_loop: str = setting(
        "the server's event loop: auto (uvloop where installed, else asyncio), asyncio, or "
        "uvloop (an error if it is not installed)",
        choices=EVENT_LOOPS,
        default="auto",
    )

    body_timeout_s: float = duration(
        "the whole request body must arrive within S seconds of its headers "
        "(default {default}; 408 body-timeout after)",
        default=10.0,
    )
    idle_timeout_s: float = duration(
        "close a connection that has no request in flight (kept alive, or headers not yet "
        "complete) after S seconds (default {default})",
        default=30.0,
    )
    max_concurrent_requests: int = count(
        "HTTP requests handled at once, from their headers to their answer (default "
        "{default}); past it 503 server-busy (/health and /metrics are not counted)",
        default=256,
    )
    max_ws_sessions: int = count(
        "open WebSocket sessions, every transport's (default {default}); past it the "
        "handshake gets 503 too-many-sessions",
        default=64,
    )
    ws_ping_interval_s: float = duration(
        "send a WebSocket ping every S seconds so dead peers are noticed (default {default}; "
        "0 off)",
        allow_zero=True,
        # Hypercorn (0.18) ends a closed session's connection only at its next ping tick, so
        # this is also how long a closed session lingers: shutdown waits for it (20 s once).
        default=5.0,
    )

    def __attrs_post_init__(self) -> None:
        if self.api_key is not None and not self.api_key.strip():
            raise ConfigError("the API key must not be empty", slug="invalid-config-value")
        if self.embodiment and self.custom_embodiment_config:
            raise ConfigError(
                "give either --embodiment or --custom-embodiment-config, not both",
                slug="embodiment-conflict",
            )

    @property
    def auth_enabled(self) -> bool:
        return bool(self.api_key)

    def public_dict(self) -> dict[str, Any]:
        """Everything but secrets: what ``GET /config`` shows."""
        data = attrs.asdict(self, recurse=False)
        data.pop("api_key")
        data["auth_enabled"] = self.auth_enabled
        for key, value in data.items():
            if isinstance(value, Path):
                data[key] = str(value)
            elif isinstance(value, tuple):
                data[key] = list(value)
        return data


SERVE_OPTIONS: tuple[Option, ...] = options_of(ServeConfig)


@attrs.frozen
class ResolvedServeOptions:
    """The core's config plus the option values of every wedge and transport, by name."""

    serve: ServeConfig
    wedges: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    transports: dict[str, dict[str, Any]] = attrs.field(factory=dict)


def load_config_file(path: str | os.PathLike[str]) -> dict[str, dict[str, Any]]:
    """Read a ``serve.toml``: a mapping of section name -> table."""
    path = Path(path)
    data = load_toml_config(path)
    not_tables = sorted(k for k, v in data.items() if not isinstance(v, dict))
    if not_tables:
        raise ConfigError(
            f"config file {path}: top-level key(s) {', '.join(not_tables)} must be inside a "
            f"table such as [serve] or [<wedge name>]",
            slug="config-file-invalid",
        )
    return data


def resolve_serve_options(
    cli_values: Mapping[str, Any],
    file_sections: Mapping[str, Mapping[str, Any]] | None,
    registry: Any,
    *,
    artifact_dir: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> ResolvedServeOptions:
    """Resolve the core's, every wedge's and every transport's options.

    :param cli_values: ``vars(args)``; ``None`` means "not given on the command line".
    :param file_sections: the parsed config file (section -> table), or None.
    :param registry: the plugin registry (its wedges and transports own sections).
    :raises ConfigError: an unknown section or key, or a bad value (``unknown-config-section``,
        ``unknown-config-key``, ``invalid-config-value``).
    """
    env = os.environ if env is None else env
    sections = dict(file_sections or {})
    owners = {SERVE_SECTION, *registry.wedges, *registry.transports}
    unknown = sorted(set(sections) - owners)
    if unknown:
        raise ConfigError(
            f"unknown config section(s) {', '.join(f'[{s}]' for s in unknown)}; known: "
            f"{', '.join(f'[{s}]' for s in sorted(owners))} (a wedge's section exists only "
            f"when its plugin is installed)",
            slug="unknown-config-section",
        )
    core = resolve_options(SERVE_OPTIONS, cli_values, sections.get(SERVE_SECTION), owner="serve")
    if cli_values.get("api_key") is None and env.get(API_KEY_ENV):
        core["api_key"] = env[API_KEY_ENV]
    serve = ServeConfig(artifact_dir=artifact_dir, **core)
    wedges = {
        name: resolve_options(spec.options, cli_values, sections.get(name), owner=name)
        for name, spec in sorted(registry.wedges.items())
    }
    transports = {
        name: resolve_options(t.options, cli_values, sections.get(name), owner=name)
        for name, t in sorted(registry.transports.items())
    }
    return ResolvedServeOptions(serve=serve, wedges=wedges, transports=transports)
