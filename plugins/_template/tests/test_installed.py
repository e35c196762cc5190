"""The first test of every plugin: it is installed, and the host loads it through its entry
point (not through an import of the module). ``wedge_chain`` is a fixture of reflex-core's
pytest plugin (installed with reflex-core): it composes the chain as the server does."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from reflex_core.plugin import ActRequest, ActResult
from reflex_core.plugin.manager import ReflexPluginManager
from reflex_core.plugin.options import add_options, resolve_options
from reflex_core.plugin.testing import enable, installed_plugin, make_request


@pytest.fixture(scope="module")
def pm() -> ReflexPluginManager:
    """The host with only this plugin loaded, through its entry point, as ``reflex`` loads it;
    ``installed_plugin`` checks the entry point (name, module, distribution) and the load."""
    return installed_plugin("NAME", "reflex-NAME", "reflex_NAME")


def test_host_loads_it_through_the_entry_point(pm: ReflexPluginManager) -> None:
    assert pm.registry.owner("wedges", "NAME") == "NAME"
    assert "reflex_register_wedges" in {i.name: i for i in pm.plugin_infos()}["NAME"].hooks


def test_the_wedge_is_off_by_default(pm: ReflexPluginManager) -> None:
    spec = pm.registry.wedges["NAME"]
    assert not spec.is_enabled(enable(spec).config)  # opt-in


async def _policy(requests: Sequence[ActRequest]) -> list[ActResult]:
    return [ActResult(actions=np.zeros((2, 3), np.float32)) for _ in requests]


def test_the_wedge_runs_when_its_option_is_given(pm: ReflexPluginManager, wedge_chain: Any) -> None:
    spec = pm.registry.wedges["NAME"]
    parser = argparse.ArgumentParser()
    add_options(parser, spec.options)
    values = resolve_options(
        spec.options, vars(parser.parse_args(["--NAME-tag", "hi"])), None, owner="NAME"
    )
    chain = wedge_chain(_policy, enable(spec, values))
    assert chain.names == ["NAME"]
    result = asyncio.run(chain.handler(make_request(np.zeros(3))))
    assert result.metadata["NAME"]["tag"] == "hi"
    assert result.metadata["NAME"]["inner_ms"] >= 0


def test_the_wedge_leaves_the_inner_result_untouched(
    pm: ReflexPluginManager, wedge_chain: Any
) -> None:
    """An idempotent replay hands the same result object to every retry: a wedge that wrote
    into ``result.metadata`` would stamp it again on each one."""
    shared = ActResult(actions=np.zeros((2, 3), np.float32), metadata={"policy": "default"})

    async def replaying_policy(requests: Sequence[ActRequest]) -> list[ActResult]:
        return [shared for _ in requests]

    chain = wedge_chain(replaying_policy, enable(pm.registry.wedges["NAME"], {"NAME_tag": "hi"}))
    result = asyncio.run(chain.handler(make_request(np.zeros(3))))
    assert result.metadata["NAME"]["tag"] == "hi" and result.metadata["policy"] == "default"
    assert shared.metadata == {"policy": "default"}
