"""Command-line options that plugins contribute to ``reflex serve`` (and their config-file form).

A plugin declares its options as :class:`Option` values; the core adds them to the argparse
parser and reads the same keys from the config file, so the core never knows a wedge's flags.

Config file form (TOML, ``reflex serve --config serve.toml``): a table per owner, keyed by the
flag without its leading dashes. Core options live under ``[serve]``, a wedge's under its name::

    [serve]
    host = "127.0.0.1"

    [actionguard]
    guard = "clamp"
    guard-trip-after = 3

Command-line values win over the file.

Also here: the value converters options share (:func:`positive_float`, :func:`comma_list`, ...;
an ``Option.type``) and :func:`load_toml_config`, the one reader of a TOML config file.
"""

from __future__ import annotations

import argparse
import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from reflex_core.errors import ConfigError


@attrs.frozen
class Option:
    """One ``reflex serve`` option.

    :ivar flag: the long flag, e.g. ``--guard-trip-after``.
    :ivar help: one line for ``--help``.
    :ivar type: converts a string (CLI) or a TOML value to the stored value.
    :ivar default: the value when neither the command line nor the config file sets it.
    :ivar choices: allowed values, if closed.
    :ivar multiple: repeatable; the value is a list (``--slo p99=150ms --slo p50=40ms``).
    :ivar is_flag: a boolean switch (``--shadow``).
    """

    flag: str = attrs.field()
    help: str
    type: Callable[[Any], Any] = str
    default: Any = None
    choices: tuple[Any, ...] | None = None
    multiple: bool = False
    is_flag: bool = False
    metavar: str | None = None

    @flag.validator
    def _check_flag(self, _attr: Any, value: str) -> None:
        if not value.startswith("--") or len(value) < 3:
            raise ValueError(f"option flag must look like --name, got {value!r}")

    @property
    def key(self) -> str:
        """The config-file key: the flag without its dashes (``guard-trip-after``)."""
        return self.flag[2:]

    @property
    def dest(self) -> str:
        """The Python name: ``guard_trip_after``."""
        return self.key.replace("-", "_")


def add_options(
    group: argparse._ArgumentGroup | argparse.ArgumentParser, options: Iterable[Option]
) -> None:
    """Add options to an argparse group. Defaults are left to :func:`resolve_options` so that
    a value from the config file is not hidden by an argparse default."""
    for opt in options:
        kwargs: dict[str, Any] = {"help": opt.help, "dest": opt.dest, "default": None}
        if opt.is_flag:
            kwargs["action"] = "store_const"
            kwargs["const"] = True
        else:
            kwargs["type"] = opt.type
            if opt.choices is not None:
                kwargs["choices"] = opt.choices
            if opt.metavar is not None:
                kwargs["metavar"] = opt.metavar
            if opt.multiple:
                kwargs["action"] = "append"
        group.add_argument(opt.flag, **kwargs)


def resolve_options(
    options: Iterable[Option],
    cli_values: Mapping[str, Any],
    file_section: Mapping[str, Any] | None,
    *,
    owner: str,
) -> dict[str, Any]:
    """Merge command line over config file over defaults, keyed by ``Option.dest``.

    Unknown keys in the file section are an error (``unknown-config-key``): a typo in a safety
    setting must not be silently ignored.
    """
    options = list(options)
    section = dict(file_section or {})
    known = {opt.key for opt in options} | {opt.dest for opt in options}
    unknown = sorted(k for k in section if k not in known)
    if unknown:
        raise ConfigError(
            f"unknown key(s) {', '.join(unknown)} in config section [{owner}]; "
            f"known: {', '.join(sorted(opt.key for opt in options)) or 'none'}",
            slug="unknown-config-key",
        )
    values: dict[str, Any] = {}
    for opt in options:
        cli = cli_values.get(opt.dest)
        if cli is not None:
            values[opt.dest] = cli
            continue
        raw = section.get(opt.key, section.get(opt.dest))
        if raw is None:
            values[opt.dest] = list(opt.default or []) if opt.multiple else opt.default
            continue
        try:
            if opt.multiple:
                raw_list = raw if isinstance(raw, list) else [raw]
                values[opt.dest] = [opt.type(v) for v in raw_list]
            elif opt.is_flag:
                # bool("false") is True: a switch in the file must be a real TOML boolean.
                if not isinstance(raw, bool):
                    raise TypeError("expected true or false")
                values[opt.dest] = raw
            else:
                values[opt.dest] = opt.type(raw)
        except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
            raise ConfigError(
                f"config [{owner}] {opt.key}={raw!r}: {exc}", slug="invalid-config-value"
            ) from exc
        chosen = values[opt.dest] if opt.multiple else [values[opt.dest]]
        if opt.choices is not None and any(v not in opt.choices for v in chosen):
            raise ConfigError(
                f"config [{owner}] {opt.key}={raw!r}: choose from {', '.join(map(str, opt.choices))}",
                slug="invalid-config-value",
            )
    return values


# -- value converters (``Option.type``) -----------------------------------------------------------
# Each takes a command-line string or a TOML value and raises ValueError saying what it expected;
# argparse turns that into a usage error, resolve_options into ``invalid-config-value``.


def positive_float(value: Any) -> float:
    """A finite number > 0 (NaN and infinity are refused)."""
    number = float(value)
    if not (number > 0 and math.isfinite(number)):
        raise ValueError(f"must be a finite number > 0, got {value!r}")
    return number


def non_negative_float(value: Any) -> float:
    """A finite number >= 0 (NaN and infinity are refused)."""
    number = float(value)
    if not (number >= 0 and math.isfinite(number)):
        raise ValueError(f"must be a finite number >= 0, got {value!r}")
    return number


def positive_int(value: Any) -> int:
    """An integer >= 1."""
    number = int(value)
    if number < 1:
        raise ValueError(f"must be >= 1, got {number}")
    return number


def non_negative_int(value: Any) -> int:
    """An integer >= 0."""
    number = int(value)
    if number < 0:
        raise ValueError(f"must be >= 0, got {number}")
    return number


def comma_list(value: Any) -> list[str]:
    """``a,b,c`` on the command line or a list in the config file -> its non-empty items,
    stripped; at least one."""
    parts = value if isinstance(value, list | tuple) else str(value).split(",")
    items = [str(part).strip() for part in parts if str(part).strip()]
    if not items:
        raise ValueError(f"expected one or more comma-separated values, got {value!r}")
    return items


def http_url(value: Any) -> str:
    """An ``http://`` or ``https://`` URL with a host."""
    text = str(value).strip()
    parts = urlsplit(text)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"must be an http(s) URL, got {value!r}")
    return text


# -- config files ------------------------------------------------------------------------------


def load_toml_config(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read a TOML config file (``serve.toml``, ``robot.toml``) into a dict.

    :raises ConfigError: ``config-file-missing`` when there is no such file,
        ``config-file-invalid`` when it is not valid TOML.
    """
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError as exc:
        raise ConfigError(f"config file {path} does not exist", slug="config-file-missing") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"config file {path} is not valid TOML: {exc}", slug="config-file-invalid"
        ) from exc
