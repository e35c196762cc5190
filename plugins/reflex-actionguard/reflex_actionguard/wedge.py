"""The ActionGuard wedge: the outermost check on every chunk that leaves the server.

Sitting at ``Stage.GUARD`` it sees whatever the inner wedges return: the policy's chunk, a
deadline fallback (hold, tail, remote), a router's shadow pick or an A2C2-corrected chunk.

Per chunk: a NaN/Inf or wrongly shaped chunk is replaced by a hold-position chunk (in both
modes: a NaN never leaves the server); otherwise out-of-limit positions, too-fast steps (from
the action the robot executes now to the first action, and between consecutive actions) and an
out-of-range gripper are clamped (``clamp``) or the chunk is replaced by a hold (``reject``).
The decision is written to the audit log and fsynced before the chunk is returned. After
``--guard-trip-after`` consecutive violating chunks the guard trips: every /act gets 503
``guard-tripped`` until ``POST /guard/reset``.
"""

from __future__ import annotations

import collections
import logging
import os
import time
from pathlib import Path
from typing import Any

import numpy as np

from reflex_actionguard.audit import describe_chunk, timestamp
from reflex_actionguard.checks import Violation, clamp_chunk, inspect_chunk
from reflex_actionguard.config import GuardConfig
from reflex_actionguard.limits import JointLimits, limits_from_embodiment, limits_from_urdf
from reflex_actionguard.state import default_audit_log, lock_audit_log
from reflex_core.errors import ConfigError, ReflexError, Unavailable
from reflex_core.plugin import ActRequest, ActResult, Handler, WedgeContext, answering_slot
from reflex_core.plugin.kit.chunks import (
    JOINT_KINDS,
    JOINT_POSITION,
    LastChunkMemory,
    hold_chunk,
    is_absolute,
    repeat_action,
)
from reflex_core.plugin.kit.collectors import Collectors
from reflex_core.plugin.kit.jsonl import AsyncJsonlWriter, JsonlWriter

log = logging.getLogger(__name__)

VERDICTS = ("pass", "clamped", "rejected", "refused")
_LAST_VIOLATIONS = 20


def build_limits(config: GuardConfig, embodiment: Any) -> JointLimits:
    """The limits for this server, or ConfigError ``guard-needs-embodiment``."""
    if config.guard_urdf is not None:
        names = config.guard_joint_names or (
            list(embodiment.joint_names) if embodiment is not None else None
        )
        if not names:
            raise ConfigError(
                "--guard-urdf needs the action joint names: serve with --embodiment (its "
                "joint_names) or pass --guard-joint-names",
                slug="guard-needs-embodiment",
            )
        if embodiment is not None and len(names) != int(embodiment.action_dim):
            raise ConfigError(
                f"guard: {len(names)} joint names for an embodiment with action_dim "
                f"{embodiment.action_dim}",
                slug="guard-invalid-joints",
            )
        hz = config.guard_control_hz
        if hz is None and embodiment is not None:
            hz = float(embodiment.control.frequency_hz)
        gripper = None
        if embodiment is not None and embodiment.gripper is not None:
            gripper = int(embodiment.gripper.component_idx)
        return limits_from_urdf(
            config.guard_urdf, names, frequency_hz=hz, gripper_idx=gripper, embodiment=embodiment
        )
    if embodiment is None:
        raise ConfigError(
            "--guard needs joint limits: serve with --embodiment NAME (or "
            "--custom-embodiment-config PATH), or give --guard-urdf PATH with --guard-joint-names",
            slug="guard-needs-embodiment",
        )
    return limits_from_embodiment(embodiment, frequency_hz=config.guard_control_hz)


