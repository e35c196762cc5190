"""The Reflex server: policies + wedge chain + transports in one Starlette app.

:class:`ReflexServer` owns the loaded policy slots, the embodiment, the resolved options and the
:class:`~reflex_core.plugin.wedges.WedgeContext`. It builds the chain from the enabled wedges around its
terminal :class:`~reflex_core.plugin.wedges.BatchHandler`, which groups requests by policy slot and runs
``policy.infer`` in a bounded thread pool so the event loop (and ``/health``) stays responsive
while a chunk computes.

Lifecycle: the port opens at once; policies load and warm up in the background while
``/health`` answers 503 ``loading`` / ``warming``; then ``reflex_startup`` hooks run and the
server reports ``ready``. A load or warm-up failure leaves it ``failed`` (the hypercorn runner
then exits non-zero). On shutdown the state is ``stopping``: WebSocket sessions finish the frames
they hold and close, in-flight requests complete, then ``ctx.on_shutdown`` callbacks and the
``reflex_shutdown`` hooks run.

This module never imports torch: serving runs on an edge box without it.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import time
from collections.abc import AsyncIterator, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.routing import BaseRoute, Route

from reflex_core.errors import (
    ConfigError,
    Conflict,
    PayloadTooLarge,
    ReflexError,
    Unavailable,
    ValidationError,
)
from reflex_core.plugin.contracts import EmbodimentLike, PolicyLike, RequestLimits, TransportSession
from reflex_core.plugin.options import resolve_options
from reflex_core.plugin.wedges import (
    ActRequest,
    ActResult,
    EnabledWedge,
    Handler,
    WedgeContext,
    compose,
    enabled_wedges,
    load_wedge_policies,
    ordered,
)
from reflex_core.serve.config import ResolvedServeOptions, ServeConfig
from reflex_core.serve.errors import (
    INVALID_NOISE_SEED,
    NOT_READY,
    TOO_MANY_SESSIONS,
    dumps,
    encode_action_chunk,
)
from reflex_core.serve.executor import InferenceExecutor
from reflex_core.serve.idempotency import IdempotencyWindow, observation_fingerprint
from reflex_core.serve.metrics import ServeMetrics
from reflex_core.serve.middleware import (
    BearerAuthMiddleware,
    BodyLimitMiddleware,
    ConcurrencyLimitMiddleware,
    ErrorBoundaryMiddleware,
    RequestIdMiddleware,
    cors_middleware_kwargs,
    is_open_route,
)
from reflex_core.serve.ops import (
    DEFAULT_SLOT,
    FAILED,
    LOADING,
    READY,
    STOPPING,
    WARMING,
    OpsEndpoints,
)
from reflex_core.serve.policy_handler import CHECKED_KEY, InferenceLoad, TerminalPolicyHandler
from reflex_core.wire.parse import error_frame, parse_observation
from reflex_core.wire.types import Observation

log = logging.getLogger("reflex.serve")

OPEN_PATHS = ("/health", "/metrics")
_NOISE_SEED_MAX = 2**63 - 1

if TYPE_CHECKING:
    import pluggy

    from reflex_core.plugin.registry import Registry

PolicySource = Mapping[str, PolicyLike] | Callable[[], Mapping[str, PolicyLike]]


def noise_from_seed(seed: int, chunk_size: int, max_action_dim: int) -> np.ndarray:
    """The flow-matching noise a request with ``noise_seed`` gets: a reproducible (T, A) draw,
    ``np.random.default_rng(seed).standard_normal((T, A), dtype=np.float32)``."""
    rng = np.random.default_rng(seed)
    return rng.standard_normal((chunk_size, max_action_dim), dtype=np.float32)


def _default_registry() -> Registry:
    from reflex_core.plugin.manager import make_plugin_manager

    return make_plugin_manager(load_entrypoints=False).registry


class ReflexServer(TerminalPolicyHandler, OpsEndpoints):
    """One serving process: policies, embodiment, wedge chain, transports and operations routes.

    :param policies: slot -> loaded ``Policy`` (must include ``"default"``), or a callable that
        loads them; a callable runs in the executor at startup so the port opens first.
    :param embodiment: the robot's ``EmbodimentConfig``, or None (raw actions, with a warning).
    :param registry: the plugin registry (wedges, transports); the built-ins only by default.
    :param options: the resolved options (:class:`ResolvedServeOptions`), or only the core's
        :class:`ServeConfig` (every wedge then takes its defaults, i.e. stays off).
    :param policy_loader: ``(artifact_dir, slot) -> Policy`` with this server's runtime
        options; backs ``ctx.load_policy`` (the router wedge loads a second slot with it).
    :param hook: the plugin manager's ``hook`` relay, for ``reflex_startup``/``reflex_shutdown``.
    """

    def __init__(
        self,
        policies: PolicySource,
        *,
        embodiment: EmbodimentLike | None = None,
        registry: Registry | None = None,
        options: ResolvedServeOptions | ServeConfig | None = None,
        policy_loader: Callable[[Path | str, str], PolicyLike] | None = None,
        hook: pluggy.HookRelay | None = None,
    ) -> None:
        self.registry = registry if registry is not None else _default_registry()
        if not isinstance(options, ResolvedServeOptions):
            options = self._defaults_for(options or ServeConfig())
        self.options = options
        self.config = options.serve
        self.embodiment = embodiment
        self._policy_source = policies
        self._policy_loader = policy_loader
        self._hook = hook

        self.state = LOADING
        self.failure: BaseException | None = None
        self.started_at = time.monotonic()
        self.metrics_registry = _new_collector_registry()
        self.metrics = ServeMetrics(self.metrics_registry)
        self.metrics.state.state(LOADING)
        self.policies: dict[str, PolicyLike] = {}
        self.executor = InferenceExecutor(self.config.workers_threads)
        self.load = InferenceLoad(self.config.workers_threads)
        self.ctx = WedgeContext(
            policies=self.policies,
            embodiment=embodiment,
            metrics=self.metrics_registry,
            load_policy=self._load_extra_policy,
            executor=self.executor,
        )
        # Structure every wedge's config now: a bad option fails before the port opens.
        self.enabled: list[EnabledWedge] = ordered(
            enabled_wedges(self.registry.wedges, options.wedges)
        )
        self.wedge_names = [w.spec.name for w in self.enabled]
        self.idempotency: IdempotencyWindow[ActResult] = IdempotencyWindow(
            self.config.idempotency_window_s
        )
        self._tracer = self._make_tracer()
        self._handler: Handler | None = None
        self._model_meta: dict[str, dict[str, Any]] = {}
        self._bring_up_task: asyncio.Task[None] | None = None
        self._startup_hooks_ran = False
        self._shut_down = False
        self.stopping = asyncio.Event()
        self.failed = asyncio.Event()
        self.ws_sessions: set[TransportSession] = set()
        self._route_paths: set[str] = set()
        self.app = self._build_app()

    # ------------------------------------------------------------------------------ setup

    def _defaults_for(self, serve: ServeConfig) -> ResolvedServeOptions:
        return ResolvedServeOptions(
            serve=serve,
            wedges={
                n: resolve_options(s.options, {}, None, owner=n)
                for n, s in self.registry.wedges.items()
            },
            transports={
                n: resolve_options(t.options, {}, None, owner=n)
                for n, t in self.registry.transports.items()
            },
        )

    def _make_tracer(self) -> Any:
        if not self.config.otel_endpoint:
            return None
        from reflex_core.serve.tracing import make_tracer, shutdown_provider

        tracer, provider = make_tracer(self.config.otel_endpoint)
        self.ctx.on_shutdown.append(lambda: shutdown_provider(provider))
        return tracer

    def trace_outside_chain(
        self, request_id: str, exc: ReflexError | None, received_wall_ns: int
    ) -> None:
        """Record a request that never entered the wedge chain: rejected before it (``exc``),
        or an idempotent replay (``None``). A no-op without tracing."""
        if self._tracer is not None:
            from reflex_core.serve.tracing import record_outside_chain

            record_outside_chain(self._tracer, request_id, received_wall_ns, exc)

    def transport_options(self, name: str) -> dict[str, Any]:
        """The resolved option values of one transport (``ws`` -> its queue settings)."""
        return self.options.transports.get(name, {})

    # -------------------------------------------------- what transports use (TransportHost)

    def check_ready(self) -> None:
        """Raise ``not-ready`` (503, Retry-After) or ``startup-failed`` unless ready."""
        if self._handler is None:
            raise self._not_ready()

    @property
    def limits(self) -> RequestLimits:
        """The request limits transports apply (``--max-body-bytes``, ``--body-timeout-s``)."""
        return self.config

    def check_frame_size(self, size: int) -> None:
        """Refuse a frame larger than ``--max-body-bytes`` (413 ``payload-too-large``); the
        HTTP body limit is middleware, a WebSocket frame is checked by its transport."""
        limit = self.config.max_body_bytes
        if size > limit:
            raise PayloadTooLarge(
                f"frame exceeds the server's limit of {limit} bytes",
                details={"max_body_bytes": limit},
            )

    def encode_error(self, exc: BaseException, request_id: str, *, seq: int | None = None) -> bytes:
        """The error frame of ``exc`` as JSON bytes (the one shape; ``seq`` when known)."""
        frame = error_frame(exc, request_id)
        if seq is not None:
            frame["seq"] = seq
        return dumps(frame)

    def open_session(self, session: TransportSession) -> None:
        """Track a long-lived connection: :meth:`begin_stopping` asks it to close. Call it
        before accepting the handshake: past ``--max-ws-sessions`` it raises 503
        ``too-many-sessions`` (the error boundary refuses the handshake with it)."""
        if session in self.ws_sessions:
            return
        if len(self.ws_sessions) >= self.config.max_ws_sessions:
            raise Unavailable(
                f"the server holds {len(self.ws_sessions)} WebSocket sessions, its limit "
                "(--max-ws-sessions); retry shortly",
                slug=TOO_MANY_SESSIONS,
                retry_after_s=1.0,
            )
        if session not in self.ws_sessions:
            self.ws_sessions.add(session)
            self.metrics.ws_sessions.inc()

    def close_session(self, session: TransportSession) -> None:
        """Forget a connection :meth:`open_session` tracked (a no-op if it was not)."""
        if session in self.ws_sessions:
            self.ws_sessions.discard(session)
            self.metrics.ws_sessions.dec()

    def _build_app(self) -> Starlette:
        routes: list[BaseRoute] = [
            Route("/health", self._health_endpoint, methods=["GET"]),
            Route("/metrics", self._metrics_endpoint, methods=["GET"]),
            Route("/config", self._config_endpoint, methods=["GET"]),
        ]
        for _name, transport in sorted(self.registry.transports.items()):
            routes.extend(transport.routes(self))
        self._route_paths.update(getattr(r, "path", "") for r in routes)
        open_paths = (*OPEN_PATHS, *(r.path for r in routes if is_open_route(r)))

        middleware = [
            Middleware(RequestIdMiddleware),
            Middleware(
                ErrorBoundaryMiddleware,
                count=self.metrics.count_request,
                routes=self._route_paths,
            ),
            Middleware(
                ConcurrencyLimitMiddleware,
                max_requests=self.config.max_concurrent_requests,
                open_paths=open_paths,
            ),
        ]
        if self.config.cors_origin:
            from starlette.middleware.cors import CORSMiddleware

            middleware.append(
                Middleware(CORSMiddleware, **cors_middleware_kwargs(self.config.cors_origin))
            )
        if self.config.api_key:
            middleware.append(
                Middleware(BearerAuthMiddleware, api_key=self.config.api_key, open_paths=open_paths)
            )
        middleware.append(Middleware(BodyLimitMiddleware, max_bytes=self.config.max_body_bytes))
        app = Starlette(
            routes=routes,
            middleware=middleware,
            exception_handlers={HTTPException: self._http_exception},
            lifespan=self._lifespan,
        )
        app.state.reflex_server = self
        return app

    # -------------------------------------------------------------------------- lifecycle

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        await self.startup()
        try:
            yield
        finally:
            await self.shutdown()

    async def startup(self) -> None:
        """Start loading and warming up in the background; returns at once."""
        if self._bring_up_task is None:
            self._bring_up_task = asyncio.get_running_loop().create_task(self._bring_up())

    async def wait_ready(self) -> None:
        """Wait for the background start-up; raises its error if it failed."""
        if self._bring_up_task is None:
            await self.startup()
        assert self._bring_up_task is not None
        await asyncio.shield(self._bring_up_task)
        if self.failure is not None:
            raise self.failure

    def _set_state(self, state: str) -> None:
        self.state = state
        self.metrics.state.state(state)
        log.info("server state: %s", state)

    async def _in_executor(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await self.executor.run(fn, *args)

    async def _bring_up(self) -> None:
        try:
            self._set_state(LOADING)
            source = self._policy_source
            loaded = await self._in_executor(source) if callable(source) else source
            self.policies.update(loaded)
            if DEFAULT_SLOT not in self.policies:
                raise ConfigError(
                    f"no {DEFAULT_SLOT!r} policy slot (got {', '.join(self.policies) or 'none'})",
                    slug="no-default-policy",
                )
            # the slots the wedges declare load off the loop; compose then finds them loaded
            await self._in_executor(load_wedge_policies, self.enabled, self.ctx)
            # Wedge factories run on the loop: some create asyncio objects.
            handler, names = compose(self.enabled, self._run_batch, self.ctx)
            self.wedge_names = names
            if self.ctx.routes:
                self.app.router.routes.extend(self.ctx.routes)
                self._route_paths.update(getattr(r, "path", "") for r in self.ctx.routes)
            if self.stopping.is_set():
                return
            self._set_state(WARMING)
            for slot, policy in list(self.policies.items()):
                started = time.perf_counter()
                await self._in_executor(policy.warmup)
                # the first guess at the pace (a first run is slow: it errs on the safe side)
                self.load.observe(slot, time.perf_counter() - started)
                self._model_meta[slot] = self._describe(policy)
            if self._hook is not None:
                self._hook.reflex_startup(app_state=self.app_state())
                self._startup_hooks_ran = True
            self._handler = handler
            if not self.stopping.is_set():
                self._set_state(READY)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.failure = exc
            self._set_state(FAILED)
            if isinstance(exc, ReflexError):
                log.error("start-up failed: %s", exc)
            else:
                log.exception("start-up failed")
            self.failed.set()

    def begin_stopping(self) -> None:
        """Report ``stopping`` and ask WebSocket sessions to finish what they hold and close.
        HTTP requests still in flight complete; the runner calls this on SIGTERM/SIGINT."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        if self.state != FAILED:
            self._set_state(STOPPING)
        for session in list(self.ws_sessions):
            session.request_close()

    async def shutdown(self) -> None:
        """Run ``ctx.on_shutdown`` callbacks and ``reflex_shutdown`` hooks once."""
        if self._shut_down:
            return
        self._shut_down = True
        self.begin_stopping()
        task = self._bring_up_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for callback in reversed(self.ctx.on_shutdown):
            try:
                outcome = callback()
                if inspect.isawaitable(outcome):
                    await outcome
            except Exception:
                log.exception("a shutdown callback failed: %r", callback)
        if self._hook is not None and self._startup_hooks_ran:
            try:
                self._hook.reflex_shutdown(app_state=self.app_state())
            except Exception:
                log.exception("a reflex_shutdown hook failed")
        self.executor.shutdown(wait=False, cancel_futures=True)

    def app_state(self) -> dict[str, Any]:
        """What ``reflex_startup`` / ``reflex_shutdown`` receive."""
        return {
            "policies": self.policies,
            "embodiment": self.embodiment,
            "metrics": self.metrics_registry,
            "config": self.config_snapshot(),
            "wedges": list(self.wedge_names),
        }

    def _load_extra_policy(self, slot: str, artifact_dir: Path | str) -> PolicyLike:
        if self._policy_loader is None:
            raise ConfigError(
                "this server was built without a policy loader; it cannot load another slot",
                slug="policy-loader-unavailable",
            )
        policy = self._policy_loader(artifact_dir, slot)
        self.policies[slot] = policy
        return policy

    @staticmethod
    def _describe(policy: Any) -> dict[str, Any]:
        info = dict(getattr(policy, "info", {}) or {})
        return {"family": info.get("family"), "model_version": info.get("model_version")}

    # ----------------------------------------------------------------------- request path

    @property
    def ready(self) -> bool:
        return self._handler is not None

    def _not_ready(self) -> Unavailable:
        if self.state == FAILED:
            return Unavailable("the server failed to start; see /health", slug="startup-failed")
        return Unavailable(
            f"the server is {self.state}; retry shortly", slug=NOT_READY, retry_after_s=1.0
        )

    def prepare(self, payload: Any, *, request_id: str, received_ns: int) -> ActRequest:
        """Parse and validate one decoded observation: parse -> ``policy.validate``.

        ``noise_seed`` (an integer) is a transport-level field, not part of the observation:
        it fixes the flow-matching noise (:func:`noise_from_seed`) for a reproducible chunk.
        """
        if self._handler is None:
            raise self._not_ready()
        policy = self.policies[DEFAULT_SLOT]
        noise = None
        if isinstance(payload, dict) and "noise_seed" in payload:
            payload = dict(payload)
            seed = payload.pop("noise_seed")
            if seed is not None:
                if type(seed) is not int or not 0 <= seed <= _NOISE_SEED_MAX:
                    raise ValidationError(
                        f"noise_seed must be an integer in 0..2**63-1, got {seed!r}",
                        slug=INVALID_NOISE_SEED,
                        field="noise_seed",
                    )
                noise = noise_from_seed(seed, policy.chunk_size, policy.max_action_dim)
        return self.admit(
            parse_observation(payload), request_id=request_id, received_ns=received_ns, noise=noise
        )

    def admit(
        self,
        observation: Observation,
        *,
        request_id: str,
        received_ns: int,
        noise: np.ndarray | None = None,
    ) -> ActRequest:
        """The policy's half of the boundary, for an observation a transport already parsed
        (``prepare`` after the wire parser; a peer protocol's mapper): ``policy.validate`` once,
        and what it returns rides along so ``policy.infer`` does not check again."""
        if self._handler is None:
            raise self._not_ready()
        checked = self.policies[DEFAULT_SLOT].validate(observation)
        request = ActRequest(
            observation=observation, request_id=request_id, received_ns=received_ns, noise=noise
        )
        if checked is not None:  # the runtime's Policy: infer runs it without checking again
            request.annotations[CHECKED_KEY] = checked
        return request

    async def act(self, request: ActRequest) -> ActResult:
        """Run one request through the composed wedge chain (with latency metrics)."""
        handler = self._handler
        if handler is None:
            raise self._not_ready()
        metrics = self.metrics
        metrics.in_flight_count += 1  # only the event loop's thread touches it
        started = time.perf_counter()
        policy, outcome = request.policy, "ok"
        try:
            if self._tracer is None:
                result = await handler(request)
            else:
                from reflex_core.serve.tracing import POLICY_ATTR, act_span

                with act_span(self._tracer, request.request_id) as span:
                    result = await handler(request)
                    span.set_attribute(POLICY_ATTR, str(result.metadata.get("policy")))
            policy = result.metadata.get("policy", policy)
            return result
        except ReflexError as exc:
            outcome = exc.slug
            raise
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception:
            outcome = "internal-error"
            raise
        finally:
            metrics.in_flight_count -= 1
            metrics.observe_act(policy, outcome, time.perf_counter() - started)

    async def submit(self, request: ActRequest) -> tuple[ActResult, bool]:
        """:meth:`act` behind the idempotency window; returns the result and whether it
        replays an earlier request with the same ``request_id``."""
        key = request.observation.request_id
        if key is None or not self.idempotency.enabled:
            return await self.act(request), False
        fingerprint = observation_fingerprint(request.observation, request.noise)
        try:
            result, replayed = await self.idempotency.run(
                key, lambda: self.act(request), fingerprint
            )
        except Conflict as exc:  # refused before the chain: it gets a span of its own
            self.trace_outside_chain(request.request_id, exc, _wall_ns(request.received_ns))
            raise
        if replayed:
            self.metrics.idempotent_replays.inc()
            self.trace_outside_chain(request.request_id, None, _wall_ns(request.received_ns))
        return result, replayed

    def encode_chunk(
        self,
        request: ActRequest,
        result: ActResult,
        *,
        received_wall_ns: int,
        replayed: bool = False,
    ) -> bytes:
        """The action-chunk frame for a result, as JSON bytes: actions plus :meth:`chunk_metadata`
        (model, policy slot, timings keyed to ``capture_time_ns``, embodiment or raw_actions, the
        wedges' notes), by the fast path the transports use."""
        metadata = self.chunk_metadata(
            request, result, received_wall_ns=received_wall_ns, replayed=replayed
        )
        return encode_action_chunk(request.observation.seq, result.actions, metadata)

    def chunk_metadata(
        self,
        request: ActRequest,
        result: ActResult,
        *,
        received_wall_ns: int,
        replayed: bool = False,
    ) -> dict[str, Any]:
        """A chunk's ``metadata``: the result's (copied: an idempotent replay shares the result)
        plus timings, request id, and embodiment or ``raw_actions``."""
        meta = dict(result.metadata)
        timings = dict(meta.get("timings") or ())
        timings["server_receive_ns"] = received_wall_ns
        timings["total_ms"] = round((time.monotonic_ns() - request.received_ns) / 1e6, 3)
        capture = request.observation.capture_time_ns
        if capture is not None:
            timings["capture_time_ns"] = capture
            timings["capture_to_response_ms"] = round((time.time_ns() - capture) / 1e6, 3)
        meta["timings"] = timings
        meta["request_id"] = request.request_id
        if self.embodiment is not None:
            meta["embodiment"] = self.embodiment.name
        else:
            meta["raw_actions"] = True
        if replayed:
            meta["idempotent_replay"] = True
        return meta


def _wall_ns(monotonic_ns: int) -> int:
    """The wall-clock time (``time.time_ns()``) of an earlier ``time.monotonic_ns()`` reading."""
    return time.time_ns() - (time.monotonic_ns() - monotonic_ns)


def _new_collector_registry() -> Any:
    from prometheus_client import CollectorRegistry

    return CollectorRegistry(auto_describe=True)


def create_app(policies: PolicySource, **kwargs: Any) -> Starlette:
    """Build the Starlette app of a :class:`ReflexServer` (tests drive it through
    ``httpx.ASGITransport``; the server object is ``app.state.reflex_server``)."""
    return ReflexServer(policies, **kwargs).app
