"""``reflex connect`` options: command-line flags, or the same keys in a ``robot.toml``::

    [connect]
    server = "http://10.0.0.7:8000"
    observe-command = "python observe.py --rate-hz 15"
    act-command = ["python", "act.py"]
    safe-stop-command = "python safe_stop.py"
    command-timeout-s = 1.0
    rate-hz = 15

Flags win over the file, the file over the defaults. The API key also comes from
``REFLEX_API_KEY``. Commands are split like a shell would (``shlex``) but run without one; a
TOML list is taken as the argument vector as it is.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.errors import ConfigError
from reflex_core.plugin.options import (
    Option,
    count,
    duration,
    load_toml_config,
    options_of,
    positive_float,
    resolve_options,
    setting,
)

SECTION = "connect"
API_KEY_ENV = "REFLEX_API_KEY"
OBSERVE_MODES = ("stream", "once")
DEFAULT_RATE_HZ = 10.0


def _command(value: Any) -> tuple[str, ...]:
    if isinstance(value, list | tuple):
        argv = tuple(str(v) for v in value)
    else:
        argv = tuple(shlex.split(str(value)))
    if not argv:
        raise ValueError("empty command")
    return argv


@attrs.frozen
class ConnectConfig:
    """The resolved options. Each field is one setting: its flag (``--observe-command``), its
    key in the ``[connect]`` table (``observe-command``) and its check come from here."""

    server: str = setting(
        "the reflex server, e.g. http://127.0.0.1:8000", default=attrs.NOTHING, metavar="URL"
    )
    observe_command: tuple[str, ...] = setting(
        "prints one observation JSON per line; long-running (read line by line, the newest "
        "line each step) unless --observe-mode once",
        default=attrs.NOTHING,
        type=_command,
        metavar="CMD",
    )
    act_command: tuple[str, ...] = setting(
        "receives each action chunk JSON on stdin; exit 0 = applied, anything else safe-stops",
        default=attrs.NOTHING,
        type=_command,
        metavar="CMD",
    )
    safe_stop_command: tuple[str, ...] | None = setting(
        "receives the safe-stop JSON (reason, message, session_id) on stdin, once, on failure",
        type=_command,
        metavar="CMD",
    )
    safe_stop_timeout_s: float = duration(
        "how long the safe-stop command may take before it is killed", default=5.0
    )
    command_timeout_s: float = duration(
        "longest wait for an observation line, and longest an act command may run", default=2.0
    )
    request_timeout_s: float = duration(
        "longest wait for the server's chunk (default {default}); past it: transport_error",
        default=5.0,
    )
    rate_hz: float | None = setting(
        f"control steps per second (default: the embodiment's, else {DEFAULT_RATE_HZ:g})",
        type=positive_float,
    )
    api_key: str | None = setting(
        f"bearer token for the server (or set {API_KEY_ENV})", metavar="KEY", repr=False
    )
    max_steps: int | None = count("stop after N control steps")
    prompt: str | None = setting("the task prompt when observations carry none", metavar="TEXT")
    embodiment: str | None = setting(
        "check observations against this embodiment (state length) and take its control rate",
        metavar="NAME",
    )
    observe_mode: str = setting(
        "stream: one long-running observe command (default {default}); once: run it per step "
        "and read its first line",
        choices=OBSERVE_MODES,
        default="stream",
    )
    transport: str = setting(
        "auto (WebSocket, else HTTP), ws or http", choices=("auto", "ws", "http"), default="auto"
    )
    reconnect_budget_s: float = duration(
        "time allowed to re-open a dropped connection before safe-stopping (default "
        "{default}: a dropped connection safe-stops at once)",
        default=0.0,
        allow_zero=True,
    )
    connect_timeout_s: float = duration(
        "how long to wait for the server to be ready at start-up", default=30.0
    )
    episode_id: str | None = setting("sent with every observation", metavar="ID")


#: ``reflex connect``'s flags and ``[connect]`` keys, derived from :class:`ConnectConfig`.
OPTIONS: tuple[Option, ...] = options_of(ConnectConfig)


def read_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``[connect]`` table of a TOML file."""
    path = Path(path)
    data = load_toml_config(path)
    unknown = sorted(set(data) - {SECTION})
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown table(s) {', '.join(unknown)}; reflex connect reads "
            f"[{SECTION}]",
            slug="unknown-config-section",
        )
    section = data.get(SECTION, {})
    if not isinstance(section, dict):
        raise ConfigError(
            f"config file {path}: [{SECTION}] must be a table", slug="config-file-invalid"
        )
    return section


def resolve_connect_config(
    cli_values: Mapping[str, Any],
    file_section: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ConnectConfig:
    """Flags over file over defaults; ``REFLEX_API_KEY`` when no key is given otherwise.

    :raises ConfigError: a missing ``server`` / ``observe-command`` / ``act-command``
        (``missing-option``), or a bad value (``invalid-config-value``).
    """
    env = os.environ if env is None else env
    values = resolve_options(OPTIONS, cli_values, file_section, owner=SECTION)
    if values["api_key"] is None and env.get(API_KEY_ENV):
        values["api_key"] = env[API_KEY_ENV]
    missing = [
        f"--{name.replace('_', '-')}"
        for name in ("server", "observe_command", "act_command")
        if values.get(name) is None
    ]
    if missing:
        raise ConfigError(
            f"reflex connect needs {', '.join(missing)} (flags or the [connect] table of --config)",
            slug="missing-option",
        )
    return ConnectConfig(**values)