class ActionGuard:
    """The guard's state and its request handler (an instance is the wedge's handler).

    :param next: the inner handler.
    :param limits: what is enforced.
    :param audit: the durable audit log, or None.
    :param metrics: a prometheus registry for the guard's collectors.
    :param chunk_size: rows of a hold chunk when the rejected chunk's own length is unusable.
    """

    def __init__(
        self,
        config: GuardConfig,
        next: Handler,
        limits: JointLimits,
        *,
        audit: AsyncJsonlWriter | None = None,
        metrics: Any = None,
        chunk_size: int | None = None,
        memory_episodes: int = 1024,
    ) -> None:
        assert config.guard is not None
        self.config = config
        self.mode: str = config.guard
        self.next = next
        self.limits = limits
        self.audit = audit
        self.chunk_size = chunk_size
        self.memory = LastChunkMemory(memory_episodes)  # the last chunk sent, per episode
        self.audit_lock: int | None = None  # the audit log's one-writer lock (an fd)
        self.tripped = False
        self.tripped_at: str | None = None
        self.consecutive_violations = 0
        self.counts: collections.Counter[str] = collections.Counter()
        self.last_violations: collections.deque[dict[str, Any]] = collections.deque(
            maxlen=_LAST_VIOLATIONS
        )
        collectors = Collectors(metrics)
        self._decisions = collectors.counter(
            "reflex_guard_decisions_total",
            "ActionGuard decisions by verdict",
            ["verdict"],
            zeros=VERDICTS,  # export zeros from the start
        )
        self._violations = collectors.counter(
            "reflex_guard_violations_total", "Violating chunks by kind and joint", ["kind", "joint"]
        )
        self._tripped_gauge = collectors.gauge(
            "reflex_guard_tripped", "1 while ActionGuard is tripped"
        )
        self._tripped_gauge.set(0)

    # -- the request path -----------------------------------------------------------------

    async def __call__(self, request: ActRequest) -> ActResult:
        if self.tripped:
            try:
                await self._write_audit(
                    {"event": "refused", **self._request_fields(request, None), "reason": "tripped"}
                )
            except ReflexError:
                pass  # no chunk leaves, so nothing waits on this record; the failure is logged
            self.counts["refused"] += 1
            self._decisions.labels("refused").inc()
            raise Unavailable(
                f"ActionGuard tripped after {self.config.guard_trip_after} consecutive violating "
                "chunks; an operator must POST /guard/reset",
                slug="guard-tripped",
                details={"tripped_at": self.tripped_at},
            )
        result = await self.next(request)
        return await self.guard(request, result)

    async def guard(self, request: ActRequest, result: ActResult) -> ActResult:
        """Check, fix and audit one chunk; returns it once its audit record is durable."""
        now_ns = time.monotonic_ns()
        before = np.asarray(result.actions)
        reference = self._reference(request, now_ns)
        violations = inspect_chunk(before, self.limits, reference)
        if not violations:
            verdict, after = "pass", np.asarray(before, dtype=np.float32)
        elif self.mode == "clamp" and not any(_unclampable(v) for v in violations):
            verdict, after = "clamped", clamp_chunk(before, self.limits, reference)
            # The clamp starts from the reference projected into the limits (a robot sitting
            # past a limit is brought back inside, not left there), so re-check against that.
            start = reference
            if reference is not None and is_absolute(self.limits.kind):
                start = np.clip(reference, self.limits.lower, self.limits.upper)
            leftover = inspect_chunk(after, self.limits, start)
            if leftover:  # never let a chunk out that does not re-check clean
                log.warning("guard: clamp left violations %s; rejecting", leftover)
                verdict, after = "rejected", self._hold(request, before, now_ns)
        else:
            verdict, after = "rejected", self._hold(request, before, now_ns)

        policy = answering_slot(request, result)
        record: dict[str, Any] = {
            "event": "decision",
            **self._request_fields(request, policy),
            "mode": self.mode,
            "verdict": verdict,
            "violations": [v.to_dict() for v in violations],
        }
        if verdict == "pass":
            record["chunk"] = describe_chunk(after, with_values=False)
        else:
            record["before"] = describe_chunk(before, with_values=True)
            record["after"] = describe_chunk(after, with_values=True)
        await self._write_audit(record)

        # The decision is durable: only now does it count and the chunk leave.
        if request.episode_id is not None:
            self.memory.put(request.episode_id, after, time.monotonic_ns())
        self.counts[verdict] += 1
        self._decisions.labels(verdict).inc()
        guard_meta: dict[str, Any] = {
            "verdict": verdict,
            "violations": [v.to_dict() for v in violations],
        }
        if violations:
            self._note_violations(request, verdict, violations)
            self.consecutive_violations += 1
            trip_after = self.config.guard_trip_after
            if trip_after and self.consecutive_violations >= trip_after and not self.tripped:
                await self._trip()
                guard_meta["tripped"] = True
        else:
            self.consecutive_violations = 0
        metadata = {**result.metadata, "guard": guard_meta}
        return ActResult(actions=after, metadata=metadata, features=result.features)

    # -- helpers --------------------------------------------------------------------------

    def _reference(self, request: ActRequest, now_ns: int) -> np.ndarray | None:
        """What the chunk starts from (see :mod:`reflex_actionguard.checks`).

        ``joint_position``: the action the robot executes as the new chunk arrives: the
        episode's previous chunk, time-shifted, while it is still running; else the measured
        position (state). Once a chunk has run out, the robot may have been moved (teleop, a
        reset), so the state is the better witness; the chunk's last action is used only
        without a usable state. ``ee_pose``: the previous chunk's pose only (the state is not
        declared to carry a pose). Joint deltas/velocities: the measured joints. End-effector
        deltas/velocities: none."""
        kind = self.limits.kind
        dim = self.limits.dim
        measured = None
        if kind in JOINT_KINDS:
            state = np.asarray(request.observation.state, dtype=np.float64).reshape(-1)
            if state.size >= dim and np.isfinite(state[:dim]).all():
                measured = state[:dim]
        if not is_absolute(kind):
            return measured
        hz = self.limits.frequency_hz
        if request.episode_id is not None and hz is not None:
            stored = self.memory.get(request.episode_id)
            if stored is not None and stored.actions.shape[1] == dim:
                running = stored.steps_since(now_ns, hz) < stored.actions.shape[0]
                if running or measured is None:
                    return stored.current_action(now_ns, hz, kind=kind).astype(np.float64)
        return measured

    def _hold(self, request: ActRequest, rejected: np.ndarray, now_ns: int) -> np.ndarray:
        """Keep the robot still (:func:`reflex_core.plugin.kit.chunks.hold_chunk` for the action kind:
        its state for joint positions, the commanded pose for an ee pose, zero motion for
        deltas and velocities), clipped into the limits."""
        size = self._hold_size(rejected)
        kind = self.limits.kind
        stored = self.memory.get(request.episode_id) if request.episode_id is not None else None
        if stored is not None and stored.actions.shape[1] != self.limits.dim:
            stored = None
        hz = self.limits.frequency_hz or 1.0
        current = None if stored is None else stored.current_action(now_ns, hz, kind=kind)
        try:
            held = hold_chunk(
                request.observation.state,
                self.limits.dim,
                size,
                kind=kind,
                gripper_idx=self.limits.gripper_idx,
                current=current,
            )
        except ValueError as exc:
            if current is None or kind != JOINT_POSITION:
                raise Unavailable(
                    f"ActionGuard rejected the chunk and has no safe action to hold: {exc}",
                    slug="guard-no-safe-action",
                ) from exc
            held = repeat_action(current, size)
        return np.clip(held, self.limits.lower, self.limits.upper).astype(np.float32)

    def _hold_size(self, rejected: np.ndarray) -> int:
        if rejected.ndim == 2 and rejected.shape[0] >= 1:
            return int(rejected.shape[0])
        if self.chunk_size:
            return self.chunk_size
        return 1

    @staticmethod
    def _request_fields(request: ActRequest, policy: str | None) -> dict[str, Any]:
        return {
            **timestamp(),
            "request_id": request.request_id,
            # the client's own id for this observation (its idempotency key), as it sent it
            "observation_request_id": request.observation.request_id,
            "episode_id": request.episode_id,
            "policy": policy if policy is not None else request.policy,
        }

    def _note_violations(
        self, request: ActRequest, verdict: str, violations: list[Violation]
    ) -> None:
        for v in violations:
            self._violations.labels(v.kind, v.joint or "").inc()
        self.last_violations.append(
            {
                **timestamp(),
                "request_id": request.request_id,
                "observation_request_id": request.observation.request_id,
                "episode_id": request.episode_id,
                "verdict": verdict,
                "violations": [v.to_dict() for v in violations],
            }
        )
        level = logging.WARNING if verdict == "rejected" else logging.INFO
        log.log(
            level,
            "guard %s request %s: %s",
            verdict,
            request.request_id,
            "; ".join(f"{v.kind} {v.joint or ''} x{v.steps}" for v in violations),
        )

    async def _write_audit(self, record: dict[str, Any]) -> None:
        if self.audit is None:
            return
        try:
            await self.audit.append(record)
        except (OSError, ValueError) as exc:
            # Fail closed: a chunk whose decision is not on disk does not leave.
            log.error("guard audit log write failed: %s", exc)
            raise Unavailable(
                f"ActionGuard could not write its audit log: {exc}", slug="guard-audit-failed"
            ) from exc

    async def _trip(self) -> None:
        self.tripped = True
        self.tripped_at = timestamp()["ts"]
        self._tripped_gauge.set(1)
        log.error(
            "ActionGuard TRIPPED after %d consecutive violating chunks; POST /guard/reset",
            self.consecutive_violations,
        )
        try:
            await self._write_audit(
                {"event": "trip", **timestamp(), "consecutive": self.consecutive_violations}
            )
        except ReflexError:
            pass  # the trip stands regardless; the failure is already logged

    async def reset(self, *, by: str | None = None) -> dict[str, Any]:
        """Re-arm a tripped guard (``POST /guard/reset``)."""
        was_tripped = self.tripped
        await self._write_audit(
            {"event": "reset", **timestamp(), "was_tripped": was_tripped, "by": by}
        )
        self.tripped = False
        self.tripped_at = None
        self.consecutive_violations = 0
        self._tripped_gauge.set(0)
        log.warning("ActionGuard reset (was tripped: %s)", was_tripped)
        return {"reset": True, "was_tripped": was_tripped, **self.status()}

    def status(self) -> dict[str, Any]:
        """``GET /guard/status``."""
        return {
            "state": "tripped" if self.tripped else "armed",
            "mode": self.mode,
            "tripped_at": self.tripped_at,
            "trip_after": self.config.guard_trip_after,
            "consecutive_violations": self.consecutive_violations,
            "counters": {v: self.counts[v] for v in VERDICTS},
            "last_violations": list(self.last_violations),
            "limits": {
                "source": self.limits.source,
                "frequency_hz": self.limits.frequency_hz,
                "action_kind": self.limits.kind,
                "joints": self.limits.describe(),
                "end_effector": self.limits.describe_ee(),
            },
            "audit_log": str(self.audit.writer.path) if self.audit is not None else None,
        }

    def health(self) -> dict[str, Any]:
        return {
            "state": "tripped" if self.tripped else "armed",
            "mode": self.mode,
            "degraded": self.tripped,
            "consecutive_violations": self.consecutive_violations,
        }

    async def aclose(self) -> None:
        if self.audit is not None:
            await self.audit.aclose()
        if self.audit_lock is not None:
            os.close(self.audit_lock)
            self.audit_lock = None

    def routes(self) -> list[Any]:
        from starlette.requests import Request
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        async def status_endpoint(request: Request) -> JSONResponse:
            return JSONResponse(self.status())

        async def reset_endpoint(request: Request) -> JSONResponse:
            client = request.client.host if request.client is not None else None
            return JSONResponse(await self.reset(by=client))

        return [
            Route("/guard/status", status_endpoint, methods=["GET"], name="guard-status"),
            Route("/guard/reset", reset_endpoint, methods=["POST"], name="guard-reset"),
        ]


