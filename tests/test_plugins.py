"""The plugin manager: registration, ownership, broken plugins, env switches, `reflex plugins`.

Fast tests register plugins directly or lay out a distribution's ``.dist-info`` (what an
installer writes) on a temporary sys.path entry. The ``slow`` tests build and pip-install real
distributions from tests/fixtures/ (and a renamed copy of plugins/_template) into a temporary
``--target`` directory — never into the repo's environment — and run the real CLI on them.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import pluggy
import pytest

from reflex_core.cli import build_parser, main
from reflex_core.errors import PluginError
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.manager import ReflexPluginManager, make_plugin_manager
from reflex_core.plugin.options import Option, add_options, resolve_options
from reflex_core.plugin.registry import Command, Exporter, WedgeSpec
from reflex_core.plugin.wedges import Stage, compose, enabled_wedges

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@attrs.frozen
class GreetConfig:
    hello_greeting: str | None = None


def wedge(name: str, stage: int = Stage.SLO, options: tuple[Option, ...] = ()) -> WedgeSpec:
    return WedgeSpec(
        name=name,
        stage=stage,
        config_cls=GreetConfig,
        options=options,
        factory=lambda config, next, ctx: next,
        is_enabled=lambda config: config.hello_greeting is not None,
    )


def registering(**by_hook: list[Any]) -> SimpleNamespace:
    """A plugin object whose ``reflex_register_<kind>`` hooks register the given objects."""
    hooks: dict[str, Any] = {}
    for kind, objects in by_hook.items():

        def impl(register: Callable[[Any], None], _objects: list[Any] = objects) -> None:
            for obj in _objects:
                register(obj)

        impl.__name__ = f"reflex_register_{kind}"
        hooks[impl.__name__] = hookimpl(impl)
    return SimpleNamespace(**hooks)


def noop_command(name: str) -> Command:
    return Command(name=name, help=f"{name} help", configure=lambda p, r: None, run=lambda a, p: 0)


# --- directly registered plugins -------------------------------------------------------------


def test_registrations_are_collected_with_their_owner(make_pm: Any) -> None:
    pm = make_pm(
        greeter=registering(wedges=[wedge("greet")], commands=[noop_command("greet")]),
        exporter=registering(exporters=[Exporter(name="sparse", export=lambda *a: [])]),
    )
    registry = pm.registry
    assert registry.wedges["greet"].name == "greet"
    assert registry.owner("wedges", "greet") == "greeter"
    assert registry.owner("commands", "greet") == "greeter"
    assert registry.owner("exporters", "sparse") == "exporter"
    # the core's own commands come from a built-in plugin through the same hook
    assert registry.owner("commands", "plugins") == "reflex.commands"
    infos = {i.name: i for i in pm.plugin_infos()}
    assert infos["greeter"].hooks == ("reflex_register_commands", "reflex_register_wedges")
    assert infos["reflex.commands"].builtin and not infos["greeter"].builtin


def test_duplicate_name_names_both_owners(make_pm: Any) -> None:
    with pytest.raises(PluginError) as info:
        make_pm(
            first=registering(wedges=[wedge("same")]), second=registering(wedges=[wedge("same")])
        )
    assert info.value.slug == "plugin-duplicate-name"
    assert "'first'" in info.value.message and "'second'" in info.value.message
    # a plugin colliding with a built-in command is named just the same
    with pytest.raises(PluginError, match="'reflex.commands'.*'squatter'"):
        make_pm(squatter=registering(commands=[noop_command("plugins")]))


def test_registering_the_wrong_type_names_the_plugin(make_pm: Any) -> None:
    with pytest.raises(PluginError) as info:
        make_pm(confused=registering(wedges=[noop_command("not-a-wedge")]))
    assert info.value.slug == "plugin-bad-registration"
    assert "'confused'" in info.value.message and "WedgeSpec" in info.value.message


def test_a_raising_hook_in_a_directly_registered_plugin_is_a_named_error(make_pm: Any) -> None:
    @hookimpl
    def reflex_register_wedges(register: Callable[[Any], None]) -> None:
        raise RuntimeError("boom")

    with pytest.raises(PluginError) as info:
        make_pm(crashy=SimpleNamespace(reflex_register_wedges=reflex_register_wedges))
    assert info.value.slug == "plugin-register-failed"
    assert "'crashy'" in info.value.message and "boom" in info.value.message


def test_misspelled_hook_in_a_registered_plugin_fails_fast() -> None:
    @hookimpl
    def reflex_register_wedgez(register: Callable[[Any], None]) -> None:
        pass

    with pytest.raises(pluggy.PluginValidationError, match="reflex_register_wedgez"):
        make_plugin_manager(
            load_entrypoints=False,
            extra_plugins={"typo": SimpleNamespace(reflex_register_wedgez=reflex_register_wedgez)},
        )


def test_a_hook_may_take_a_subset_of_the_spec_arguments(make_pm: Any) -> None:
    calls: list[str] = []

    @hookimpl
    def reflex_register_wedges() -> None:  # no `register`: allowed by pluggy, called anyway
        calls.append("called")

    pm = make_pm(quiet=SimpleNamespace(reflex_register_wedges=reflex_register_wedges))
    assert "quiet" not in pm.registry.owners.values()
    assert calls == ["called"]


# --- installed distributions (a .dist-info on a temporary sys.path entry) --------------------

GOOD = """
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.registry import Command, WedgeSpec
from reflex_core.plugin.wedges import Stage

