"""ActionGuard for Reflex: joint limits on every action chunk that leaves the server.

Registers the ``actionguard`` wedge (``Stage.GUARD``, the outermost one) and the
``reflex guard audit`` command. Heavy imports happen inside the factory and the command.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from reflex_actionguard.config import GuardConfig
from reflex_core.plugin import Command, Stage, WedgeSpec, hookimpl

__version__ = "0.1.0"


def _factory(config: GuardConfig, next: Any, ctx: Any) -> Any:
    from reflex_actionguard.wedge import make_guard

    return make_guard(config, next, ctx)


@hookimpl
def reflex_register_wedges(register: Callable[[WedgeSpec], None]) -> None:
    register(
        WedgeSpec(
            name="actionguard",
            stage=Stage.GUARD,
            config_cls=GuardConfig,
            factory=_factory,
            is_enabled=lambda config: config.enabled,
            description="joint position/velocity limits, NaN handling, clamp or reject, "
            "trip after N violations, crash-safe audit log",
        )
    )


@hookimpl
def reflex_register_commands(register: Callable[[Command], None]) -> None:
    from reflex_actionguard import cli  # stdlib only; the summary code loads inside run()

    register(Command(name="guard", help=cli.HELP, configure=cli.configure, run=cli.run))
