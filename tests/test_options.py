"""Plugin-contributed options: settings declared once on an attrs field and everything derived
from them (flag, config key, help default, validation), argparse wiring and CLI > config file >
default resolution; the shared value converters and the TOML config-file loader."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import attrs
import pytest

from reflex_core.errors import ConfigError
from reflex_core.plugin.options import (
    SETTING_KEY,
    Option,
    add_options,
    comma_list,
    count,
    duration,
    http_url,
    load_toml_config,
    non_negative_float,
    non_negative_int,
    options_of,
    positive_float,
    positive_int,
    resolve_options,
    setting,
    show_default,
)


def _slo(text: str) -> tuple[str, float]:
    """A custom option type, like an SLO spec ``p99=150ms``."""
    try:
        name, value = text.split("=")
        return name, float(value.removesuffix("ms"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected pNN=<ms>ms, got {text!r}") from None


OPTIONS = (
    Option("--guard", help="mode", choices=("clamp", "reject"), default="clamp"),
    Option("--guard-trip-after", help="trip after N", type=int, default=3),
    Option("--shadow", help="mirror to B", is_flag=True, default=False),
    Option("--slo", help="SLO", type=_slo, multiple=True),
    Option("--tag", help="tags", multiple=True, choices=("a", "b"), default=["a"]),
)


def parse_cli(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser()
    add_options(parser.add_argument_group("wedge"), OPTIONS)
    return vars(parser.parse_args(argv))


def resolve(argv: list[str], section: dict[str, Any] | None = None) -> dict[str, Any]:
    return resolve_options(OPTIONS, parse_cli(argv), section, owner="actionguard")


def test_option_names() -> None:
    opt = Option("--guard-trip-after", help="")
    assert (opt.key, opt.dest) == ("guard-trip-after", "guard_trip_after")
    for bad in ("guard", "-g", "--"):
        with pytest.raises(ValueError):
            Option(bad, help="")


def test_defaults_when_nothing_is_set() -> None:
    assert resolve([]) == {
        "guard": "clamp",
        "guard_trip_after": 3,
        "shadow": False,
        "slo": [],
        "tag": ["a"],
    }


def test_argparse_leaves_defaults_to_resolution() -> None:
    # a CLI default would hide the config file's value, so argparse must leave None
    assert set(parse_cli([]).values()) == {None}


def test_file_over_default_and_cli_over_file() -> None:
    section = {"guard": "reject", "guard-trip-after": 5, "shadow": True, "slo": ["p99=150ms"]}
    from_file = resolve([], section)
    assert from_file == {
        "guard": "reject",
        "guard_trip_after": 5,
        "shadow": True,
        "slo": [("p99", 150.0)],
        "tag": ["a"],
    }
    from_cli = resolve(
        ["--guard", "clamp", "--guard-trip-after", "9", "--slo", "p50=40ms", "--slo", "p99=90ms"],
        section,
    )
    assert from_cli["guard"] == "clamp"
    assert from_cli["guard_trip_after"] == 9
    assert from_cli["slo"] == [("p50", 40.0), ("p99", 90.0)]
    assert from_cli["shadow"] is True  # not on the command line: the file's value stays


def test_file_accepts_dest_spelling_and_a_single_value_for_multiple() -> None:
    values = resolve([], {"guard_trip_after": 2, "slo": "p95=70ms"})
    assert values["guard_trip_after"] == 2
    assert values["slo"] == [("p95", 70.0)]


def test_is_flag_on_the_command_line() -> None:
    assert resolve(["--shadow"])["shadow"] is True
    assert resolve(["--shadow"], {"shadow": False})["shadow"] is True


def test_unknown_key_is_an_error_listing_the_known_ones() -> None:
    with pytest.raises(ConfigError) as info:
        resolve([], {"guard-trip-afterr": 3})
    assert info.value.slug == "unknown-config-key"
    assert "guard-trip-afterr" in info.value.message
    assert "[actionguard]" in info.value.message
    assert "guard-trip-after" in info.value.message.split("known:")[1]


@pytest.mark.parametrize(
    "section",
    [
        {"guard-trip-after": "three"},
        {"guard-trip-after": [1]},
        {"guard": "ignore"},  # not a choice
        {"tag": ["a", "c"]},  # a choice is checked for every value of a multiple option
        {"slo": ["p99"]},  # the option type's own ArgumentTypeError
        {"shadow": "false"},  # a string is not a boolean (bool("false") is True)
        {"shadow": 1},
    ],
)
def test_bad_file_values(section: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as info:
        resolve([], section)
    assert info.value.slug == "invalid-config-value"
    assert next(iter(section)) in info.value.message


def test_bad_cli_values_are_argparse_errors(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["--guard", "ignore"], ["--guard-trip-after", "x"], ["--tag", "c"]):
        with pytest.raises(SystemExit):
            parse_cli(argv)
    assert "invalid" in capsys.readouterr().err


# -- shared value converters --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("convert", "good", "bad"),
    [
        (positive_float, [("0.5", 0.5), (3, 3.0), ("1e3", 1000.0)], ["0", "-1", "nan", "inf", "x"]),
        (non_negative_float, [("0", 0.0), (2.5, 2.5)], ["-0.1", "nan", "-inf", "inf", "x"]),
        (positive_int, [("1", 1), (7, 7)], ["0", "-3", "1.5", "x"]),
        (non_negative_int, [("0", 0), ("12", 12)], ["-1", "x"]),
    ],
)
def test_number_converters(convert: Any, good: list[tuple[Any, Any]], bad: list[Any]) -> None:
    for raw, expected in good:
        assert convert(raw) == expected
    for raw in bad:
        with pytest.raises(ValueError, match="must be|invalid literal|could not convert"):
            convert(raw)


def test_converter_messages_say_what_was_expected() -> None:
    with pytest.raises(ValueError, match=r"finite number > 0, got 'inf'"):
        positive_float("inf")
    with pytest.raises(ValueError, match=r"finite number >= 0, got '-1'"):
        non_negative_float("-1")
    with pytest.raises(ValueError, match=r"must be >= 1, got 0"):
        positive_int("0")


def test_comma_list() -> None:
    assert comma_list("a, b,,c ") == ["a", "b", "c"]
    assert comma_list(["x", " y "]) == ["x", "y"]  # a TOML list
    for empty in ("", " , ", []):
        with pytest.raises(ValueError, match="comma-separated"):
            comma_list(empty)


def test_http_url() -> None:
    assert http_url(" https://10.0.0.7:8000 ") == "https://10.0.0.7:8000"
    for bad in ("ftp://host", "http://", "10.0.0.7:8000", ""):
        with pytest.raises(ValueError, match="http"):
            http_url(bad)


def test_a_converter_error_names_the_option_in_the_file_and_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    options = (Option("--rate-hz", help="rate", type=positive_float),)
    with pytest.raises(ConfigError) as info:
        resolve_options(options, {}, {"rate-hz": "inf"}, owner="connect")
    assert info.value.slug == "invalid-config-value"
    assert "rate-hz" in info.value.message and "finite number > 0" in info.value.message
    parser = argparse.ArgumentParser()
    add_options(parser, options)
    with pytest.raises(SystemExit):
        parser.parse_args(["--rate-hz", "-1"])
    assert "--rate-hz" in capsys.readouterr().err


# -- settings: one declaration, everything derived ----------------------------------------------


def _no_repeats(_instance: Any, attribute: Any, value: list[str]) -> None:
    if len(set(value)) != len(value):
        raise ValueError(f"{attribute.name} repeats a value")


@attrs.frozen
class _Limits:
    count: int = setting("items per batch", type=positive_int, default=1, metavar="N")
    wait_s: float = setting(
        "wait this long (default {default}; 0: never)", type=non_negative_float, default=0.0
    )
    rate_hz: float | None = setting("control rate (default: the robot's)", type=positive_float)
    mode: str = setting("how to refuse", choices=("clamp", "reject"), default="clamp")
    tags: list[str] = setting("tags", multiple=True, choices=("a", "b"), validator=_no_repeats)
    strict: bool = setting("refuse instead of clamping", is_flag=True)
    audit_max_bytes: int = setting("rotate past this size", type=positive_int, default=1 << 26)
    internal: int = 7  # not a setting: no flag, no key


def test_options_are_derived_from_the_settings() -> None:
    options = {o.dest: o for o in options_of(_Limits)}
    assert list(options) == [
        "count", "wait_s", "rate_hz", "mode", "tags", "strict", "audit_max_bytes"
    ]  # fmt: skip
    assert options["wait_s"].flag == "--wait-s" and options["wait_s"].key == "wait-s"
    assert options["count"].type is positive_int and options["count"].metavar == "N"
    assert options["count"].default == 1 and options["rate_hz"].default is None
    assert options["mode"].choices == ("clamp", "reject")
    assert options["tags"].multiple and options["tags"].default == []
    assert options["strict"].is_flag and options["strict"].default is False


def test_help_shows_the_declared_default_once() -> None:
    helps = {o.dest: o.help for o in options_of(_Limits)}
    assert helps["count"] == "items per batch (default 1)"
    assert helps["wait_s"] == "wait this long (default 0; 0: never)"  # where the text says
    assert helps["rate_hz"] == "control rate (default: the robot's)"  # None: nothing appended
    assert helps["mode"] == "how to refuse (default clamp)"
    assert helps["tags"] == "tags" and helps["strict"] == "refuse instead of clamping"
    assert helps["audit_max_bytes"] == "rotate past this size (default 64 MiB)"
    assert show_default(30.0) == "30" and show_default(0.25) == "0.25"
    assert show_default(1 << 20, "--max-batch") == "1048576"  # MiB only for a -bytes flag


def test_the_settings_type_is_also_the_validator_of_a_config_built_in_python() -> None:
    assert _Limits(count=3, rate_hz=None, tags=["a", "b"], strict=True).count == 3
    for kwargs, message in [
        ({"count": 0}, "count: must be >= 1, got 0"),
        ({"rate_hz": math.inf}, "rate_hz: must be a finite number > 0, got inf"),
        ({"rate_hz": math.nan}, "rate_hz: must be a finite number > 0, got nan"),
        ({"wait_s": -0.5}, "wait_s: must be a finite number >= 0, got -0.5"),
        ({"wait_s": None}, "wait_s: must be given a value"),  # None only where it is the default
        ({"mode": "ignore"}, "mode: choose from clamp, reject, got 'ignore'"),
        ({"tags": ["a", "c"]}, "tags: choose from a, b, got 'c'"),
        ({"tags": "a"}, "tags: expected a list"),
        ({"tags": ["a", "a"]}, "tags repeats a value"),  # the extra validator runs too
        ({"strict": "false"}, "strict: expected true or false"),
    ]:
        with pytest.raises((ValueError, TypeError), match=message):
            _Limits(**kwargs)


def test_command_line_and_file_values_structure_into_the_class() -> None:
    options = options_of(_Limits)
    parser = argparse.ArgumentParser()
    add_options(parser, options)
    cli = vars(parser.parse_args(["--count", "4", "--tags", "b", "--strict"]))
    values = resolve_options(options, cli, {"wait-s": 2, "mode": "reject"}, owner="limits")
    assert _Limits(**values) == _Limits(count=4, wait_s=2.0, mode="reject", tags=["b"], strict=True)
    assert _Limits(**resolve_options(options, {}, None, owner="limits")) == _Limits()


def test_a_bad_value_says_what_was_expected_on_the_command_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = argparse.ArgumentParser()
    add_options(parser, options_of(_Limits))
    with pytest.raises(SystemExit):
        parser.parse_args(["--count", "0"])
    assert "argument --count: invalid value '0': must be >= 1, got 0" in capsys.readouterr().err


@attrs.frozen
class _Named:
    wait_s: float = duration("wait this long", default=1.0)
    grace_ms: float = duration("grace (0: none)", default=0.0, allow_zero=True)
    retries: int = count("retries", default=3)
    keep: int | None = count("entries kept (0: none)", allow_zero=True)
    log_bytes: int = count("rotate past this size", default=1 << 20)
    body_bytes: int = count("largest body", default=8, metavar="N")


def test_named_settings_pick_the_check_and_keep_the_derived_metavar() -> None:
    options = {o.dest: o for o in options_of(_Named)}
    assert [(o.type, o.metavar, o.default) for o in options.values()] == [
        (positive_float, "S", 1.0),
        (non_negative_float, "MS", 0.0),
        (positive_int, "N", 3),
        (non_negative_int, "N", None),
        (positive_int, "BYTES", 1 << 20),  # the unit in the name wins over N
        (positive_int, "N", 8),
    ]
    assert options["wait_s"].help == "wait this long (default 1)"
    assert options["log_bytes"].help == "rotate past this size (default 1 MiB)"
    assert _Named(grace_ms=0, keep=0) == _Named(grace_ms=0.0, keep=0)
    for kwargs, message in [
        ({"wait_s": 0}, "wait_s: must be a finite number > 0, got 0"),
        ({"grace_ms": -1}, "grace_ms: must be a finite number >= 0, got -1"),
        ({"retries": 0}, "retries: must be >= 1, got 0"),
        ({"keep": -1}, "keep: must be >= 0, got -1"),
        ({"wait_s": None}, "wait_s: must be given a value"),
    ]:
        with pytest.raises(ValueError, match=message):
            _Named(**kwargs)


def _owners_of_settings() -> list[tuple[str, type, tuple[Option, ...]]]:
    """The core's ``[serve]`` settings and every installed wedge's and transport's."""
    from reflex_core.plugin.manager import make_plugin_manager
    from reflex_core.serve.config import SERVE_OPTIONS, ServeConfig

    registry = make_plugin_manager().registry
    owners = [("serve", ServeConfig, SERVE_OPTIONS)]
    owners += [(n, s.config_cls, s.options) for n, s in sorted(registry.wedges.items())]
    owners += [
        (n, t.config_cls, t.options) for n, t in sorted(registry.transports.items()) if t.options
    ]
    return owners


