"""The registration helpers of ``reflex_core.plugin``: ``registers`` (a hook that registers a
fixed list) and ``lazy`` (what a plugin registers instead of a function whose module is heavy:
nothing imported until called, and a wrong target says which)."""

from __future__ import annotations

import pickle
import sys
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import pytest

from reflex_core.plugin import EmbodimentSource, PluginError, WedgeSpec, lazy, registers
from reflex_core.plugin.manager import make_plugin_manager


def test_registers_is_a_hook_that_registers_its_items_in_order() -> None:
    first = EmbodimentSource(name="reg-one", load=dict)
    second = EmbodimentSource(name="reg-two", load=dict)
    plugin = SimpleNamespace(reflex_register_embodiments=registers(second, first))
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"regdemo": plugin})
    assert pm.load_failures == []
    assert [n for n in pm.registry.embodiments if n.startswith("reg-")] == ["reg-two", "reg-one"]
    assert pm.registry.embodiments["reg-one"] is first
    assert pm.registry.owner("embodiments", "reg-two") == "regdemo"
    info = {i.name: i for i in pm.plugin_infos()}["regdemo"]
    assert info.hooks == ("reflex_register_embodiments",)
    calls: list[object] = []
    plugin.reflex_register_embodiments(calls.append)  # still a plain function of `register`
    assert calls == [second, first]


def test_registers_under_the_wrong_hook_is_a_bad_registration() -> None:
    plugin = SimpleNamespace(reflex_register_envs=registers(EmbodimentSource(name="x", load=dict)))
    with pytest.raises(PluginError) as info:
        make_plugin_manager(load_entrypoints=False, extra_plugins={"wrong": plugin})
    assert info.value.slug == "plugin-bad-registration"


@pytest.fixture
def heavy_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A module that records being imported; removed from sys.modules after the test."""
    (tmp_path / "lazy_target_mod.py").write_text(
        "def double(x, *, plus=0):\n    return 2 * x + plus\n\n"
        "def make(config, next, ctx):\n    return (config, next, ctx)\n\n"
        "NOT_CALLABLE = 3\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_target_mod", raising=False)
    yield "lazy_target_mod"
    sys.modules.pop("lazy_target_mod", None)


def test_imports_the_target_on_the_first_call_only(heavy_module: str) -> None:
    double = lazy(f"{heavy_module}:double")
    assert heavy_module not in sys.modules  # creating it imports nothing
    assert double(3) == 6 and double(3, plus=1) == 7  # arguments pass through
    assert heavy_module in sys.modules
    assert double.resolve() is sys.modules[heavy_module].double


def test_repr_and_equality_name_the_target() -> None:
    target = "reflex_deadline.wedge:make_deadline"
    assert repr(lazy(target)) == f"lazy({target!r})"
    assert lazy(target) == lazy(target) and hash(lazy(target)) == hash(lazy(target))
    assert lazy(target) != lazy("reflex_slo.wedge:make_slo")


def test_survives_pickling(heavy_module: str) -> None:
    double = lazy(f"{heavy_module}:double")
    assert pickle.loads(pickle.dumps(double))(2) == 4


@pytest.mark.parametrize("target", ["lazy_target_mod", "lazy_target_mod:", ":double", ""])
def test_a_malformed_target_is_refused_at_once(target: str) -> None:
    with pytest.raises(PluginError) as info:
        lazy(target)
    assert info.value.slug == "plugin-lazy-target"
    assert repr(target) in info.value.message


@pytest.mark.parametrize(
    ("target", "says"),
    [
        ("no_such_package_xyz.wedge:make", "no module 'no_such_package_xyz'"),
        ("reflex_core.plugin.no_such_module:make", "no module 'reflex_core.plugin.no_such_module'"),
        ("lazy_target_mod:missing", "has no callable 'missing'"),
        ("lazy_target_mod:NOT_CALLABLE", "has no callable 'NOT_CALLABLE'"),
    ],
)
def test_a_target_that_does_not_exist_is_a_plugin_error_naming_it(
    heavy_module: str, target: str, says: str
) -> None:
    function = lazy(target)  # registering does not look yet
    with pytest.raises(PluginError) as info:
        function()
    assert info.value.slug == "plugin-lazy-target"
    assert repr(target) in info.value.message and says in info.value.message


def test_a_missing_dependency_of_the_target_is_raised_as_it_is(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The target exists but needs an optional extra: the error names what to install."""
    (tmp_path / "lazy_needs_extra.py").write_text(
        "import no_such_extra_xyz\n\ndef f():\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "lazy_needs_extra", raising=False)
    with pytest.raises(ModuleNotFoundError) as info:
        lazy("lazy_needs_extra:f")()
    assert info.value.name == "no_such_extra_xyz"


def test_a_spec_takes_it_where_it_takes_a_function(heavy_module: str) -> None:
    spec = WedgeSpec(
        name="lazy-demo",
        stage=15,
        config_cls=object,
        options=(),
        factory=lazy(f"{heavy_module}:make"),
        is_enabled=lambda config: True,
    )
    assert heavy_module not in sys.modules
    assert spec.factory("config", "next", "ctx") == ("config", "next", "ctx")
