"""The core's own subcommands, registered as a default plugin.

Every module of :mod:`reflex_core.commands` is one command (its name is the module name) and
defines ``HELP``, ``configure(parser, registry)`` and ``run(args, pm) -> int``. Those modules
import their heavy dependencies inside ``run`` so ``reflex --help`` stays fast and torch-free.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable

from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.registry import Command


@hookimpl
def reflex_register_commands(register: Callable[[Command], None]) -> None:
    import reflex_core.commands as package

    for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda i: i.name):
        module = importlib.import_module(f"{package.__name__}.{info.name}")
        register(
            Command(
                name=info.name.replace("_", "-"),
                help=module.HELP,
                configure=module.configure,
                run=module.run,
            )
        )