def test_every_installed_owner_declares_its_settings_once() -> None:
    owners = _owners_of_settings()
    names = {name for name, _, _ in owners}
    # the plugins of this repository are installed by scripts/setup.sh
    assert {"serve", "ws", "openpi", "actionguard", "slo", "deadline", "batching"} <= names
    assert {"router", "a2c2"} <= names
    for name, config_cls, options in owners:
        assert config_cls is not None, name
        assert options == options_of(config_cls), f"[{name}] declares options by hand"
        defaults = {
            f.name: f.default.factory() if isinstance(f.default, attrs.Factory) else f.default
            for f in attrs.fields(config_cls)
            if SETTING_KEY in f.metadata
        }
        assert {o.dest: o.default for o in options} == defaults, name


def test_no_help_text_restates_its_default() -> None:
    """The default shown by --help comes from ``default=``; a help text that spells it out
    itself goes stale the day someone changes the default."""
    for name, config_cls, _ in _owners_of_settings():
        for field in attrs.fields(config_cls):
            meta = field.metadata.get(SETTING_KEY)
            default = field.default
            if meta is None or isinstance(default, attrs.Factory):
                continue
            shown = show_default(default, "--" + field.name.replace("_", "-"))
            if shown is not None:
                assert f"default {shown}" not in meta.help, f"[{name}] {field.name}"
                assert f"default: {shown}" not in meta.help, f"[{name}] {field.name}"


# -- TOML config files --------------------------------------------------------------------------


def test_load_toml_config(tmp_path: Path) -> None:
    path = tmp_path / "serve.toml"
    path.write_text('[serve]\nport = 8080\n\n[actionguard]\nguard = "clamp"\n')
    assert load_toml_config(path) == {"serve": {"port": 8080}, "actionguard": {"guard": "clamp"}}
    assert load_toml_config(str(path)) == load_toml_config(path)


def test_load_toml_config_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as missing:
        load_toml_config(tmp_path / "absent.toml")
    assert missing.value.slug == "config-file-missing"
    assert "absent.toml" in missing.value.message
    broken = tmp_path / "broken.toml"
    broken.write_text("[serve\nport = 1\n")
    with pytest.raises(ConfigError) as invalid:
        load_toml_config(broken)
    assert invalid.value.slug == "config-file-invalid"
    assert "not valid TOML" in invalid.value.message
