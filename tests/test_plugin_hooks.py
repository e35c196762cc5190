"""Every hook is documented and tested (datasette's meta-tests), and one test per hook.

The hooks are read from ``reflex_core/plugin/hookspecs.py`` when the tests run, never from a list
here: a hook added there fails ``test_plugin_hooks_are_documented`` until
``docs/plugin_hooks.md`` has a section for it with its arguments, and
``test_plugin_hooks_have_tests`` until a test named ``test_hook_<hook name>[_...]`` exists
(under ``tests/`` or a plugin's ``tests/``).
"""

from __future__ import annotations

import ast
import asyncio
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import attrs
import numpy as np
import pytest

from reflex_core.cli import build_parser
from reflex_core.embodiments import load_embodiment
from reflex_core.embodiments.presets import read_preset
from reflex_core.plugin import hookspecs, registry
from reflex_core.plugin import testing as kit
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.options import positive_float, setting
from reflex_core.plugin.wedges import ActResult, WedgeContext, compose, enabled_wedges

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugin_hooks.md"
_HEADING = re.compile(r"^#{2,4} (reflex_\w+)\((.*)\)\s*$", re.MULTILINE)


def hook_specs() -> dict[str, inspect.Signature]:
    """Every hookspec in reflex_core/plugin/hookspecs.py, by name (pluggy marks each with
    ``<project>_spec``)."""
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return {
        name: inspect.signature(function)
        for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
        if hasattr(function, marker)
    }


def documented_hooks() -> dict[str, tuple[list[str], str]]:
    """``docs/plugin_hooks.md``: hook name -> (arguments in its heading, its section's text)."""
    text = DOCS.read_text(encoding="utf-8")
    matches = list(_HEADING.finditer(text))
    sections = {}
    for match, following in zip(matches, [*matches[1:], None], strict=True):
        end = following.start() if following is not None else len(text)
        arguments = [a.strip() for a in match[2].split(",") if a.strip()]
        sections[match[1]] = (arguments, text[match.end() : end])
    return sections


def hook_tests() -> dict[str, list[str]]:
    """Test functions named ``test_hook_...`` in every test module of the repository."""
    found: dict[str, list[str]] = {}
    paths = [*(REPO / "tests").rglob("test_*.py"), *(REPO / "plugins").glob("*/tests/**/test_*.py")]
    for path in paths:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            is_function = isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
            if is_function and node.name.startswith("test_hook_"):
                found.setdefault(node.name, []).append(str(path.relative_to(REPO)))
    return found


# -- the meta-tests ---------------------------------------------------------------------------


def test_hookspecs_are_found() -> None:
    # the discovery itself must see the hooks, or the tests below would pass on nothing
    specs = hook_specs()
    assert {"reflex_register_wedges", "reflex_register_transports"} <= set(specs)
    assert all(name.startswith("reflex_") for name in specs)
    assert len(documented_hooks()) >= 2 and len(hook_tests()) >= 2


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_plugin_hooks_are_documented(hook: str) -> None:
    docs = documented_hooks()
    assert hook in docs, f"docs/plugin_hooks.md has no section '### {hook}(...)'"
    arguments, body = docs[hook]
    assert arguments == list(hook_specs()[hook].parameters), (
        f"docs/plugin_hooks.md documents {hook}({', '.join(arguments)}); the hookspec takes "
        f"({', '.join(hook_specs()[hook].parameters)})"
    )
    for argument in arguments:
        assert f"`{argument}`" in body, f"{hook}: argument `{argument}` is not described"


def test_every_documented_hook_exists() -> None:
    stale = sorted(set(documented_hooks()) - set(hook_specs()))
    assert not stale, f"docs/plugin_hooks.md documents hooks that hookspecs.py lacks: {stale}"


@pytest.mark.parametrize("hook", sorted(hook_specs()))
def test_plugin_hooks_have_tests(hook: str) -> None:
    names = [
        n for n in hook_tests() if n == f"test_hook_{hook}" or n.startswith(f"test_hook_{hook}_")
    ]
    assert names, f"no test named test_hook_{hook}[_...] exercises the {hook} hook"


