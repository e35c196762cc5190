"""ActionGuard for Reflex: joint limits on every action chunk that leaves the server.

Registers the ``actionguard`` wedge (``Stage.GUARD``, the outermost one) and the
``reflex guard audit`` command. The wedge's module is imported only when the wedge is switched
on (``lazy``); the command imports its heavy code inside ``run``.
"""

from __future__ import annotations

from collections.abc import Callable

from reflex_actionguard.config import GuardConfig
from reflex_core.plugin import Command, Stage, WedgeSpec, hookimpl, lazy, registers

__version__ = "0.1.0"


reflex_register_wedges = registers(
    WedgeSpec(
        name="actionguard",
        stage=Stage.GUARD,
        config_cls=GuardConfig,
        factory=lazy("reflex_actionguard.wedge:make_guard"),
        is_enabled=lambda config: config.enabled,
        description="joint position/velocity limits, NaN handling, clamp or reject, "
        "trip after N violations, crash-safe audit log",
    ),
)


@hookimpl
def reflex_register_commands(register: Callable[[Command], None]) -> None:
    from reflex_actionguard import cli  # stdlib only; the summary code loads inside run()

    register(Command(name="guard", help=cli.HELP, configure=cli.configure, run=cli.run))
