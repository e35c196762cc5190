"""The wedge contract (DESIGN §4): async middleware around the policy call, composed by the core.

A wedge is a factory ``(config, next, ctx) -> handler``. The core builds one chain from the
enabled wedges in the declared order (by :class:`Stage`, then by name), never install order.

Two kinds of handler meet at the batching stage:

* request level (outside the batching stage): ``Handler``, one :class:`ActRequest` in, one
  :class:`ActResult` out. Guard, SLO, deadline and router live here.
* batch level (inside it): ``BatchHandler``, a list of requests in, a list of results out, so the
  policy runs ONE batched ORT call. The A2C2 head and the policy live here.

The wedge at ``Stage.BATCHING`` turns a ``BatchHandler`` into a ``Handler``; when none is
enabled the core uses :func:`unbatched` (each request is its own batch of one).

Outside in (responses flow back the other way)::

    error boundary -> GUARD -> SLO -> DEADLINE -> ROUTER -> BATCHING -> CORRECTION -> policy
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeAlias, TypeVar, cast

import attrs
import numpy as np

from reflex_core.errors import ConfigError
from reflex_core.wire.types import Observation

if TYPE_CHECKING:
    from concurrent.futures import Executor
    from pathlib import Path

    from prometheus_client import CollectorRegistry
    from starlette.routing import BaseRoute

    from reflex_core.plugin.contracts import EmbodimentLike, PolicyLike
    from reflex_core.plugin.registry import WedgeSpec


class Stage(enum.IntEnum):
    """Where a wedge sits; lower is further out. Third-party wedges may use any integer in
    between (a smoothing wedge at 15 sits inside the guard and outside the SLO tracker)."""

    GUARD = 10
    SLO = 20
    DEADLINE = 30
    ROUTER = 40
    BATCHING = 50
    CORRECTION = 60


@attrs.frozen(eq=False)
class ActRequest:
    """One observation travelling down the chain.

    :ivar policy: the policy slot that will run it (``"default"``; the router sets ``"a"``/``"b"``).
    :ivar received_ns: ``time.monotonic_ns()`` when the transport accepted it.
    :ivar deadline_ns: monotonic time by which the caller must have an answer, if any.
    :ivar noise: fixed flow-matching noise (B=1 slice, shape (chunk, max_action_dim)) for
        reproducible runs; None draws fresh noise.
    :ivar annotations: free-form notes a wedge leaves for the wedges inside it.
    """

    observation: Observation
    request_id: str
    received_ns: int
    policy: str = "default"
    deadline_ns: int | None = None
    noise: np.ndarray | None = None
    annotations: dict[str, Any] = attrs.field(factory=dict)

    @property
    def episode_id(self) -> str | None:
        return self.observation.episode_id


@attrs.frozen(eq=False)
class ActResult:
    """An action chunk travelling back up the chain.

    :ivar actions: (T, D) float32 in robot units (raw model units without an embodiment).
    :ivar metadata: what the policy and each wedge did; returned to the client under
        ``metadata`` (``timings``, ``policy``, ``guard``, ``fallback``, ``correction``...).
    :ivar features: pooled prefix features of this observation (for the A2C2 head), if any.
    """

    actions: np.ndarray
    metadata: dict[str, Any] = attrs.field(factory=dict)
    features: np.ndarray | None = None


def answering_slot(request: ActRequest, result: ActResult | None = None) -> str:
    """The policy slot that produced ``result``: its ``metadata["policy"]`` (a slot name, or a
    dict with a ``slot``), else, or without a result, the slot the request asked for."""
    if result is not None:
        policy = result.metadata.get("policy")
        if isinstance(policy, str):
            return policy
        if isinstance(policy, dict):
            slot = policy.get("slot")
            if isinstance(slot, str):
                return slot
    return request.policy


Handler: TypeAlias = Callable[[ActRequest], Awaitable[ActResult]]
"""A request-level handler: one request in, its result out (outside the batching stage)."""
BatchHandler: TypeAlias = Callable[[Sequence[ActRequest]], Awaitable[list[ActResult]]]
"""A batch-level handler: requests in, one result per request, in order (inside it)."""

ConfigT = TypeVar("ConfigT")
RequestWedgeFactory: TypeAlias = Callable[[ConfigT, Handler, "WedgeContext"], Handler]
"""A wedge outside the batching stage (guard, SLO, deadline, router): wraps a ``Handler``."""
BatchWedgeFactory: TypeAlias = Callable[[ConfigT, BatchHandler, "WedgeContext"], BatchHandler]
"""A wedge inside the batching stage (the A2C2 head): wraps a ``BatchHandler``."""
BridgeWedgeFactory: TypeAlias = Callable[[ConfigT, BatchHandler, "WedgeContext"], Handler]
"""The wedge at ``Stage.BATCHING``: turns the ``BatchHandler`` inside into a ``Handler``."""
WedgeFactory: TypeAlias = (
    RequestWedgeFactory[ConfigT] | BatchWedgeFactory[ConfigT] | BridgeWedgeFactory[ConfigT]
)
"""``(config, next, ctx) -> handler``, one of the three kinds above by the wedge's stage;
``config`` is an instance of the wedge's ``config_cls``. Called once, on the event loop, when
the server composes the chain."""


@attrs.define
class WedgeContext:
    """What the server hands a wedge factory.

    :ivar policies: loaded policy slots by name (``"default"``, or ``"a"``/``"b"`` with the
        router); each a :class:`~reflex_core.plugin.contracts.PolicyLike` (the runtime's ``Policy``).
    :ivar embodiment: the robot (:class:`~reflex_core.plugin.contracts.EmbodimentLike`, an
        :class:`~reflex_core.embodiments.EmbodimentConfig`), or None (raw actions).
    :ivar metrics: the server's prometheus registry; wedges add their own collectors to it.
    :ivar load_policy: ``(slot, artifact_dir) -> policy``: loads another policy into this
        process and adds it to ``policies`` (what :func:`load_wedge_policies` calls for the
        slots a wedge declares in ``WedgeSpec.policies``).
    :ivar routes: starlette routes a wedge adds (``/guard/status``...).
    :ivar health: name -> callable returning a JSON-able mapping for ``/health``; one with
        ``"degraded": True`` makes the server report ``degraded``.
    :ivar on_shutdown: callables run when the server stops; one may return an awaitable (an
        ``async def``), which is awaited.
    :ivar executor: the server's inference threads (``loop.run_in_executor(ctx.executor,
        fn)``), for blocking work a wedge does per request; None outside a server.
    """

    policies: dict[str, PolicyLike]
    embodiment: EmbodimentLike | None = None
    metrics: CollectorRegistry | None = None
    load_policy: Callable[[str, Path | str], PolicyLike] | None = None
    routes: list[BaseRoute] = attrs.field(factory=list)
    health: dict[str, Callable[[], Mapping[str, Any]]] = attrs.field(factory=dict)
    on_shutdown: list[Callable[[], object]] = attrs.field(factory=list)
    executor: Executor | None = None


def unbatched(next_batch: BatchHandler) -> Handler:
    """The default bridge between the request and batch levels: a batch of one."""

    async def handle(request: ActRequest) -> ActResult:
        (result,) = await next_batch([request])
        return result

    return handle


@attrs.frozen
class EnabledWedge:
    """A wedge the user switched on, with its structured config."""

    spec: WedgeSpec[Any]
    config: Any


def ordered(wedges: Sequence[EnabledWedge]) -> list[EnabledWedge]:
    """Outermost first: by stage, then by name (deterministic, independent of install order)."""
    result = sorted(wedges, key=lambda w: (int(w.spec.stage), w.spec.name))
    batching = [w.spec.name for w in result if int(w.spec.stage) == Stage.BATCHING]
    if len(batching) > 1:
        raise ConfigError(
            f"only one batching wedge can be enabled, got {', '.join(batching)}",
            slug="wedge-conflict",
        )
    return result


def load_wedge_policies(wedges: Sequence[EnabledWedge], ctx: WedgeContext) -> None:
    """Load every policy slot the wedges declare (``WedgeSpec.policies``) that ``ctx`` does not
    hold yet, through ``ctx.load_policy``. :func:`compose` calls it before any factory runs; the
    server calls it earlier on an inference thread, so a model load never blocks its loop.

    :raises ConfigError: ``policy-loader-unavailable`` when a slot is needed and ``ctx`` cannot
        load policies.
    """
    for w in wedges:
        wanted = w.spec.policies(w.config) if w.spec.policies is not None else {}
        for slot, artifact_dir in wanted.items():
            if slot in ctx.policies:
                continue
            if ctx.load_policy is None:
                raise ConfigError(
                    f"the {w.spec.name} wedge needs policy slot {slot!r} ({artifact_dir}), "
                    "and this server cannot load policies",
                    slug="policy-loader-unavailable",
                )
            ctx.load_policy(slot, artifact_dir)


def compose(
    wedges: Sequence[EnabledWedge], policy: BatchHandler, ctx: WedgeContext
) -> tuple[Handler, list[str]]:
    """Build the chain around ``policy``; returns the outermost handler and the order used.

    Starlette-style: the list is outermost first, so it is wrapped in reverse. The slots the
    wedges declare are loaded first (:func:`load_wedge_policies`).
    """
    chain = ordered(wedges)
    load_wedge_policies(chain, ctx)
    inner = [w for w in chain if int(w.spec.stage) > Stage.BATCHING]
    bridge = [w for w in chain if int(w.spec.stage) == Stage.BATCHING]
    outer = [w for w in chain if int(w.spec.stage) < Stage.BATCHING]

    # The stage says which kind of factory each is (WedgeSpec.factory is their union).
    batch_handler: BatchHandler = policy
    for w in reversed(inner):
        batch_factory = cast("BatchWedgeFactory[Any]", w.spec.factory)
        batch_handler = batch_factory(w.config, batch_handler, ctx)
    handler: Handler
    if bridge:
        bridge_factory = cast("BridgeWedgeFactory[Any]", bridge[0].spec.factory)
        handler = bridge_factory(bridge[0].config, batch_handler, ctx)
    else:
        handler = unbatched(batch_handler)
    for w in reversed(outer):
        request_factory = cast("RequestWedgeFactory[Any]", w.spec.factory)
        handler = request_factory(w.config, handler, ctx)
    return handler, [w.spec.name for w in chain]


def enabled_wedges(
    specs: Mapping[str, WedgeSpec[Any]], values_by_wedge: Mapping[str, Mapping[str, Any]]
) -> list[EnabledWedge]:
    """Structure each wedge's option values into its config class; keep the enabled ones."""
    from reflex_core.plugin.registry import structure_config

    result: list[EnabledWedge] = []
    for name, spec in sorted(specs.items()):
        config = structure_config(spec, values_by_wedge.get(name, {}))
        if spec.is_enabled(config):
            result.append(EnabledWedge(spec=spec, config=config))
    return result