def test_every_hook_test_names_an_existing_hook() -> None:
    hooks = hook_specs()
    orphans = sorted(
        name
        for name in hook_tests()
        if not any(name == f"test_hook_{h}" or name.startswith(f"test_hook_{h}_") for h in hooks)
    )
    assert not orphans, f"hook tests whose hook is gone from hookspecs.py: {orphans}"


# -- one test per hook: a plugin implements it, the core uses what it registered --------------


def _pm(**plugins: Any) -> Any:
    return make_plugin_manager(load_entrypoints=False, extra_plugins=plugins)


def registering(hook: str, *objects: Any) -> Any:
    """A plugin whose ``hook`` (a registration hook) registers ``objects``."""

    def implementation(register: Callable[[Any], None]) -> None:
        for obj in objects:
            register(obj)

    implementation.__name__ = hook
    return SimpleNamespace(**{hook: hookimpl(implementation)})


def _help(pm: Any, command: str) -> str:
    parser = build_parser(pm)
    subparsers = next(a for a in parser._actions if a.dest == "command")
    return " ".join(subparsers.choices[command].format_help().split())  # unwrapped


def test_hook_reflex_register_model_loaders() -> None:
    family = registry.ModelLoader(
        name="hookfamily", matches=lambda config: config.get("type") == "hookfamily", load=print
    )
    pm = _pm(toy=registering("reflex_register_model_loaders", family))
    assert pm.registry.model_loaders["hookfamily"] is family
    assert pm.registry.owner("model_loaders", "hookfamily") == "toy"
    assert "hookfamily" in _help(pm, "export")  # `reflex export` offers the family
    assert "hookfamily" not in _help(_pm(), "export")


def test_hook_reflex_register_exporters() -> None:
    mode = registry.Exporter(name="toymode", export=print, description="one toy graph")
    pm = _pm(toy=registering("reflex_register_exporters", mode))
    assert pm.registry.owner("exporters", "toymode") == "toy"
    assert "toymode: one toy graph" in _help(pm, "export")  # a `--mode` choice, described
    args = build_parser(pm).parse_args(["export", "tiny-pi05", "--mode", "toymode", "-o", "out"])
    assert args.mode == "toymode"


@attrs.frozen
class _ScaleConfig:
    toy_scale: float | None = setting("multiply actions by this", type=positive_float)


def _scale_factory(config: _ScaleConfig, next: Any, ctx: Any) -> Any:
    async def handle(request: Any) -> ActResult:
        result = await next(request)
        metadata = {**result.metadata, "toy": config.toy_scale}
        return attrs.evolve(result, actions=result.actions * config.toy_scale, metadata=metadata)

    return handle


def test_hook_reflex_register_wedges() -> None:
    wedge = registry.WedgeSpec(
        name="toyscale",
        stage=15,
        config_cls=_ScaleConfig,
        factory=_scale_factory,
        is_enabled=lambda config: config.toy_scale is not None,
    )
    pm = _pm(toy=registering("reflex_register_wedges", wedge))
    assert "--toy-scale TOY_SCALE" in _help(pm, "serve")  # its setting became a flag
    assert enabled_wedges(pm.registry.wedges, {}) == []  # opt-in
    wedges = enabled_wedges(pm.registry.wedges, {"toyscale": {"toy_scale": 2.0}})
    policy = kit.FakeBatchPolicy()
    handler, names = compose(wedges, policy, WedgeContext(policies={}))
    assert names == ["toyscale"]
    noise = np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32)
    request = kit.make_request([0.5, -0.5, 1.0, 0.0], noise=noise)
    (plain,) = asyncio.run(policy([request]))
    scaled = asyncio.run(handler(request))
    assert scaled.metadata["toy"] == 2.0
    np.testing.assert_allclose(scaled.actions, plain.actions * 2.0)


@attrs.frozen
class _PingConfig:
    ping_reply: str = setting("what GET /ping answers", default="pong")


