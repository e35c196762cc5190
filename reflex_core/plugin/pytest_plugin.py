"""The pytest plugin of reflex-core (entry point ``pytest11``): fixtures for testing a plugin.

Loaded by pytest wherever reflex-core is installed, so a plugin's tests need neither a
conftest nor a path to import these from (``-p reflex_core.plugin.pytest_plugin`` loads it by
hand, e.g. from a source tree that is not installed):

* ``wedge_chain``: :func:`~reflex_core.plugin.testing.build_chain`, whose wedges are shut down
  (their ``ctx.on_shutdown`` callbacks run) when the test ends, as a stopping server does;
* ``reflex_state_dir``: ``$REFLEX_STATE_DIR`` (where a wedge keeps its state, e.g.
  ActionGuard's default audit log) set to a fresh directory, never the user's.

The doubles themselves (:class:`~reflex_core.plugin.testing.FakeBatchPolicy`,
:func:`~reflex_core.plugin.testing.enable`, ...) are imported from
:mod:`reflex_core.plugin.testing`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reflex_core.plugin.testing import Chain, build_chain, shut_down


@pytest.fixture
def wedge_chain() -> Iterator[Callable[..., Chain]]:
    """``wedge_chain(policy, *enabled_wedges, ctx=None, **context) -> Chain``; see
    :func:`~reflex_core.plugin.testing.build_chain`. The chains' shutdown callbacks run at
    teardown, outside the test's event loop."""
    built: list[Chain] = []

    def build(policy: Any, *wedges: Any, **kwargs: Any) -> Chain:
        chain = build_chain(policy, *wedges, **kwargs)
        built.append(chain)
        return chain

    yield build
    for chain in built:
        asyncio.run(shut_down(chain.ctx))


@pytest.fixture
def reflex_state_dir(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A fresh ``$REFLEX_STATE_DIR`` for this test."""
    state = tmp_path_factory.mktemp("reflex-state")
    monkeypatch.setenv("REFLEX_STATE_DIR", str(state))
    return state
