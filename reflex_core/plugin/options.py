"""Command-line options that plugins contribute to ``reflex serve`` (and their config-file form).

A plugin declares its settings on its attrs config class (:func:`setting`, below); the core
derives an :class:`Option` from each, adds them to the argparse parser and reads the same keys
from the config file, so the core never knows a wedge's flags.

Config file form (TOML, ``reflex serve --config serve.toml``): a table per owner, keyed by the
flag without its leading dashes. Core options live under ``[serve]``, a wedge's under its name::

    [serve]
    host = "127.0.0.1"

    [actionguard]
    guard = "clamp"
    guard-trip-after = 3

Command-line values win over the file.

A setting is declared once, as a field of the owner's attrs config class made by
:func:`setting`; everything else is derived from that field (:func:`options_of`)::

    @attrs.frozen
    class SloConfig:
        slo_window_s: float = setting(
            "percentiles cover the last this many seconds (0: by count only)",
            type=non_negative_float,
            default=30.0,
            metavar="S",
        )

- the flag is the field name with dashes (``--slo-window-s``), the config-file key the flag
  without its leading dashes (``slo-window-s``; the field name is accepted too);
- ``--help`` shows the default from ``default=`` (" (default 30)", or where the help text says
  ``{default}``), so the help never restates it;
- ``type`` is the one check of a value: it converts a command-line string or a TOML value (an
  error is an argparse usage error or ``invalid-config-value``) and, as the field's attrs
  validator, holds a config built directly in Python to the same rule.

The two kinds most settings are have a :func:`setting` of their own that picks the check:
:func:`duration`, a time in the unit the field name ends in (> 0, or >= 0 with ``allow_zero``),
and :func:`count`, a whole number (>= 1, or >= 0 with ``allow_zero``)::

    breaker_cooldown_s: float = duration("how long the breaker stays open", default=5.0)
    guard_trip_after: int = count("trip after N bad chunks; 0 never trips", default=5, allow_zero=True)

Also here: the value converters settings share (:func:`positive_float`, :func:`comma_list`,
...) and :func:`load_toml_config`, the one reader of a TOML config file.
"""

from __future__ import annotations

import argparse
import math
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attrs

from reflex_core.errors import ConfigError, PluginError


@attrs.frozen
class Option:
    """One command-line option and config-file key, as the parser and the resolver see it.

    Derived from a :func:`setting` field by :func:`options_of` (every owner declares its
    settings that way: the core's serve options, ``reflex connect``, each wedge and transport).

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
            kwargs["type"] = _argparse_type(opt.type)
            if opt.choices is not None:
                kwargs["choices"] = opt.choices
            if opt.metavar is not None:
                kwargs["metavar"] = opt.metavar
            if opt.multiple:
                kwargs["action"] = "append"
        group.add_argument(opt.flag, **kwargs)


def add_option_group(
    parser: argparse.ArgumentParser,
    title: str,
    description: str | None,
    options: Iterable[Option],
    *,
    owner: str,
) -> None:
    """Add ``options`` as a titled group of ``parser`` (one per wedge or transport in
    ``reflex serve --help``).

    :raises PluginError: ``plugin-option-conflict`` naming ``owner`` when a flag is taken.
    """
    group = parser.add_argument_group(title, description or None)
    try:
        add_options(group, options)
    except argparse.ArgumentError as exc:
        raise PluginError(
            f"plugin {owner!r} declares a command-line option that is already taken: {exc}",
            slug="plugin-option-conflict",
        ) from exc


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


def _argparse_type(convert: Callable[[Any], Any]) -> Callable[[str], Any]:
    """argparse shows only "invalid positive_float value" for a converter's ValueError; its own
    message says which bound was crossed, so pass that on (still an argparse usage error)."""
    if convert in (str, Path):
        return convert

    def parse(text: str) -> Any:
        try:
            return convert(text)
        except (TypeError, ValueError) as exc:
            raise argparse.ArgumentTypeError(f"invalid value {text!r}: {exc}") from None

    return parse


# -- settings: one declaration per option --------------------------------------------------------

SETTING_KEY = "reflex.setting"


@attrs.frozen
class Setting:
    """What :func:`setting` records in an attrs field's metadata (see :func:`options_of`)."""

    help: str
    type: Callable[[Any], Any] = str
    choices: tuple[Any, ...] | None = None
    multiple: bool = False
    is_flag: bool = False
    metavar: str | None = None


