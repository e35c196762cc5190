"""The plugin is installed and the host loads it through its entry point."""

from __future__ import annotations

import sys
from importlib import metadata

from reflex_core.plugin.manager import make_plugin_manager


def test_entry_point_is_installed() -> None:
    (ep,) = [e for e in metadata.entry_points(group="reflex.plugins") if e.name == "groot"]
    assert ep.value == "reflex_groot"
    assert ep.dist is not None and ep.dist.name == "reflex-groot"


def test_host_registers_the_family_and_its_builtin() -> None:
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "groot"})
    assert pm.load_failures == []
    loader = pm.registry.model_loaders["groot"]
    assert pm.registry.owner("model_loaders", "groot") == "groot"
    assert "tiny-groot" in loader.builtin_checkpoints
    assert loader.builtin_checkpoints["tiny-groot"].cache_key
    assert loader.matches({"type": "groot"}) and not loader.matches({"type": "smolvla"})
    info = {i.name: i for i in make_plugin_manager().plugin_infos()}["groot"]
    assert info.distribution == "reflex-groot"
    assert "reflex_register_model_loaders" in info.hooks


def test_importing_the_plugin_does_not_import_torch() -> None:
    import subprocess

    code = "import reflex_groot, sys; reflex_groot.reflex_register_model_loaders(lambda x: None);"
    code += "print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
