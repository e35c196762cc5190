"""The hooks a Reflex plugin may implement.

Registration hooks take a ``register`` callback (the ``llm`` / ``hatch`` pattern): the core owns
the registry, validates what a plugin hands it, and rejects a duplicate name naming both owners.
A hook implementation may accept any subset of a spec's arguments, so specs only ever gain
arguments. pluggy is synchronous: these hooks discover and register; none sits in the request
path (wedges are async handlers composed by the core, see :mod:`reflex_core.plugin.wedges`).

Always call hooks with keyword arguments.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from reflex_core.plugin.registry import (
        Command,
        EmbodimentSource,
        EnvSpec,
        Exporter,
        ModelLoader,
        RuntimeBackend,
        Transport,
        WedgeSpec,
    )

PROJECT_NAME = "reflex"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# ---------------------------------------------------------------------------------------------
# Registration hooks: called once per plugin manager, each implementation with its own
# ``register`` callback so the registry knows which plugin owns what it registers.
# ---------------------------------------------------------------------------------------------


@hookspec
def reflex_register_model_loaders(register: Callable[[ModelLoader], None]) -> None:
    """Register model families that ``reflex export`` can load.

    :param register: call with a :class:`reflex_core.plugin.registry.ModelLoader` for each family
        (e.g. ``pi0``, ``pi05``). Names are unique across all plugins.
    :return: ignored.
    """


@hookspec
def reflex_register_exporters(register: Callable[[Exporter], None]) -> None:
    """Register export modes (``monolithic``, ``decomposed``, ...).

    :param register: call with a :class:`reflex_core.plugin.registry.Exporter` for each mode.
    :return: ignored.
    """


@hookspec
def reflex_register_wedges(register: Callable[[WedgeSpec[Any]], None]) -> None:
    """Register wedges: async middleware around the policy call.

    Each :class:`reflex_core.plugin.registry.WedgeSpec` declares its stage (which fixes its place in
    the chain), its ``reflex serve`` options and its config class. A wedge only runs when the
    command line or config file enables it.

    :param register: call with a :class:`reflex_core.plugin.registry.WedgeSpec` for each wedge.
    :return: ignored.
    """


@hookspec
def reflex_register_transports(register: Callable[[Transport], None]) -> None:
    """Register transports: sets of routes that carry observations in and chunks out.

    The built-in HTTP ``/act`` and WebSocket ``/ws`` transports are registered this way too.

    :param register: call with a :class:`reflex_core.plugin.registry.Transport`.
    :return: ignored.
    """


@hookspec
def reflex_register_embodiments(register: Callable[[EmbodimentSource], None]) -> None:
    """Register robot embodiment configs usable as ``--embodiment NAME``.

    :param register: call with a :class:`reflex_core.plugin.registry.EmbodimentSource`.
    :return: ignored.
    """


@hookspec
def reflex_register_commands(register: Callable[[Command], None]) -> None:
    """Register ``reflex`` subcommands (``reflex guard audit``, ``reflex a2c2 train``...).

    The core's own commands (``export``, ``serve``, ``plugins``...) are registered this way too.

    :param register: call with a :class:`reflex_core.plugin.registry.Command`.
    :return: ignored.
    """


@hookspec
def reflex_register_envs(register: Callable[[EnvSpec], None]) -> None:
    """Register simulated environments that ``reflex eval --env NAME/TASK`` runs episodes in.

    Each :class:`reflex_core.plugin.registry.EnvSpec` names the embodiment its adapter speaks (joint
    state and camera renders in, the embodiment's actions out), the tasks it offers and how to
    build one episode's environment; it may also offer a scripted expert for the task (what
    ``reflex eval serve-expert`` serves to check the harness). Heavy simulator imports belong
    inside ``make`` / ``expert``, never at module import.

    :param register: call with a :class:`reflex_core.plugin.registry.EnvSpec` for each environment
        family (e.g. ``metaworld``). Names are unique across all plugins.
    :return: ignored.
    """


@hookspec
def reflex_register_runtime_backends(register: Callable[[RuntimeBackend], None]) -> None:
    """Register runtimes that run an artifact's graphs instead of onnxruntime.

    A backend (e.g. ``openvino-bf16`` from ``reflex-openvino``) is used only when
    ``--providers`` names it; ``reflex doctor`` reports whether each one can run here. Heavy
    imports belong inside ``probe`` / ``open_session``, never at module import.

    :param register: call with a :class:`reflex_core.plugin.registry.RuntimeBackend` for each backend.
        Names are unique across all plugins.
    :return: ignored.
    """


# ---------------------------------------------------------------------------------------------
# Lifecycle hooks.
# ---------------------------------------------------------------------------------------------


@hookspec
def reflex_startup(app_state: dict[str, Any]) -> None:
    """Called once when ``reflex serve`` has loaded its policies, before it reports ready.

    :param app_state: the server's state: ``policies``, ``embodiment``, ``metrics`` (the
        prometheus registry) and ``config`` (the resolved serving options). Read-only by
        convention; a plugin keeps its own state in its own objects.
    :return: ignored.
    """


@hookspec
def reflex_shutdown(app_state: dict[str, Any]) -> None:
    """Called once when ``reflex serve`` stops, after in-flight requests have finished.

    :param app_state: the same mapping :func:`reflex_startup` received.
    :return: ignored.
    """
