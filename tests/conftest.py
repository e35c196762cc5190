"""Shared fixtures for the core tests. Autoload of installed plugins is off: a test's plugins
are handed to the manager directly.

Helper modules of this directory (``robot_side_servers.py``, ``conftest_artifacts.py``,
``fixtures/runtime_graphs.py``) are loaded here, by path (``--import-mode=importlib`` puts no
test directory on ``sys.path``), and reach the tests as fixtures: ``servers``,
``runtime_graphs`` and the session-cached exports (``export_artifact_dir``, ``tiny_checkpoint``,
``tiny_pi0_decomposed`` ...).
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from reflex_core.plugin.manager import ReflexPluginManager, make_plugin_manager

TESTS = Path(__file__).parent


def load_helper(filename: str) -> ModuleType:
    """``tests/<filename>`` as module ``reflex_tests_<stem>``, loaded once per process (test
    modules that still load one by path use the same name, so they share it)."""
    name = "reflex_tests_" + Path(filename).stem
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, TESTS / filename)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


# The serve test double: the serve test modules use it at module level, as
# ``sys.modules["reflex_tests_serve_double"]`` (a conftest is imported before its tests).
load_helper("serve_double.py")

# The session-cached exports of the built-in tiny checkpoints, as fixtures of every core test.
_artifacts = load_helper("conftest_artifacts.py")
export_artifact_dir = _artifacts.export_artifact_dir
tiny_checkpoint = _artifacts.tiny_checkpoint
tiny_pi0_decomposed = _artifacts.tiny_pi0_decomposed
tiny_pi0_monolithic = _artifacts.tiny_pi0_monolithic
tiny_pi05_decomposed = _artifacts.tiny_pi05_decomposed
tiny_pi05_monolithic = _artifacts.tiny_pi05_monolithic


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under pytest-xdist, the files with a ``slow`` test come first (each file's tests stay
    together and in order): scripts/test.sh hands whole files to the workers in this order
    (``--dist loadfile --no-loadscope-reorder``), so the long exports and served models are
    spread over the workers from the start instead of ending the run on one of them."""
    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture
def anyio_backend() -> str:
    """The ``anyio``-marked tests (the server's) run on asyncio, the loop it is served on."""
    return "asyncio"


@pytest.fixture(scope="session")
def servers() -> ModuleType:
    """``tests/robot_side_servers.py``: real servers on the policy double for the robot-side
    tests (``servers.ThreadedServer``, ``servers.double_subprocess``, ``servers.free_port``)."""
    return load_helper("robot_side_servers.py")


@pytest.fixture(scope="session")
def runtime_graphs() -> ModuleType:
    """``tests/fixtures/runtime_graphs.py``: tiny hand-built ONNX graphs and artifacts for the
    runtime (``runtime_graphs.write_artifact(dir)``, ``runtime_graphs.Dims()``)."""
    return load_helper("fixtures/runtime_graphs.py")


@pytest.fixture
def make_pm() -> Callable[..., ReflexPluginManager]:
    """``make_pm(name=plugin, ...)``: a manager with the built-ins plus these plugins only."""

    def build(**plugins: Any) -> ReflexPluginManager:
        return make_plugin_manager(load_entrypoints=False, extra_plugins=plugins)

    return build


@pytest.fixture
def rgb() -> np.ndarray:
    """A small seeded uint8 RGB image (6x8), distinct per pixel."""
    return np.random.default_rng(0).integers(0, 256, size=(6, 8, 3), dtype=np.uint8)
