"""The installed distribution: its entry point loads and registers the router and its options."""

from __future__ import annotations

import argparse

from reflex_core.plugin.options import add_options, resolve_options
from reflex_core.plugin.testing import installed_plugin
from reflex_core.plugin.wedges import Stage, enabled_wedges


def test_installed_and_parses_its_options() -> None:
    pm = installed_plugin("router", "reflex-router", "reflex_router")
    spec = pm.registry.wedges["router"]
    assert pm.registry.owner("wedges", "router") == "router"
    assert spec.stage == Stage.ROUTER
    flags = {o.flag for o in spec.options}
    assert {"--policy-a", "--policy-b", "--split", "--shadow", "--shadow-log"} <= flags
    parser = argparse.ArgumentParser()
    add_options(parser, spec.options)
    cli = vars(parser.parse_args(["--policy-b", "/m/b", "--shadow"]))
    values = resolve_options(
        spec.options, cli, {"split": 10, "router-trip-after": 5}, owner="router"
    )
    (wedge,) = enabled_wedges(pm.registry.wedges, {"router": values})
    assert wedge.config.policy_b == "/m/b"
    assert wedge.config.shadow is True
    assert wedge.config.split == 10.0
    assert wedge.config.router_trip_after == 5
    assert wedge.config.effective_split == 10.0