def setting(
    help: str,
    *,
    default: Any = None,
    type: Callable[[Any], Any] = str,
    choices: Sequence[Any] | None = None,
    multiple: bool = False,
    is_flag: bool = False,
    metavar: str | None = None,
    validator: Callable[[Any, attrs.Attribute[Any], Any], None] | None = None,
    converter: Callable[[Any], Any] | None = None,
    repr: bool = True,
) -> Any:
    """An attrs field that is also a ``reflex serve`` option (flag, config-file key, help).

    :param help: one line for ``--help``; the default is appended (`` (default 30)``), or put
        where the text says ``{default}``. Say what None means when the default is None.
    :param default: the value when neither the command line nor the config file sets it; a
        multiple setting defaults to an empty list.
    :param type: converts a command-line string or a TOML value and raises ValueError saying
        what it expected; it is also the field's validator (a None default allows None).
    :param choices: the allowed values, if closed (checked for every value of a multiple one).
    :param multiple: repeatable; the value is a list (``--slo p99=150ms --slo p50=40ms``).
    :param is_flag: a boolean switch (``--shadow``); defaults to False.
    :param metavar: how ``--help`` names the value; by default the unit the field name ends in
        (``_s`` S, ``_ms`` MS, ``_hz`` HZ, ``_bytes`` BYTES), else N for a ``positive_int`` /
        ``non_negative_int`` count.
    :param validator: an extra attrs validator for a check across the whole value (duplicates
        in a list); it runs after the per-value check.
    :param converter: an attrs converter applied before validation (``tuple`` for a list).
    """
    meta = Setting(
        help=help,
        type=type,
        choices=tuple(choices) if choices is not None else None,
        multiple=multiple,
        is_flag=is_flag,
        metavar=metavar,
    )
    if is_flag and default is None:
        default = False
    field_default: Any = attrs.Factory(list) if multiple and default is None else default
    validators = [_setting_validator(meta, allow_none=default is None)]
    if validator is not None:
        validators.append(validator)
    return attrs.field(
        default=field_default,
        validator=validators,
        converter=converter,
        repr=repr,
        metadata={SETTING_KEY: meta},
    )


def duration(help: str, *, default: float | None = None, allow_zero: bool = False) -> Any:
    """A :func:`setting` for a time in the unit its field name ends in (``_s``, ``_ms``; the
    metavar ``S`` / ``MS`` comes from it): a finite number > 0 (:func:`positive_float`), or
    >= 0 with ``allow_zero`` (:func:`non_negative_float`; the help says what 0 does)."""
    return setting(help, type=non_negative_float if allow_zero else positive_float, default=default)


def count(
    help: str, *, default: int | None = None, allow_zero: bool = False, metavar: str | None = None
) -> Any:
    """A :func:`setting` for a whole number of things: >= 1 (:func:`positive_int`), or >= 0
    with ``allow_zero`` (:func:`non_negative_int`; the help says what 0 does). The metavar is
    N, or the unit the field name ends in (``_bytes`` BYTES) unless ``metavar`` says otherwise."""
    return setting(
        help,
        type=non_negative_int if allow_zero else positive_int,
        default=default,
        metavar=metavar,
    )


