"""reflex-NAME: a Reflex wedge (replace this line with what it does).

As shipped by the template the wedge is a small working example: when ``--NAME-tag TEXT`` is
given, it adds ``metadata["NAME"] = {"tag": TEXT, "inner_ms": ...}`` to every action chunk,
the time the rest of the chain (the wedges inside it and the policy) took. Replace its body
with yours; keep the shape: an attrs config whose fields are its settings (``setting``),
``is_enabled``, and a factory ``(config, next, ctx) -> handler``.
"""

from __future__ import annotations

import time

import attrs

from reflex_core.plugin import (
    ActRequest,
    ActResult,
    Handler,
    Stage,
    WedgeContext,
    WedgeSpec,
    registers,
    setting,
)

__version__ = "0.1.0"


@attrs.frozen
class Config:
    """The wedge's settings. Each field made with ``setting`` is declared once and becomes the
    ``--NAME-tag`` flag, the ``NAME-tag`` key of the ``[NAME]`` config-file table, its
    ``--help`` line (with the default) and the check of its value; the core resolves them
    (command line over the config file over the default) and structures them into this class."""

    NAME_tag: str | None = setting(
        "enable the NAME wedge; TEXT is echoed in chunk metadata", metavar="TEXT"
    )


def make_handler(config: Config, next: Handler, ctx: WedgeContext) -> Handler:
    """The wedge factory. Runs once at server start; ``handle`` runs for every request."""

    async def handle(request: ActRequest) -> ActResult:
        start = time.perf_counter()
        result = await next(request)
        note = {"tag": config.NAME_tag, "inner_ms": (time.perf_counter() - start) * 1e3}
        # A new result with a copy of the metadata, never result.metadata[...] = ...: a result
        # can be shared (an idempotent replay answers a retry with the very same object).
        return attrs.evolve(result, metadata={**result.metadata, "NAME": note})

    return handle


reflex_register_wedges = registers(
    WedgeSpec(
        name="NAME",
        # Where it sits in the chain (reflex_core/plugin/wedges.py). Request-level stages are below
        # Stage.BATCHING; an integer between two stages is fine (GUARD + 5: inside the
        # guard, outside the SLO tracker).
        stage=Stage.GUARD + 5,
        config_cls=Config,
        factory=make_handler,
        is_enabled=lambda config: config.NAME_tag is not None,
        description="template example: stamps a tag and the inner chain's time",
    ),
)
