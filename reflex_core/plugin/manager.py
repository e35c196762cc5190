"""The plugin manager factory (DESIGN §3).

No import-time global: every caller builds its own manager with :func:`make_plugin_manager`.
Entry points of group ``reflex.plugins`` load in sorted order, each in its own try, so a broken
plugin is reported by name and distribution and the others still load.

Environment:

* ``REFLEX_DISABLE_PLUGINS=a,b`` skips those external plugins (``*`` skips them all).
* ``REFLEX_LOAD_PLUGINS=a,b`` loads only those external plugins (empty string: none).

The core's own defaults are plugins too (the modules of :mod:`reflex_core.builtin`), registered first, through the
same hooks a third party uses.
"""

from __future__ import annotations

import importlib
import logging
import os
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import attrs
import pluggy

from reflex_core.plugin import hookspecs
from reflex_core.plugin.registry import Registry, collect

log = logging.getLogger(__name__)

ENTRY_POINT_GROUP = "reflex.plugins"


def builtin_plugin_modules() -> list[str]:
    """The core's default plugins: every module of :mod:`reflex_core.builtin`, sorted by name.
    Each registers under ``reflex.<module>``."""
    import pkgutil

    import reflex_core.builtin as package

    return sorted(
        f"{package.__name__}.{info.name}" for info in pkgutil.iter_modules(package.__path__)
    )


@attrs.frozen
class PluginLoadFailure:
    """An entry point that could not be loaded or registered."""

    name: str
    distribution: str
    version: str
    error: str


@attrs.frozen
class PluginInfo:
    name: str
    distribution: str
    version: str
    hooks: tuple[str, ...]
    builtin: bool


class ReflexPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers where each plugin came from and what failed to load."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        self.load_failures: list[PluginLoadFailure] = []
        self.sources: dict[str, tuple[str, str, bool]] = {}  # name -> (dist, version, builtin)
        self.entrypoint_plugins: set[str] = set()
        self._registry: Registry | None = None

    @property
    def registry(self) -> Registry:
        """Everything registered, collected once (by the factory). An installed plugin whose
        registration hook fails is dropped and reported in ``load_failures`` like one whose
        import fails; a built-in or directly registered plugin's failure is raised."""
        if self._registry is None:
            self._registry = collect(self, isolate=self._drop_broken_plugin)
        return self._registry

    def _drop_broken_plugin(self, name: str, error: Exception) -> bool:
        if name not in self.entrypoint_plugins:
            return False
        dist, version, _builtin = self.sources.get(name, ("?", "?", False))
        plugin = self.get_plugin(name)
        if plugin is not None:
            self.unregister(plugin)  # its lifecycle hooks must not run either
        self.entrypoint_plugins.discard(name)
        self.sources.pop(name, None)
        failure = PluginLoadFailure(name, dist, version, f"{type(error).__name__}: {error}")
        self.load_failures.append(failure)
        log.error(
            "reflex plugin %r from distribution %s %s failed to register: %s",
            name,
            dist,
            version,
            failure.error,
        )
        return True

    def plugin_infos(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in sorted(self.list_name_plugin(), key=lambda np_: str(np_[0])):
            if name is None:
                continue
            dist, version, builtin = self.sources.get(name, ("?", "?", False))
            hooks = tuple(sorted(c.name for c in self.get_hookcallers(plugin) or []))
            infos.append(PluginInfo(name, dist, version, hooks, builtin))
        return infos


def _names(value: str | None) -> set[str] | None:
    if value is None:
        return None
    return {part.strip() for part in value.split(",") if part.strip()}


def _core_version() -> str:
    try:
        return metadata.version("reflex-core")
    except metadata.PackageNotFoundError:
        return "0+unknown"


def make_plugin_manager(
    *,
    load_entrypoints: bool = True,
    builtins: bool = True,
    extra_plugins: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> ReflexPluginManager:
    """Build a plugin manager.

    :param load_entrypoints: load installed ``reflex.plugins`` entry points (tests turn it off
        and register plugins through fixtures).
    :param builtins: register the core's default plugins.
    :param extra_plugins: name -> plugin object, registered after the built-ins (tests).
    :param env: environment to read ``REFLEX_DISABLE_PLUGINS`` / ``REFLEX_LOAD_PLUGINS`` from.
    :raises PluginError: a duplicate name, or a built-in / directly registered plugin whose
        registration fails (an installed plugin's failure is reported in ``load_failures``).
    """
    env = os.environ if env is None else env
    pm = ReflexPluginManager()
    version = _core_version()
    if builtins:
        for module_path in builtin_plugin_modules():
            module = importlib.import_module(module_path)
            short = "reflex." + module_path.rsplit(".", 1)[-1]
            pm.register(module, name=short)
            pm.sources[short] = ("reflex-core", version, True)
    for name, plugin in sorted((extra_plugins or {}).items()):
        pm.register(plugin, name=name)
        pm.sources[name] = ("(registered directly)", "", False)
    if load_entrypoints:
        _load_entrypoints(pm, env)
    pm.check_pending()
    # Collect now, not on first use: an installed plugin whose registration hook fails must be
    # in load_failures when the caller looks, and a duplicate name fails here, naming both.
    _ = pm.registry
    return pm


def _load_entrypoints(pm: ReflexPluginManager, env: Mapping[str, str]) -> None:
    disabled = _names(env.get("REFLEX_DISABLE_PLUGINS")) or set()
    only = _names(env.get("REFLEX_LOAD_PLUGINS"))
    seen: set[str] = set()
    eps = sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)
    for ep in eps:
        if ep.name in seen:  # the same distribution visible twice on sys.path
            continue
        seen.add(ep.name)
        if "*" in disabled or ep.name in disabled:
            continue
        if only is not None and ep.name not in only:
            continue
        dist = ep.dist.name if ep.dist is not None else "?"
        version = ep.dist.version if ep.dist is not None else "?"
        try:
            plugin = ep.load()
            pm.register(plugin, name=ep.name)
            unknown = sorted(c.name for c in pm.get_hookcallers(plugin) or [] if c.spec is None)
            if unknown:
                pm.unregister(plugin)
                raise pluggy.PluginValidationError(
                    plugin, f"implements unknown hook(s) {', '.join(unknown)} (misspelled?)"
                )
        except Exception as exc:  # a broken plugin must never take the host down anonymously
            failure = PluginLoadFailure(ep.name, dist, version, f"{type(exc).__name__}: {exc}")
            pm.load_failures.append(failure)
            log.error(
                "reflex plugin %r from distribution %s %s failed to load: %s",
                ep.name,
                dist,
                version,
                failure.error,
            )
            continue
        pm.sources[ep.name] = (dist, version, False)
        pm.entrypoint_plugins.add(ep.name)