@hookimpl
def reflex_register_wedges(register):
    register(WedgeSpec(name={name!r}, stage=Stage.SLO, config_cls=dict, options=(),
                       factory=lambda c, n, x: n, is_enabled=lambda c: False))
"""

BROKEN_IMPORT = "raise ImportError('needs a library that is not installed')\n"

MISSPELLED = """
from reflex_core.plugin.hookspecs import hookimpl

@hookimpl
def reflex_register_wedgez(register):
    pass
"""

# Registers a wedge (hook order: wedges before commands), then raises in a later hook: the
# wedge must not survive, and its lifecycle hook must not run.
RAISES_LATE = """
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.registry import WedgeSpec

@hookimpl
def reflex_register_wedges(register):
    register(WedgeSpec(name="crashy-wedge", stage=20, config_cls=dict, options=(),
                       factory=lambda c, n, x: n, is_enabled=lambda c: False))

@hookimpl
def reflex_register_commands(register):
    raise RuntimeError("cannot register")

@hookimpl
def reflex_startup(app_state):
    app_state["crashy_started"] = True
"""


@pytest.fixture
def install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., None]]:
    """``install(entry_name, source, dist=..., version=...)``: lay out a one-module distribution
    with a ``reflex.plugins`` entry point, as an installer would, in its own sys.path entry."""
    modules: list[str] = []

    def lay_out(entry: str, source: str, *, dist: str | None = None, version: str = "1.0") -> None:
        dist = dist or f"reflex-fix-{entry}"
        module = f"reflex_fix_{entry}_{len(modules)}"
        site = tmp_path / f"site-{entry}"
        info = site / f"{dist.replace('-', '_')}-{version}.dist-info"
        info.mkdir(parents=True)
        (site / f"{module}.py").write_text(textwrap.dedent(source))
        (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: {version}\n")
        (info / "entry_points.txt").write_text(f"[reflex.plugins]\n{entry} = {module}\n")
        monkeypatch.syspath_prepend(str(site))
        modules.append(module)

    yield lay_out
    for module in modules:
        sys.modules.pop(module, None)


def load(only: str, **env: str) -> ReflexPluginManager:
    """Load only our test distributions: other plugins may be installed in this environment."""
    return make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": only, **env})


def test_broken_plugins_are_reported_by_name_and_the_others_load(install: Any) -> None:
    install("good", GOOD.format(name="good-wedge"), version="2.3")
    install("broken", BROKEN_IMPORT, dist="reflex-broken-dist", version="0.9")
    install("typo", MISSPELLED)
    install("crashy", RAISES_LATE)
    pm = load("good,broken,typo,crashy")
    failures = {f.name: f for f in pm.load_failures}
    assert sorted(failures) == ["broken", "crashy", "typo"]
    assert (failures["broken"].distribution, failures["broken"].version) == (
        "reflex-broken-dist",
        "0.9",
    )
    assert "ImportError" in failures["broken"].error and "not installed" in failures["broken"].error
    assert (
        "reflex_register_wedgez" in failures["typo"].error
        and "misspelled" in failures["typo"].error
    )
    assert failures["crashy"].distribution == "reflex-fix-crashy"
    assert "cannot register" in failures["crashy"].error
    # the good one is there, with its distribution and version
    assert pm.registry.owner("wedges", "good-wedge") == "good"
    info = {i.name: i for i in pm.plugin_infos()}
    assert (info["good"].distribution, info["good"].version) == ("reflex-fix-good", "2.3")
    # nothing of the failed ones remains: no registration, no plugin, no lifecycle hook
    assert "crashy-wedge" not in pm.registry.wedges
    assert not {"broken", "typo", "crashy"} & set(info)
    state: dict[str, Any] = {}
    pm.hook.reflex_startup(app_state=state)
    assert "crashy_started" not in state


def test_env_switches(install: Any) -> None:
    install("alpha", GOOD.format(name="alpha-wedge"))
    install("beta", GOOD.format(name="beta-wedge"))
    install("broken", BROKEN_IMPORT)
    external = lambda pm: sorted(i.name for i in pm.plugin_infos() if not i.builtin)  # noqa: E731

    pm = load("alpha,beta,broken")
    assert external(pm) == ["alpha", "beta"] and len(pm.load_failures) == 1
    pm = load("alpha,beta,broken", REFLEX_DISABLE_PLUGINS="broken, beta")
    assert external(pm) == ["alpha"] and pm.load_failures == []
    pm = load("alpha,beta,broken", REFLEX_DISABLE_PLUGINS="*")
    assert external(pm) == [] and pm.load_failures == []
    assert load("beta") and external(load("beta")) == ["beta"]
    pm = load("")  # empty: load no external plugin at all
    assert external(pm) == [] and "reflex.commands" in {i.name for i in pm.plugin_infos()}
    pm = make_plugin_manager(load_entrypoints=False, env={"REFLEX_LOAD_PLUGINS": "alpha"})
    assert external(pm) == []


def test_load_order_is_sorted_by_name_not_by_sys_path(install: Any) -> None:
    # each install() prepends to sys.path: "gamma" ends up first on the path, "alpha" last
    for name in ("alpha", "beta", "gamma"):
        install(name, GOOD.format(name=f"{name}-wedge"))
    pm = load("alpha,beta,gamma")
    names = [n for n, _ in pm.list_name_plugin()]
    assert names[-3:] == ["alpha", "beta", "gamma"]
    assert names.index("reflex.commands") < names.index("alpha")  # built-ins first
    assert [w for w in pm.registry.wedges if w.endswith("-wedge")] == [
        "alpha-wedge",
        "beta-wedge",
        "gamma-wedge",
    ]


# --- `reflex plugins` and the command line ---------------------------------------------------


def run_cli(pm: ReflexPluginManager, argv: list[str]) -> int:
    args = build_parser(pm).parse_args(argv)
    return args._command.run(args, pm)


def test_plugins_json(make_pm: Any, capsys: pytest.CaptureFixture[str]) -> None:
    pm = make_pm(greeter=registering(wedges=[wedge("greet")], commands=[noop_command("greet")]))
    assert run_cli(pm, ["plugins", "--json"]) == 0
    payload = json.loads(capsys.readouterr().out)
    (greeter,) = payload["plugins"]  # built-ins are hidden without --all
    assert greeter["name"] == "greeter"
    assert greeter["hooks"] == ["reflex_register_commands", "reflex_register_wedges"]
    assert greeter["registers"] == ["commands:greet", "wedges:greet"]
    assert payload["failures"] == []
    assert run_cli(pm, ["plugins", "--json", "--all"]) == 0
    names = [p["name"] for p in json.loads(capsys.readouterr().out)["plugins"]]
    assert "reflex.commands" in names and names == sorted(names)


def test_plugins_exit_code_reports_failures(
    install: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    install("good", GOOD.format(name="good-wedge"))
    install("broken", BROKEN_IMPORT)
    pm = load("good,broken")
    assert run_cli(pm, ["plugins", "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert [p["name"] for p in payload["plugins"]] == ["good"]
    assert [(f["name"], f["distribution"]) for f in payload["failures"]] == [
        ("broken", "reflex-fix-broken")
    ]
    assert run_cli(pm, ["plugins"]) == 1
    text = capsys.readouterr().out
    assert "good  reflex-fix-good 1.0" in text and "FAILED broken  reflex-fix-broken 1.0" in text


def test_main_with_no_external_plugins(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("REFLEX_LOAD_PLUGINS", "")
    assert main(["plugins", "--json", "--all"]) == 0
    payload = json.loads(capsys.readouterr().out)
    assert {"reflex.commands"} <= {p["name"] for p in payload["plugins"]}
    assert main([]) == 2  # no command: help and a usage exit code
    assert "COMMAND" in capsys.readouterr().out


def test_main_reports_a_duplicate_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], install: Any
) -> None:
    install("one", GOOD.format(name="twin"))
    install("two", GOOD.format(name="twin"))
    monkeypatch.setenv("REFLEX_LOAD_PLUGINS", "one,two")
    assert main(["plugins"]) == 1
    err = capsys.readouterr().err
    assert "plugin-duplicate-name" in err and "'one'" in err and "'two'" in err
    assert "Traceback" not in err


def test_a_wedge_brings_its_options_only_when_registered(make_pm: Any) -> None:
    """The mechanism `reflex serve` uses: each registered wedge adds its own option group."""
    greeting = Option("--hello-greeting", help="greeting stamped into chunk metadata")

    def serve_like_parser(pm: ReflexPluginManager) -> argparse.ArgumentParser:
        parser = argparse.ArgumentParser(prog="serve")
        for name, spec in sorted(pm.registry.wedges.items()):
            add_options(parser.add_argument_group(name, spec.description), spec.options)
        return parser

    assert "--hello-greeting" not in serve_like_parser(make_pm()).format_help()
    pm = make_pm(hello=registering(wedges=[wedge("hello", Stage.GUARD + 5, (greeting,))]))
    parser = serve_like_parser(pm)
    assert "--hello-greeting" in parser.format_help()
    spec = pm.registry.wedges["hello"]
    assert enabled_wedges(pm.registry.wedges, {}) == []  # opt-in
    values = resolve_options(
        spec.options, vars(parser.parse_args(["--hello-greeting", "hi"])), None, owner="hello"
    )
    wedges = enabled_wedges(pm.registry.wedges, {"hello": values})
    assert [w.config for w in wedges] == [GreetConfig(hello_greeting="hi")]
    assert compose(wedges, lambda batch: batch, None)[1] == ["hello"]  # type: ignore[arg-type]


# --- real distributions, pip-installed into a temporary target (slow) ------------------------


def pip_install_target(target: Path, *projects: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            *map(str, projects),
        ],
        check=True,
        timeout=300,
    )


@pytest.fixture(scope="module")
def fixture_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """reflex-hello, reflex-broken and reflex-typo, built and installed into one target dir."""
    target = tmp_path_factory.mktemp("site")
    # build from copies: an in-tree build must not leave anything in tests/fixtures/
    sources = tmp_path_factory.mktemp("src")
    copies = [
        shutil.copytree(FIXTURES / n, sources / n)
        for n in ("reflex-hello", "reflex-broken", "reflex-typo")
    ]
    pip_install_target(target, *copies)
    return target


def reflex(site: Path | None, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REFLEX_")}
    environment.pop("PYTHONPATH", None)
    if site is not None:
        environment["PYTHONPATH"] = str(site)
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-m", "reflex_core.cli", *argv],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
    )


OURS = "hello,broken,typo"


@pytest.mark.slow
def test_installed_plugins_listed_and_failures_named(fixture_site: Path) -> None:
    proc = reflex(fixture_site, "plugins", "--json", REFLEX_LOAD_PLUGINS=OURS)
    assert proc.returncode == 1, proc.stderr  # failures make `reflex plugins` exit 1
    payload = json.loads(proc.stdout)
    (hello,) = payload["plugins"]
    assert hello == {
        "name": "hello",
        "distribution": "reflex-hello",
        "version": "0.3.1",
        "hooks": ["reflex_register_commands", "reflex_register_wedges"],
        "builtin": False,
        "registers": ["commands:hello", "wedges:hello"],
    }
    failures = {f["name"]: f for f in payload["failures"]}
    assert failures["broken"]["distribution"] == "reflex-broken"
    assert failures["broken"]["version"] == "0.0.1"
    assert "fails to import on purpose" in failures["broken"]["error"]
    assert failures["typo"]["distribution"] == "reflex-typo"
    assert "reflex_register_wedgez" in failures["typo"]["error"]
    # the log names them too (plugin, distribution, version), once each, with no traceback
    assert proc.stderr.count("'broken' from distribution reflex-broken 0.0.1") == 1
    assert "Traceback" not in proc.stderr

    clean = reflex(
        fixture_site,
        "plugins",
        "--json",
        REFLEX_LOAD_PLUGINS=OURS,
        REFLEX_DISABLE_PLUGINS="broken,typo",
    )
    assert clean.returncode == 0 and json.loads(clean.stdout)["failures"] == []


@pytest.mark.slow
def test_an_installed_plugin_adds_a_command(fixture_site: Path) -> None:
    proc = reflex(fixture_site, "hello", "--name", "arm", REFLEX_LOAD_PLUGINS=OURS)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "hello, arm"
    assert "hello" in reflex(fixture_site, "--help", REFLEX_LOAD_PLUGINS=OURS).stdout
    without = reflex(None, "--help", REFLEX_LOAD_PLUGINS=OURS)
    assert without.returncode == 0 and "say hello" not in without.stdout


@pytest.mark.slow
def test_serve_help_shows_a_wedge_option_only_when_its_plugin_is_installed(
    fixture_site: Path,
) -> None:
    with_hello = reflex(fixture_site, "serve", "--help", REFLEX_LOAD_PLUGINS="hello")
    assert with_hello.returncode == 0, with_hello.stderr
    assert "--hello-greeting" in with_hello.stdout
    without = reflex(None, "serve", "--help", REFLEX_LOAD_PLUGINS="hello")
    assert without.returncode == 0, without.stderr
    assert "--hello-greeting" not in without.stdout


@pytest.mark.slow
def test_the_template_copies_into_a_working_plugin(tmp_path: Path) -> None:
    """Do what plugins/_template/README.md says (rename NAME), install it, run its tests."""
    plugin = tmp_path / "reflex-demo"
    shutil.copytree(REPO / "plugins" / "_template", plugin)
    (plugin / "reflex_NAME").rename(plugin / "reflex_demo")
    for path in plugin.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".toml", ".md"}:
            path.write_text(path.read_text().replace("NAME", "demo"))
    assert not any("NAME" in p.read_text() for p in plugin.rglob("*") if p.is_file())
    site = tmp_path / "site"
    pip_install_target(site, plugin)
    environment = {k: v for k, v in os.environ.items() if not k.startswith("REFLEX_")}
    environment["PYTHONPATH"] = str(site)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(plugin / "tests")],
        capture_output=True,
        text=True,
        env=environment,
        cwd=plugin,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 passed" in proc.stdout


def test_every_plugin_distribution_in_the_repo_is_listed() -> None:
    """`reflex plugins --json` in the set-up venv lists each distribution under plugins/."""
    import subprocess
    import sys
    import tomllib

    repo = Path(__file__).resolve().parents[1]
    expected = {
        tomllib.loads((d / "pyproject.toml").read_text())["project"]["name"]
        for d in sorted((repo / "plugins").glob("reflex-*"))
        if (d / "pyproject.toml").is_file()
    }
    assert expected, "no plugin distributions found under plugins/"
    out = subprocess.run(
        [sys.executable, "-m", "reflex_core.cli", "plugins", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    payload = json.loads(out.stdout)
    assert payload["failures"] == []
    listed = {p["distribution"] for p in payload["plugins"]}
    assert expected <= listed, f"missing from `reflex plugins`: {sorted(expected - listed)}"
    for plugin in payload["plugins"]:
        assert plugin["version"] and plugin["hooks"], plugin
