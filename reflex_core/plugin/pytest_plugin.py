"""The pytest plugin of reflex-core (entry point ``pytest11``): fixtures for testing a plugin.

Loaded by pytest wherever reflex-core is installed, so a plugin's tests need neither a
conftest nor a path to import these from (``-p reflex_core.plugin.pytest_plugin`` loads it by
hand, e.g. from a source tree that is not installed):

* ``wedge_chain``: :func:`~reflex_core.plugin.testing.build_chain`, whose wedges are shut down
  (their ``ctx.on_shutdown`` callbacks run) when the test ends, as a stopping server does;
* ``reflex_state_dir``: ``$REFLEX_STATE_DIR`` (where a wedge keeps its state, e.g.
  ActionGuard's default audit log) set to a fresh directory, never the user's;
* ``reflex_export``: :func:`~reflex_core.plugin.testing.exported_artifact`, a real
  ``reflex export`` of a built-in checkpoint, once per session, shared by the pytest-xdist
  workers (the test is skipped where ``reflex-core[export]`` is not installed).

The doubles themselves (:class:`~reflex_core.plugin.testing.FakeBatchPolicy`,
:func:`~reflex_core.plugin.testing.enable`, ...) are imported from
:mod:`reflex_core.plugin.testing`.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from reflex_core.plugin.testing import (
    Chain,
    build_chain,
    export_available,
    exported_artifact,
    shut_down,
)


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


@pytest.fixture(scope="session")
def reflex_export(tmp_path_factory: pytest.TempPathFactory) -> Callable[..., Path]:
    """``reflex_export(model="tiny-pi05", *, embodiment="franka", mode=None) -> Path``: the
    artifact directory ``reflex export`` wrote (exported once per session, then reused; under
    pytest-xdist the workers share it). Skips the test where ``reflex export`` cannot run (no
    ``reflex-core[export]``)."""
    if not export_available():
        pytest.skip("needs reflex-core[export] (torch) to export")
    base = tmp_path_factory.getbasetemp()
    # under pytest-xdist each worker's base temp dir is <the session's>/popen-gwN
    root = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "reflex-export"
    root.mkdir(exist_ok=True)
    return functools.partial(_session_export, root)


def _session_export(
    root: Path, model: str = "tiny-pi05", *, embodiment: str | None = "franka",
    mode: str | None = None,
) -> Path:  # fmt: skip
    """:func:`exported_artifact` once for all the processes of a session: the first to ask
    exports, holding ``root/<key>.lock``, and records where in ``root/<key>.path``; the others
    wait for the lock and reuse that export."""
    from filelock import FileLock  # a dependency of torch, which an export needs anyway

    key = hashlib.sha256(repr((model, embodiment, mode)).encode()).hexdigest()[:16]
    record = root / f"{key}.path"
    with FileLock(root / f"{key}.lock"):
        if record.is_file():
            done = Path(record.read_text())
            if (done / "reflex_config.json").is_file():
                return done
        out = exported_artifact(model, embodiment=embodiment, mode=mode)
        record.write_text(str(out))
        return out