def _unclampable(violation: Violation) -> bool:
    """A violation no clamp can fix: the chunk is rejected in both modes."""
    if violation.kind in ("non-finite", "shape"):
        return True
    return violation.kind == "ee-velocity" and violation.worst is None


def _check_policies(limits: JointLimits, policies: dict[str, Any]) -> int | None:
    """Refuse to start when a policy's action width differs from the limits; return a chunk
    size for hold chunks."""
    chunk_size = None
    for slot, policy in sorted(policies.items()):
        action_dim = getattr(policy, "action_dim", None)
        if action_dim is not None and int(action_dim) != limits.dim:
            raise ConfigError(
                f"guard: policy {slot!r} outputs {action_dim} action dims but the limits "
                f"({limits.source}) cover {limits.dim} joints: {', '.join(limits.names)}",
                slug="guard-action-dim-mismatch",
            )
        chunk_size = chunk_size or getattr(policy, "chunk_size", None)
    return chunk_size


def make_guard(config: GuardConfig, next: Handler, ctx: WedgeContext) -> ActionGuard:
    """The wedge factory: validate the setup, open the audit log, register routes/health."""
    limits = build_limits(config, ctx.embodiment)
    chunk_size = _check_policies(limits, ctx.policies)
    if chunk_size is None and ctx.embodiment is not None:
        chunk_size = int(ctx.embodiment.control.chunk_size)
    audit, lock, audit_path = None, None, None
    if config.guard_no_audit_log:
        if config.guard_audit_log is not None:
            raise ConfigError(
                "--guard-audit-log and --guard-no-audit-log contradict each other",
                slug="guard-audit-conflict",
            )
        log.warning("ActionGuard audit log switched off (--guard-no-audit-log)")
    else:
        audit_path = Path(config.guard_audit_log or default_audit_log()).expanduser()
        lock = lock_audit_log(audit_path)
        try:
            writer = JsonlWriter(audit_path, max_bytes=config.guard_audit_max_bytes)
        except OSError as exc:
            if lock is not None:
                os.close(lock)
            raise ConfigError(
                f"cannot open the guard audit log {audit_path}: {exc}",
                slug="guard-audit-unwritable",
            ) from exc
        audit = AsyncJsonlWriter(writer)
    guard = ActionGuard(
        config, next, limits, audit=audit, metrics=ctx.metrics, chunk_size=chunk_size
    )
    guard.audit_lock = lock
    ctx.routes.extend(guard.routes())
    ctx.health["guard"] = guard.health
    ctx.on_shutdown.append(guard.aclose)
    log.info(
        "ActionGuard %s (%s actions): %d joints from %s, end effector %s, audit log %s",
        guard.mode,
        limits.kind,
        limits.dim,
        limits.source,
        "unlimited" if limits.max_ee_velocity is None else f"<= {limits.max_ee_velocity:g} m/s",
        audit_path or "off",
    )
    return guard
