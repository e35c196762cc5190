"""The first test of every plugin: it is installed, and the host loads it through its entry
point (not through an import of the module). ``wedge_chain`` is a fixture of reflex-core's
pytest plugin (installed with reflex-core): it composes the chain as the server does."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from importlib import metadata
from typing import Any

import numpy as np

from reflex_core.plugin import ActRequest, ActResult
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.options import add_options, resolve_options
from reflex_core.plugin.testing import enable, make_request


def test_entry_point_is_installed() -> None:
    (ep,) = [e for e in metadata.entry_points(group="reflex.plugins") if e.name == "NAME"]
    assert ep.value == "reflex_NAME"
    assert ep.dist is not None and ep.dist.name == "reflex-NAME"


def test_host_loads_it_through_the_entry_point() -> None:
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "NAME"})
    assert pm.load_failures == []
    assert pm.registry.owner("wedges", "NAME") == "NAME"
    info = {i.name: i for i in pm.plugin_infos()}["NAME"]
    assert info.distribution == "reflex-NAME"
    assert "reflex_register_wedges" in info.hooks


async def _policy(requests: Sequence[ActRequest]) -> list[ActResult]:
    return [ActResult(actions=np.zeros((2, 3), np.float32)) for _ in requests]


def test_the_wedge_runs_when_its_option_is_given(wedge_chain: Any) -> None:
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "NAME"})
    spec = pm.registry.wedges["NAME"]
    parser = argparse.ArgumentParser()
    add_options(parser, spec.options)
    assert not spec.is_enabled(enable(spec).config)  # opt-in: off by default
    values = resolve_options(
        spec.options, vars(parser.parse_args(["--NAME-tag", "hi"])), None, owner="NAME"
    )
    chain = wedge_chain(_policy, enable(spec, values))
    assert chain.names == ["NAME"]
    result = asyncio.run(chain.handler(make_request(np.zeros(3))))
    assert result.metadata["NAME"]["tag"] == "hi"
    assert result.metadata["NAME"]["inner_ms"] >= 0


def test_the_wedge_leaves_the_inner_result_untouched(wedge_chain: Any) -> None:
    """An idempotent replay hands the same result object to every retry: a wedge that wrote
    into ``result.metadata`` would stamp it again on each one."""
    shared = ActResult(actions=np.zeros((2, 3), np.float32), metadata={"policy": "default"})

    async def replaying_policy(requests: Sequence[ActRequest]) -> list[ActResult]:
        return [shared for _ in requests]

    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "NAME"})
    chain = wedge_chain(replaying_policy, enable(pm.registry.wedges["NAME"], {"NAME_tag": "hi"}))
    result = asyncio.run(chain.handler(make_request(np.zeros(3))))
    assert result.metadata["NAME"]["tag"] == "hi" and result.metadata["policy"] == "default"
    assert shared.metadata == {"policy": "default"}