def _ping_routes(server: Any) -> list[Any]:
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ping(request: Any) -> PlainTextResponse:
        reply = server.transport_options("ping")["ping_reply"]
        return PlainTextResponse(f"{reply} ({server.state})")

    return [Route("/ping", ping)]


def test_hook_reflex_register_transports() -> None:
    transport = registry.Transport(name="ping", routes=_ping_routes, config_cls=_PingConfig)
    plugin = registering("reflex_register_transports", transport)
    assert "--ping-reply" in _help(_pm(toy=plugin), "serve")
    server = kit.wedge_server(
        {"toy": plugin}, {"default": kit.FakeRuntimePolicy()}, cli={"ping_reply": "hi"}
    )

    async def main() -> tuple[str, int]:
        async with kit.serve_lifespan(server.app):
            async with kit.asgi_client(server.app) as client:
                ping = await client.get("/ping")
                act = await client.post("/act", json={"state": [0.0, 0.0, 0.0, 0.0]})
        return ping.text, act.status_code

    assert asyncio.run(main()) == ("hi (ready)", 200)  # mounted beside the core's transports


def test_hook_reflex_register_embodiments() -> None:
    document = {**read_preset("so100"), "embodiment": "toy-arm"}
    source = registry.EmbodimentSource(name="toy-arm", load=lambda: document)
    pm = _pm(toy=registering("reflex_register_embodiments", source))
    assert pm.registry.owner("embodiments", "toy-arm") == "toy"
    config = load_embodiment("toy-arm", registry=pm.registry)  # `reflex serve --embodiment`
    assert config is not None and config.name == "toy-arm" and config.action_dim == 6


def test_hook_reflex_register_commands() -> None:
    ran: list[int] = []

    def configure(parser: Any, registry: Any) -> None:
        parser.add_argument("--times", type=int, default=1)

    def run(args: Any, pm: Any) -> int:
        ran.append(args.times)
        return 3

    command = registry.Command(name="toy", help="a toy command", configure=configure, run=run)
    pm = _pm(toy=registering("reflex_register_commands", command))
    parser = build_parser(pm)
    assert "a toy command" in parser.format_help()  # listed among `reflex` commands
    args = parser.parse_args(["toy", "--times", "2"])
    assert args._command.run(args, pm) == 3 and ran == [2]


def test_hook_reflex_register_envs() -> None:
    env = registry.EnvSpec(
        name="toyenv",
        make=lambda task, **kwargs: (task, kwargs),
        embodiment="so100",
        tasks=("reach",),
        default_task="reach",
    )
    pm = _pm(toy=registering("reflex_register_envs", env))
    assert pm.registry.envs["toyenv"] is env
    assert pm.registry.owner("envs", "toyenv") == "toy"


class _LifecyclePlugin:
    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    @hookimpl
    def reflex_startup(self, app_state: dict[str, Any]) -> None:
        self.events.append(("startup", sorted(app_state["policies"])))

    @hookimpl
    def reflex_shutdown(self, app_state: dict[str, Any]) -> None:
        self.events.append(("shutdown", app_state["wedges"]))


def _lifecycle_run() -> tuple[_LifecyclePlugin, list[tuple[str, Any]]]:
    plugin = _LifecyclePlugin()
    server = kit.wedge_server({"toy": plugin}, {"default": kit.FakeRuntimePolicy()})
    seen_while_serving: list[tuple[str, Any]] = []

    async def main() -> None:
        async with kit.serve_lifespan(server.app):
            seen_while_serving.extend(plugin.events)

    asyncio.run(main())
    return plugin, seen_while_serving


def test_hook_reflex_startup() -> None:
    plugin, while_serving = _lifecycle_run()
    assert while_serving == [("startup", ["default"])]  # once, before the server was ready
    assert [name for name, _ in plugin.events].count("startup") == 1


def test_hook_reflex_shutdown() -> None:
    plugin, while_serving = _lifecycle_run()
    assert ("shutdown", []) not in while_serving
    assert plugin.events[-1] == ("shutdown", [])  # once, when the server stopped
