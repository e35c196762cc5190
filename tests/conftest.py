"""Shared fixtures for the core tests. Autoload of installed plugins is off: a test's plugins
are handed to the manager directly."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from reflex_core.plugins import ReflexPluginManager, make_plugin_manager


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
