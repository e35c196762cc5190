"""The installed distribution: entry point, wedge spec, options in both forms."""

from __future__ import annotations

from importlib import metadata

import attrs

from reflex_core.plugin import Stage
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.options import resolve_options
from reflex_core.plugin.registry import structure_config


def test_entry_point_is_installed() -> None:
    eps = {ep.name: ep for ep in metadata.entry_points(group="reflex.plugins")}
    assert eps["deadline"].value == "reflex_deadline"
    assert eps["deadline"].dist is not None and eps["deadline"].dist.name == "reflex-deadline"


def test_plugin_manager_registers_the_wedge() -> None:
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "deadline"})
    assert pm.load_failures == []
    spec = pm.registry.wedges["deadline"]
    assert spec.stage == Stage.DEADLINE
    assert pm.registry.owner("wedges", "deadline") == "deadline"
    flags = {o.flag for o in spec.options}
    assert {"--deadline-ms", "--deadline-fallback", "--fallback-url"} <= flags
    assert {f.name for f in attrs.fields(spec.config_cls)} == {o.dest for o in spec.options}


def test_options_from_the_command_line_and_the_config_file() -> None:
    import argparse

    from reflex_core.plugin.options import add_options

    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "deadline"})
    spec = pm.registry.wedges["deadline"]
    parser = argparse.ArgumentParser()
    add_options(parser, spec.options)
    cli = vars(parser.parse_args(["--deadline-ms", "120", "--deadline-fallback", "remote"]))
    values = resolve_options(
        spec.options,
        cli,
        {"fallback-url": "http://10.0.0.7:8000", "fallback-timeout-ms": 60, "deadline-ms": 999},
        owner="deadline",
    )
    config = structure_config(spec, values)
    assert config.deadline_ms == 120.0  # the command line wins over the file
    assert config.deadline_fallback == "remote"
    assert config.fallback_url == "http://10.0.0.7:8000"
    assert config.fallback_timeout_ms == 60.0
    assert spec.is_enabled(config)
    assert not spec.is_enabled(
        structure_config(spec, resolve_options(spec.options, {}, None, owner="deadline"))
    )
