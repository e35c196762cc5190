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
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

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
