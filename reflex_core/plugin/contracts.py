"""The types a plugin author programs against: what the core hands a plugin, and what it
expects back.

They are :class:`typing.Protocol` classes: structural, so any object with these members fits
(the runtime's ``Policy`` and a test double alike) and nothing has to inherit from them. They
exist for the type checker; nothing here is checked at run time. CI runs ``mypy --strict`` on
this module and the other contract modules (``scripts/test.sh``), and
``tests/contract_conformance.py`` checks that the core's own classes satisfy them.

* a wedge is a :data:`WedgeFactory` (``reflex_core.plugin.wedges``): ``(config, next, ctx) ->
  handler``, with ``next`` and the handler a :data:`Handler` or a :data:`BatchHandler`;
* ``ctx`` (:class:`~reflex_core.plugin.wedges.WedgeContext`) holds :class:`PolicyLike` slots and an
  :class:`EmbodimentLike` (or None);
* a transport's ``routes(host)`` (``reflex_core.plugin.registry.Transport``) gets a
  :class:`TransportHost`: the server as a transport sees it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from reflex_core.plugin.wedges import (
    ActRequest,
    ActResult,
    BatchHandler,
    BatchWedgeFactory,
    BridgeWedgeFactory,
    Handler,
    RequestWedgeFactory,
    WedgeContext,
    WedgeFactory,
)
from reflex_core.wire.types import Observation

if TYPE_CHECKING:
    from reflex_core.errors import ReflexError
    from reflex_core.serve.metrics import ServeMetrics

__all__ = [
    "ActRequest",
    "ActResult",
    "BatchHandler",
    "BatchWedgeFactory",
    "BridgeWedgeFactory",
    "ControlLike",
    "ConstraintsLike",
    "EmbodimentLike",
    "GripperLike",
    "Handler",
    "PolicyLike",
    "PolicyOutputLike",
    "RequestLimits",
    "RequestWedgeFactory",
    "TransportHost",
    "TransportSession",
    "WedgeContext",
    "WedgeFactory",
]


# ------------------------------------------------------------------------------- a policy


class PolicyOutputLike(Protocol):
    """One batched inference (the runtime's ``PolicyOutput``)."""

    @property
    def actions(self) -> np.ndarray:
        """float32 (B, chunk_size, action_dim), in robot units (model units without an
        embodiment)."""
        ...

    @property
    def features(self) -> np.ndarray | None:
        """float32 (B, feature_dim) pooled prefix features (the A2C2 head reads them), or
        None."""
        ...

    @property
    def timings(self) -> Mapping[str, Any]:
        """Milliseconds and counters of the call (``preprocess_ms``, ``model_ms``,
        ``total_ms``...); they end up under a chunk's ``metadata.timings``."""
        ...


class PolicyLike(Protocol):
    """A loaded policy slot: what ``ctx.policies`` holds and the server runs
    (:class:`reflex_core.runtime.policy.Policy`, or a test double).

    Read a slot's shape and ``info`` when a wedge is built; never call ``infer`` from a wedge
    (the terminal handler does, on the inference threads, after every wedge ran).
    """

    @property
    def info(self) -> Mapping[str, Any]:
        """What ``/health`` shows of it: ``family``, ``model_version``, ``chunk_size``,
        ``action_dim``, ``state_dim``, ``cameras``, ``providers``..."""
        ...

    @property
    def chunk_size(self) -> int:
        """T: actions per chunk."""
        ...

    @property
    def action_dim(self) -> int:
        """D: values per action, in robot units."""
        ...

    @property
    def max_action_dim(self) -> int:
        """The padded action width of the model: noise is (T, max_action_dim)."""
        ...

    @property
    def state_dim(self) -> int:
        """The length ``observation.state`` must have."""
        ...

    def validate(self, observation: Observation, /) -> object:
        """Check one observation against this policy (the server does, once, at its boundary).

        :returns: None, or the checked form ``infer`` may be handed instead of the observation.
        :raises reflex_core.errors.ValidationError: with a slug (422), never anything else.
        """
        ...

    def infer(
        self, observations: Sequence[Observation], noise: np.ndarray | None = None, /
    ) -> PolicyOutputLike:
        """Run a batch: one row per observation; ``noise`` is (B, T, max_action_dim) or None
        (drawn). Blocking: the server calls it on its inference threads."""
        ...

    def warmup(self) -> object:
        """One dummy batch, so the first request does not pay for allocation (the result is
        ignored)."""
        ...


# --------------------------------------------------------------------------- an embodiment


class ControlLike(Protocol):
    """An embodiment's control loop."""

    @property
    def frequency_hz(self) -> float: ...

    @property
    def chunk_size(self) -> int: ...


class GripperLike(Protocol):
    """An embodiment's gripper: which action dimension it is."""

    @property
    def component_idx(self) -> int: ...


class ConstraintsLike(Protocol):
    """An embodiment's velocity limits, in robot units per second."""

    @property
    def max_joint_velocity(self) -> np.ndarray | None: ...

    @property
    def max_gripper_velocity(self) -> float: ...


class EmbodimentLike(Protocol):
    """The robot the server serves (:class:`reflex_core.embodiments.EmbodimentConfig`): what
    ``ctx.embodiment`` and ``TransportHost.embodiment`` are when not None."""

    @property
    def name(self) -> str: ...

    @property
    def action_dim(self) -> int: ...

    @property
    def state_dim(self) -> int: ...

    @property
    def joint_names(self) -> Sequence[str]:
        """One per action dimension, gripper included."""
        ...

    @property
    def action_ranges(self) -> np.ndarray:
        """(action_dim, 2) hard limits ``[min, max]`` in robot units."""
        ...

    @property
    def control(self) -> ControlLike: ...

    @property
    def gripper(self) -> GripperLike | None: ...

    @property
    def constraints(self) -> ConstraintsLike: ...


# -------------------------------------------------------------------------- a transport


class RequestLimits(Protocol):
    """The limits a transport applies to what it reads (the server's ``[serve]`` settings)."""

    @property
    def max_body_bytes(self) -> int:
        """``--max-body-bytes``: the largest request body or WebSocket frame taken (413)."""
        ...

    @property
    def body_timeout_s(self) -> float:
        """``--body-timeout-s``: a request body must arrive within this long (408)."""
        ...


class TransportSession(Protocol):
    """A long-lived connection a transport registers with :meth:`TransportHost.open_session`,
    so a stopping server can ask it to finish."""

    def request_close(self) -> None:
        """Stop reading; answer what is already read; then close (WebSocket code 1001). Called
        on the event loop; must not block."""
        ...


class TransportHost(Protocol):
    """The server as a transport sees it (:class:`reflex_core.serve.app.ReflexServer`).

    A transport turns its own wire format into :meth:`prepare` (or :meth:`admit`), runs that
    through :meth:`submit`, and turns the result back with :meth:`chunk_metadata` (or
    :meth:`encode_chunk`, the JSON chunk frame); errors go out as :meth:`encode_error` frames
    (or the transport's own shape built from the same slug and status). Going through these,
    and nothing else, is what gives every transport the same validation, wedges, idempotency
    window, timings and metrics.

    Authentication (``--api-key``), CORS and the HTTP body limit wrap every route, the
    transport's included, before it is called; a WebSocket frame's size is the transport's to
    check (:meth:`check_frame_size`).
    """

    # -- readiness

    @property
    def ready(self) -> bool:
        """True once policies are loaded and warm and the wedges are composed."""
        ...

    @property
    def state(self) -> str:
        """``loading``, ``warming``, ``ready``, ``failed`` or ``stopping``."""
        ...

    def check_ready(self) -> None:
        """:raises reflex_core.errors.Unavailable: ``not-ready`` (503, Retry-After) while
        loading or warming, ``startup-failed`` after a failed start."""
        ...

    def health(self) -> tuple[int, dict[str, Any]]:
        """What ``GET /health`` answers: its status code (200 only when ready) and body."""
        ...

    # -- what is served

    @property
    def policies(self) -> Mapping[str, PolicyLike]:
        """The loaded slots (``"default"``, more with the router). To describe them; a
        transport runs observations through :meth:`submit`, never ``infer``."""
        ...

    @property
    def embodiment(self) -> EmbodimentLike | None:
        """The robot, or None (raw model actions)."""
        ...

    @property
    def wedge_names(self) -> Sequence[str]:
        """The enabled wedges, outermost first."""
        ...

    def transport_options(self, name: str) -> Mapping[str, Any]:
        """The resolved settings of transport ``name`` (its ``config_cls`` fields by name)."""
        ...

    # -- limits

    @property
    def limits(self) -> RequestLimits:
        """The request limits the server was started with (``--max-body-bytes``...)."""
        ...

    def check_frame_size(self, size: int) -> None:
        """:raises reflex_core.errors.PayloadTooLarge: (413) when a frame of ``size`` bytes
        exceeds ``limits.max_body_bytes``."""
        ...

    # -- the request path

    def prepare(self, payload: object, *, request_id: str, received_ns: int) -> ActRequest:
        """Parse and validate a decoded wire observation (Reflex's JSON shape: ``state``,
        ``images``, ``prompt``..., plus ``noise_seed``) into an :class:`ActRequest`.

        :param request_id: the id errors and the chunk carry.
        :param received_ns: ``time.monotonic_ns()`` when the transport got the frame.
        :raises reflex_core.errors.ReflexError: ``not-ready`` (503), or a 4xx slug.
        """
        ...

    def admit(
        self,
        observation: Observation,
        *,
        request_id: str,
        received_ns: int,
        noise: np.ndarray | None = None,
    ) -> ActRequest:
        """:meth:`prepare` for an :class:`Observation` the transport built from its own wire
        format (a peer protocol's key map): validated against the policy, once.

        :raises reflex_core.errors.ReflexError: ``not-ready`` (503), or a 4xx slug.
        """
        ...

    async def submit(self, request: ActRequest) -> tuple[ActResult, bool]:
        """Run ``request`` through the wedge chain (behind the idempotency window); returns
        the result and whether it replays an earlier request with the same ``request_id``.

        :raises reflex_core.errors.ReflexError: what the chain refused with (slug, status).
        """
        ...

    def chunk_metadata(
        self,
        request: ActRequest,
        result: ActResult,
        *,
        received_wall_ns: int,
        replayed: bool = False,
    ) -> dict[str, Any]:
        """A chunk's ``metadata``, exactly as ``/act`` returns it: the result's (policy slot,
        model, the wedges' notes) plus the server's ``timings`` (``server_receive_ns``,
        ``total_ms``, ``capture_time_ns``/``capture_to_response_ms`` when the observation had
        a capture time, the policy's own), ``request_id``, and ``embodiment`` or
        ``raw_actions``. A fresh dict the caller may change.

        :param received_wall_ns: ``time.time_ns()`` when the transport got the frame.
        """
        ...

    def encode_chunk(
        self,
        request: ActRequest,
        result: ActResult,
        *,
        received_wall_ns: int,
        replayed: bool = False,
    ) -> bytes:
        """The ``action_chunk`` frame as JSON bytes (``{"type", "seq", "actions",
        "metadata"}``), the body of a ``/act`` response.

        :raises reflex_core.errors.ReflexError: ``non-finite-output`` (500) for NaN/Inf.
        """
        ...

    def encode_error(self, exc: BaseException, request_id: str, *, seq: int | None = None) -> bytes:
        """The error frame as JSON bytes (slug, message, ``status``, ``request_id``, and
        ``seq`` when given); anything not a ``ReflexError`` is ``internal-error`` with no
        detail (the traceback belongs in the log)."""
        ...

    # -- observability and lifecycle

    @property
    def metrics(self) -> ServeMetrics:
        """The server's collectors: count each answered frame with
        ``metrics.count_request(route, status, slug_or_ok)``; add collectors of your own to
        ``metrics.registry``."""
        ...

    def trace_outside_chain(
        self, request_id: str, exc: ReflexError | None, received_wall_ns: int
    ) -> None:
        """Record a request refused before the chain (``exc``; :meth:`prepare` raised), so
        tracing sees it too; a no-op without tracing."""
        ...

    def open_session(self, session: TransportSession) -> None:
        """Register a long-lived connection, before accepting its handshake: a stopping server
        calls its ``request_close``; it counts in ``reflex_ws_sessions`` and against
        ``--max-ws-sessions``. Pair with :meth:`close_session` (in a ``finally``).

        :raises reflex_core.errors.Unavailable: ``too-many-sessions`` (503) at the limit; raised
            before the handshake, the server refuses it with that error.
        """
        ...

    def close_session(self, session: TransportSession) -> None:
        """Forget a connection registered with :meth:`open_session` (idempotent)."""
        ...
