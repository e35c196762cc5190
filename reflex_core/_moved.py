"""The module paths that moved when ``reflex_core`` was grouped by role, kept importable for
one release (0.2 removes them).

``import reflex_core.registry`` (any old path below, and any module under an old package) gives
the module at its new path, the very same module object, and a ``DeprecationWarning`` that
names the new path. Plugin authors import from :mod:`reflex_core.plugin` (the public surface)
or :mod:`reflex_core.plugin.kit`; robot code from :mod:`reflex_core.robot`.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import warnings
from collections.abc import Sequence
from types import ModuleType

REMOVED_IN = "0.2"

MOVED: dict[str, str] = {
    # plugin machinery and the wedge contract -> reflex_core.plugin
    "reflex_core.hookspecs": "reflex_core.plugin.hookspecs",
    "reflex_core.plugins": "reflex_core.plugin.manager",
    "reflex_core.registry": "reflex_core.plugin.registry",
    "reflex_core.options": "reflex_core.plugin.options",
    "reflex_core.wedges": "reflex_core.plugin.wedges",
    "reflex_core.contracts": "reflex_core.plugin.contracts",
    "reflex_core.wedge_testing": "reflex_core.plugin.testing",
    # a wedge author's kit -> reflex_core.plugin.kit
    "reflex_core.chunks": "reflex_core.plugin.kit.chunks",
    "reflex_core.jsonl": "reflex_core.plugin.kit.jsonl",
    "reflex_core.latency": "reflex_core.plugin.kit.latency",
    "reflex_core.metrics": "reflex_core.plugin.kit.collectors",
    "reflex_core.observation_age": "reflex_core.plugin.kit.observation_age",
    # the artifact and the robot description
    "reflex_core.integrity": "reflex_core.artifact.integrity",
    "reflex_core.kinematics": "reflex_core.embodiments.kinematics",
    "reflex_core.models.builtin": "reflex_core.models.tiny_checkpoints",
    # the robot side -> reflex_core.robot
    "reflex_core.sdk.common": "reflex_core.robot.sdk.sansio",
    "reflex_core.sdk": "reflex_core.robot.sdk",
    "reflex_core.connect.commands": "reflex_core.robot.connect.subprocesses",
    "reflex_core.connect": "reflex_core.robot.connect",
    "reflex_core.control": "reflex_core.robot.control",
    "reflex_core.sim": "reflex_core.robot.sim",
}


def new_name(old: str) -> str | None:
    """Where module ``old`` lives now, or None when it did not move."""
    if old in MOVED:
        return MOVED[old]
    head, _, tail = old.rpartition(".")
    while head:
        if head in MOVED:
            return f"{MOVED[head]}.{old[len(head) + 1 :]}"
        head, _, _ = head.rpartition(".")
    return None


class _Alias(importlib.abc.Loader):
    def __init__(self, old: str, new: str) -> None:
        self.old, self.new = old, new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        # stacklevel 2: the import machinery's frames are skipped, so it names the importer
        warnings.warn(
            f"{self.old} has moved to {self.new}; the old path goes in reflex-core {REMOVED_IN}",
            DeprecationWarning,
            stacklevel=2,
        )
        module = importlib.import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module: ModuleType) -> None:
        # the machinery stamped the alias's spec on the real module: give it back its own
        module.__spec__ = self._spec


class MovedFinder(importlib.abc.MetaPathFinder):
    """Answers for the old paths only; first on ``sys.meta_path`` so that a submodule of a moved
    package is never loaded a second time under its old name."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith("reflex_core."):
            return None
        new = new_name(fullname)
        if new is None:
            return None
        return importlib.util.spec_from_loader(fullname, _Alias(fullname, new))


def install() -> None:
    if not any(isinstance(finder, MovedFinder) for finder in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
