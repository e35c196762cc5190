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
    load_toml_config,
    non_negative_float,
    positive_float,
    positive_int,
    resolve_options,
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


OPTIONS: tuple[Option, ...] = (
    Option("--server", "the reflex server, e.g. http://127.0.0.1:8000", metavar="URL"),
    Option(
        "--observe-command",
        "prints one observation JSON per line; long-running (read line by line, the newest "
        "line each step) unless --observe-mode once",
        type=_command,
        metavar="CMD",
    ),
    Option(
        "--act-command",
        "receives each action chunk JSON on stdin; exit 0 = applied, anything else safe-stops",
        type=_command,
        metavar="CMD",
    ),
    Option(
        "--safe-stop-command",
        "receives the safe-stop JSON (reason, message, session_id) on stdin, once, on failure",
        type=_command,
        metavar="CMD",
    ),
    Option(
        "--safe-stop-timeout-s",
        "how long the safe-stop command may take before it is killed (default 5)",
        type=positive_float,
        default=5.0,
        metavar="S",
    ),
    Option(
        "--command-timeout-s",
        "longest wait for an observation line, and longest an act command may run (default 2)",
        type=positive_float,
        default=2.0,
        metavar="S",
    ),
    Option(
        "--request-timeout-s",
        "longest wait for the server's chunk (default 5); past it: transport_error",
        type=positive_float,
        default=5.0,
        metavar="S",
    ),
    Option(
        "--rate-hz",
        f"control steps per second (default: the embodiment's, else {DEFAULT_RATE_HZ:g})",
        type=positive_float,
        metavar="HZ",
    ),
    Option("--api-key", f"bearer token for the server (or set {API_KEY_ENV})", metavar="KEY"),
    Option("--max-steps", "stop after N control steps", type=positive_int, metavar="N"),
    Option("--prompt", "the task prompt when observations carry none", metavar="TEXT"),
    Option(
        "--embodiment",
        "check observations against this embodiment (state length) and take its control rate",
        metavar="NAME",
    ),
    Option(
        "--observe-mode",
        "stream: one long-running observe command (default); once: run it per step and read "
        "its first line",
        choices=OBSERVE_MODES,
        default="stream",
    ),
    Option(
        "--transport",
        "auto (WebSocket, else HTTP), ws or http",
        choices=("auto", "ws", "http"),
        default="auto",
    ),
    Option(
        "--reconnect-budget-s",
        "time allowed to re-open a dropped connection before safe-stopping (default 0: a "
        "dropped connection safe-stops at once)",
        type=non_negative_float,
        default=0.0,
        metavar="S",
    ),
    Option(
        "--connect-timeout-s",
        "how long to wait for the server to be ready at start-up (default 30)",
        type=positive_float,
        default=30.0,
        metavar="S",
    ),
    Option("--episode-id", "sent with every observation", metavar="ID"),
)


@attrs.frozen
class ConnectConfig:
    """The resolved options (see :data:`OPTIONS`)."""

    server: str
    observe_command: tuple[str, ...]
    act_command: tuple[str, ...]
    safe_stop_command: tuple[str, ...] | None = None
    safe_stop_timeout_s: float = 5.0
    command_timeout_s: float = 2.0
    request_timeout_s: float = 5.0
    rate_hz: float | None = None
    api_key: str | None = attrs.field(default=None, repr=False)
    max_steps: int | None = None
    prompt: str | None = None
    embodiment: str | None = None
    observe_mode: str = "stream"
    transport: str = "auto"
    reconnect_budget_s: float = 0.0
    connect_timeout_s: float = 30.0
    episode_id: str | None = None


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
