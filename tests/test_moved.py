"""The module paths that moved when reflex_core was grouped by role still import, for one
release, as the very same module, with a DeprecationWarning naming the new path
(reflex_core._moved); nothing in this repository uses them any more."""

from __future__ import annotations

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reflex_core import _moved

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("old", sorted(_moved.MOVED))
def test_an_old_path_is_the_new_module_with_a_warning(old: str) -> None:
    new = importlib.import_module(_moved.MOVED[old])
    sys.modules.pop(old, None)
    with pytest.warns(DeprecationWarning, match=re.escape(f"{old} has moved to {new.__name__}")):
        module = importlib.import_module(old)
    assert module is new
    assert module.__spec__.name == new.__name__  # the alias leaves the real module as it was


def test_a_submodule_of_a_moved_package_is_not_loaded_twice() -> None:
    import reflex_core.robot.sdk.errors as new

    sys.modules.pop("reflex_core.sdk.errors", None)
    with pytest.warns(DeprecationWarning, match="reflex_core.sdk.errors has moved"):
        old = importlib.import_module("reflex_core.sdk.errors")
    assert old is new
    assert old.ReflexError is new.ReflexError


def test_the_plugin_surface_names_only_what_exists() -> None:
    import reflex_core.plugin as surface

    missing = [name for name in surface.__all__ if not hasattr(surface, name)]
    assert not missing


def test_nothing_in_the_repository_imports_an_old_path() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "*.py", "*.md", "*.toml"], cwd=REPO, capture_output=True, text=True
    ).stdout.split()
    old = "|".join(re.escape(o) for o in sorted(_moved.MOVED, key=len, reverse=True))
    pattern = re.compile(rf"\b(?:from|import)\s+(?:{old})\b(?!\.\w)|\b(?:{old})\.[A-Za-z]")
    offenders = [
        f"{path}:{n}"
        for path in tracked
        if path not in ("reflex_core/_moved.py", "tests/test_moved.py") and (REPO / path).is_file()
        for n, line in enumerate((REPO / path).read_text().splitlines(), start=1)
        if pattern.search(line)
    ]
    assert not offenders, f"old module paths in use: {offenders}"