def _setting_validator(
    meta: Setting, *, allow_none: bool
) -> Callable[[Any, attrs.Attribute[Any], Any], None]:
    def check(_instance: Any, attribute: attrs.Attribute[Any], value: Any) -> None:
        if value is None:
            if allow_none:
                return
            raise ValueError(f"{attribute.name}: must be given a value, got None")
        if meta.multiple and not isinstance(value, list | tuple):
            raise ValueError(f"{attribute.name}: expected a list, got {value!r}")
        for item in value if meta.multiple else [value]:
            if meta.is_flag:
                if not isinstance(item, bool):
                    raise ValueError(f"{attribute.name}: expected true or false, got {item!r}")
                continue
            try:
                meta.type(item)
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise ValueError(f"{attribute.name}: {exc}") from None
            if meta.choices is not None and item not in meta.choices:
                raise ValueError(
                    f"{attribute.name}: choose from {', '.join(map(str, meta.choices))}, "
                    f"got {item!r}"
                )

    return check


def options_of(config_cls: type) -> tuple[Option, ...]:
    """The :class:`Option` of each :func:`setting` field of an attrs class, in field order
    (fields made without :func:`setting` are not options)."""
    options = []
    for field in attrs.fields(config_cls):
        meta = field.metadata.get(SETTING_KEY)
        if meta is None:
            continue
        flag = "--" + field.name.replace("_", "-")
        default = field.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory()
        elif default is attrs.NOTHING:
            default = None
        options.append(
            Option(
                flag,
                _help_with_default(meta.help, default, flag),
                type=meta.type,
                default=default,
                choices=meta.choices,
                multiple=meta.multiple,
                is_flag=meta.is_flag,
                metavar=meta.metavar or _metavar(field.name, meta),
            )
        )
    return tuple(options)


_UNIT_METAVARS = {"_ms": "MS", "_s": "S", "_hz": "HZ", "_bytes": "BYTES"}


def _metavar(name: str, meta: Setting) -> str | None:
    """``--slo-window-s S``, ``--deadline-ms MS``, ``--max-queue N``: the unit a name ends in,
    else N for a count; None leaves argparse's own (``{a,b}`` for choices, the name in caps)."""
    if meta.is_flag or meta.choices is not None:
        return None
    for suffix, metavar in _UNIT_METAVARS.items():
        if name.endswith(suffix):
            return metavar
    return "N" if meta.type in (positive_int, non_negative_int) else None


def show_default(value: Any, flag: str = "") -> str | None:
    """How ``--help`` shows a default: None when there is nothing to show (no value, an off
    switch, an empty list)."""
    if value is None or isinstance(value, bool) or value in ([], ()):
        return None
    if isinstance(value, float):
        return f"{value:g}"
    mib = 1024 * 1024
    if isinstance(value, int) and flag.endswith("-bytes") and value >= mib and value % mib == 0:
        return f"{value // mib} MiB"
    if isinstance(value, list | tuple):
        return ",".join(map(str, value))
    return str(value)


def _help_with_default(help: str, default: Any, flag: str) -> str:
    shown = show_default(default, flag)
    if "{default}" in help:
        return help.replace("{default}", shown or "none")
    return help if shown is None else f"{help} (default {shown})"


# -- value converters (``setting(type=...)``) -----------------------------------------------------------
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


def in_range(
    low: float, high: float, *, kind: type[int] | type[float] = float, low_open: bool = False
) -> Callable[[Any], Any]:
    """A converter for a number in ``[low, high]`` (``(low, high]`` with ``low_open``):
    ``in_range(0, 100)`` for a percentage, ``in_range(0, 1, low_open=True)`` for a weight,
    ``in_range(1, 1024, kind=int)``."""
    bounds = f"{'(' if low_open else '['}{low:g}, {high:g}]"

    def convert(value: Any) -> Any:
        number = kind(value)
        above_low = number > low if low_open else number >= low
        if not (above_low and number <= high):  # NaN fails both
            raise ValueError(f"must be in {bounds}, got {value!r}")
        return number

    convert.__name__ = f"{kind.__name__}_in_{low:g}_{high:g}"
    return convert


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
