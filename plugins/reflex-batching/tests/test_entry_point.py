"""The installed distribution: its entry point loads and registers the wedge and its options."""

from __future__ import annotations

import argparse

from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.options import add_options, resolve_options
from reflex_core.plugin.testing import installed_plugin
from reflex_core.plugin.wedges import Stage, enabled_wedges


def test_installed_and_loaded_through_the_entry_point() -> None:
    pm = installed_plugin("batching", "reflex-batching", "reflex_batching")
    spec = pm.registry.wedges["batching"]
    assert pm.registry.owner("wedges", "batching") == "batching"
    assert spec.stage == Stage.BATCHING


def test_options_from_command_line_and_config_file() -> None:
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "batching"})
    spec = pm.registry.wedges["batching"]
    parser = argparse.ArgumentParser()
    add_options(parser, spec.options)
    flags = {o.flag for o in spec.options}
    assert {"--max-batch", "--batch-timeout-ms", "--max-batch-cost-ms", "--max-queue"} <= flags
    cli = vars(parser.parse_args(["--max-batch", "8", "--batch-timeout-ms", "2.5"]))
    values = resolve_options(
        spec.options, cli, {"max-batch-cost-ms": 120, "max-batch": 2}, owner="batching"
    )
    (wedge,) = enabled_wedges(pm.registry.wedges, {"batching": values})
    assert wedge.config.max_batch == 8  # command line wins over the file
    assert wedge.config.batch_timeout_ms == 2.5
    assert wedge.config.max_batch_cost_ms == 120.0
    assert wedge.config.max_queue == 64
