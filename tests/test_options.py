"""Plugin-contributed options: argparse wiring and CLI > config file > default resolution."""

from __future__ import annotations

import argparse
from typing import Any

import pytest

from reflex_core.errors import ConfigError
from reflex_core.options import Option, add_options, resolve_options


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
