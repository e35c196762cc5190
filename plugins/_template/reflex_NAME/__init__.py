"""reflex-NAME: a Reflex wedge (replace this line with what it does).

As shipped by the template the wedge is a small working example: when ``--NAME-tag TEXT`` is
given, it adds ``metadata["NAME"] = {"tag": TEXT, "inner_ms": ...}`` to every action chunk,
the time the rest of the chain (the wedges inside it and the policy) took. Replace its body
with yours; keep the shape: options, an attrs config whose fields are the options' ``dest``
names, ``is_enabled``, and a factory ``(config, next, ctx) -> handler``.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import attrs

from reflex_core.hookspecs import hookimpl
from reflex_core.options import Option
from reflex_core.registry import WedgeSpec
from reflex_core.wedges import ActRequest, ActResult, Handler, Stage, WedgeContext

__version__ = "0.1.0"

OPTIONS = (
    Option(
        "--NAME-tag", help="enable the NAME wedge; TEXT is echoed in chunk metadata", metavar="TEXT"
    ),
)


@attrs.frozen
class Config:
    """Resolved options (command line over the ``[NAME]`` config-file table over defaults)."""

    NAME_tag: str | None = None


def make_handler(config: Config, next: Handler, ctx: WedgeContext) -> Handler:
    """The wedge factory. Runs once at server start; ``handle`` runs for every request."""

    async def handle(request: ActRequest) -> ActResult:
        start = time.perf_counter()
        result = await next(request)
        result.metadata["NAME"] = {
            "tag": config.NAME_tag,
            "inner_ms": (time.perf_counter() - start) * 1e3,
        }
        return result

    return handle


@hookimpl
def reflex_register_wedges(register: Callable[[WedgeSpec], None]) -> None:
    register(
        WedgeSpec(
            name="NAME",
            # Where it sits in the chain (reflex_core/wedges.py). Request-level stages are below
            # Stage.BATCHING; an integer between two stages is fine (GUARD + 5: inside the
            # guard, outside the SLO tracker).
            stage=Stage.GUARD + 5,
            config_cls=Config,
            options=OPTIONS,
            factory=make_handler,
            is_enabled=lambda config: config.NAME_tag is not None,
            description="template example: stamps a tag and the inner chain's time",
        )
    )
