"""SLO specs and options."""

from __future__ import annotations

import argparse

import attrs
import pytest
from reflex_slo.config import SloTarget

from reflex_core.errors import ConfigError
from reflex_core.plugin import Stage
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.options import add_options, resolve_options
from reflex_core.plugin.registry import structure_config
from reflex_core.plugin.testing import installed_plugin


@pytest.mark.parametrize(
    ("text", "q", "seconds", "label"),
    [
        ("p99=150ms", 99.0, 0.150, "p99"),
        ("p50=0.04s", 50.0, 0.04, "p50"),
        ("P95 = 40", 95.0, 0.040, "p95"),  # a bare number is ms
        ("p99.9=1s", 99.9, 1.0, "p99.9"),
    ],
)
def test_parse_slo(text: str, q: float, seconds: float, label: str) -> None:
    target = SloTarget.parse(text)
    assert target.percentile == q and target.seconds == pytest.approx(seconds)
    assert target.label == label


@pytest.mark.parametrize(
    "bad", ["99=150ms", "p99", "p0=1s", "p101=1s", "p99=fast", "p99=0ms", "p99=-5ms"]
)
def test_bad_slo_specs(bad: str) -> None:
    with pytest.raises(ValueError):
        SloTarget.parse(bad)


def test_entry_point_and_registration() -> None:
    pm = installed_plugin("slo", "reflex-slo", "reflex_slo")
    spec = pm.registry.wedges["slo"]
    assert spec.stage == Stage.SLO and pm.registry.owner("wedges", "slo") == "slo"
    assert {f.name for f in attrs.fields(spec.config_cls)} == {o.dest for o in spec.options}
    assert {"--slo", "--slo-mode", "--breaker-errors", "--breaker-cooldown-s"} <= {
        o.flag for o in spec.options
    }


def test_repeatable_slo_on_the_command_line_and_in_the_file() -> None:
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "slo"})
    spec = pm.registry.wedges["slo"]
    parser = argparse.ArgumentParser()
    add_options(parser, spec.options)
    cli = vars(parser.parse_args(["--slo", "p99=150ms", "--slo", "p50=40ms", "--slo-mode", "shed"]))
    config = structure_config(spec, resolve_options(spec.options, cli, None, owner="slo"))
    assert [t.label for t in config.targets] == ["p99", "p50"]
    assert config.slo_mode == "shed" and spec.is_enabled(config)
    from_file = resolve_options(
        spec.options, {}, {"slo": ["p95=80ms"], "breaker-errors": 3}, owner="slo"
    )
    config = structure_config(spec, from_file)
    assert config.slo == ["p95=80ms"] and config.breaker_errors == 3
    with pytest.raises(SystemExit):  # argparse refuses a malformed spec up front
        parser.parse_args(["--slo", "p99<150ms"])
    assert not spec.is_enabled(
        structure_config(spec, resolve_options(spec.options, {}, None, owner="slo"))
    )


@pytest.mark.parametrize(
    "values",
    [
        {"slo": ["p99=150ms", "p99=200ms"]},
        {"slo": ["nonsense"]},
        {"slo_mode": "panic"},
        {"breaker_errors": 0},
        {"breaker_cooldown_s": -1.0},
    ],
)
def test_invalid_config_is_a_config_error(slo_spec, values) -> None:
    with pytest.raises(ConfigError):
        structure_config(slo_spec, values)
