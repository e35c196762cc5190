"""Plugin-contributed options: argparse wiring and CLI > config file > default resolution; the
shared value converters, attrs validators and TOML config-file loader."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

import attrs
import pytest

from reflex_core.errors import ConfigError
from reflex_core.options import (
    Option,
    add_options,
    comma_list,
    http_url,
    load_toml_config,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
    resolve_options,
)
from reflex_core.validators import non_negative, positive


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


# -- shared attrs validators --------------------------------------------------------------------


@attrs.frozen
class _Limits:
    count: int = attrs.field(default=1, validator=positive)
    wait_s: float = attrs.field(default=0.0, validator=non_negative)
    rate_hz: float | None = attrs.field(default=None, validator=attrs.validators.optional(positive))


def test_validators() -> None:
    assert _Limits(count=3, wait_s=0.0, rate_hz=None).count == 3
    assert _Limits(rate_hz=2.5).rate_hz == 2.5
    for kwargs, message in [
        ({"count": 0}, "count must be > 0, got 0"),
        ({"rate_hz": math.inf}, "rate_hz must be > 0, got inf"),
        ({"rate_hz": math.nan}, "rate_hz must be > 0, got nan"),
        ({"wait_s": -0.5}, "wait_s must be >= 0, got -0.5"),
        ({"wait_s": math.inf}, "wait_s must be >= 0, got inf"),
    ]:
        with pytest.raises(ValueError, match=message):
            _Limits(**kwargs)


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
