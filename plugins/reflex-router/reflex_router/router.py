"""The router wedge: picks slot A or B per request, drains a failing slot, mirrors in shadow mode.

It sets ``request.policy`` (via ``attrs.evolve``) to the policy key of the chosen slot; the
batching stage and the policy below key on it, so A and B never share a batched call.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import attrs
import numpy as np

from reflex_core.plugin import ActRequest, ActResult, Handler
from reflex_core.plugin.kit.observation_age import observation_age_ms
from reflex_router.assignment import Assignment, SplitAssigner
from reflex_router.config import RouterConfig
from reflex_router.health import SlotHealth, counts_against_slot
from reflex_router.metrics import RouterMetrics
from reflex_router.shadow import ShadowRecorder

log = logging.getLogger(__name__)

SLOTS = ("a", "b")
SLOT_HEADER = "X-Reflex-Policy-Slot"
VERSION_HEADER = "X-Reflex-Model-Version"


def _other(slot: str) -> str:
    return "b" if slot == "a" else "a"


class PolicyRouter:
    """Routes requests between two policy slots.

    :param keys: slot (``"a"``/``"b"``) -> the policy key requests are evolved to.
    :param versions: slot -> model version reported in metadata and headers.
    :param noise_shapes: slot -> ``(chunk_size, max_action_dim)`` of its noise input, when known;
        in shadow mode equal shapes let A and B share one noise draw, so their difference is the
        models', not the noise's.
    """

    def __init__(
        self,
        config: RouterConfig,
        next_handler: Handler,
        *,
        keys: dict[str, str],
        versions: dict[str, str | None],
        metrics: RouterMetrics,
        noise_shapes: dict[str, tuple[int, int] | None] | None = None,
        assigner: SplitAssigner | None = None,
    ) -> None:
        self.config = config
        self._next = next_handler
        self.keys = keys
        self.versions = versions
        self.metrics = metrics
        self.assigner = assigner or SplitAssigner(config.effective_split)
        self.health = {
            slot: SlotHealth(slot, config.router_trip_after, config.router_cooldown_s)
            for slot in SLOTS
        }
        for slot in SLOTS:
            metrics.slot_available.labels(slot).set(1)
        shapes = noise_shapes or {}
        same = shapes.get("a") is not None and shapes.get("a") == shapes.get("b")
        self._shared_noise_shape = shapes["a"] if same else None
        self.shadow = (
            ShadowRecorder(metrics, versions, config.shadow_log) if config.shadow else None
        )
        self._shadow_tasks: set[asyncio.Task[None]] = set()

    # -- routing --------------------------------------------------------------------------

    def choose(self, assignment: Assignment) -> tuple[str, str | None]:
        """``(slot to use, slot drained from or None)`` given the split and the slots' health.

        When both slots are tripped the assigned one is tried anyway: a request is a probe,
        and there is nothing healthier to send it to.
        """
        slot = assignment.slot
        available = {s: self.health[s].available() for s in SLOTS}
        for s, up in available.items():  # a cool-down ends by time, not by an event
            self.metrics.slot_available.labels(s).set(1 if up else 0)
        if not available[slot] and available[_other(slot)]:
            return _other(slot), slot
        return slot, None

    async def __call__(self, request: ActRequest) -> ActResult:
        assignment = self.assigner.assign(request.episode_id)
        if self.shadow is not None:
            return await self._shadowed(request, assignment)
        slot, drained_from = self.choose(assignment)
        if drained_from is not None:
            self.metrics.drained.labels(drained_from).inc()
        result = await self._call_slot(slot, attrs.evolve(request, policy=self.keys[slot]))
        self.metrics.requests.labels(slot, str(assignment.sticky).lower()).inc()
        return self._annotate(result, slot, assignment, drained_from=drained_from)

    async def _call_slot(self, slot: str, request: ActRequest) -> ActResult:
        health = self.health[slot]
        try:
            result = await self._next(request)
        except BaseException as exc:
            if counts_against_slot(exc):
                self.metrics.slot_errors.labels(slot).inc()
                if health.record_failure(exc):
                    log.warning(
                        "router: slot %s tripped after %d consecutive errors (last: %s); "
                        "draining its traffic to slot %s for %.1fs",
                        slot, health.consecutive_errors, health.last_error, _other(slot),
                        health.cooldown_s,
                    )  # fmt: skip
                    self.metrics.slot_available.labels(slot).set(0)
            raise
        health.record_success()
        self.metrics.slot_available.labels(slot).set(1)
        return result

    def _annotate(
        self,
        result: ActResult,
        slot: str,
        assignment: Assignment,
        *,
        drained_from: str | None = None,
        shadow: dict[str, Any] | None = None,
    ) -> ActResult:
        version = self.versions.get(slot)
        note: dict[str, Any] = {"slot": slot, "sticky": assignment.sticky}
        if drained_from is not None:
            note["drained_from"] = drained_from
        if shadow is not None:
            note["shadow"] = shadow
        headers = {**result.metadata.get("headers", {}), SLOT_HEADER: slot}
        if version is not None:
            headers[VERSION_HEADER] = version
        metadata = {
            **result.metadata,
            "policy_slot": slot,
            "model_version": version,
            "router": note,
            "headers": headers,
        }
        return attrs.evolve(result, metadata=metadata)

    # -- shadow mode ----------------------------------------------------------------------

    async def _shadowed(self, request: ActRequest, assignment: Assignment) -> ActResult:
        """Answer with A; mirror to B (a ``split`` percent of episodes/requests) concurrently."""
        assert self.shadow is not None
        mirror = assignment.slot == "b"
        shadow_note: dict[str, Any] = {"mirrored": False}
        if mirror and len(self._shadow_tasks) >= self.config.shadow_max_pending:
            self.metrics.shadow.labels("skipped").inc()
            shadow_note["skipped"] = "shadow-backlog"
            mirror = False
        noise = request.noise
        if mirror and noise is None and self._shared_noise_shape is not None:
            noise = np.random.default_rng().standard_normal(
                self._shared_noise_shape, dtype=np.float32
            )
        request_a = attrs.evolve(request, policy=self.keys["a"], noise=noise)
        a_done: asyncio.Future[tuple[ActResult | None, BaseException | None, float]] | None = None
        if mirror:
            loop = asyncio.get_running_loop()
            a_done = loop.create_future()
            request_b = attrs.evolve(
                request,
                policy=self.keys["b"],
                noise=noise,
                request_id=f"{request.request_id}:shadow",
                annotations={**request.annotations, "shadow_of": request.request_id},
            )
            task = loop.create_task(self._mirror(request, request_b, a_done))
            self._shadow_tasks.add(task)
            task.add_done_callback(self._shadow_tasks.discard)
            shadow_note = {"mirrored": True}
        result: ActResult | None = None
        error: BaseException | None = None
        try:
            result = await self._call_slot("a", request_a)
        except BaseException as exc:
            error = exc
            raise
        finally:
            if a_done is not None and not a_done.done():
                a_done.set_result((result, error, observation_age_ms(request)))
        self.metrics.requests.labels("a", str(assignment.sticky).lower()).inc()
        return self._annotate(result, "a", assignment, shadow=shadow_note)

    async def _mirror(
        self,
        request: ActRequest,
        request_b: ActRequest,
        a_done: asyncio.Future[tuple[ActResult | None, BaseException | None, float]],
    ) -> None:
        result_b: ActResult | None = None
        error_b: BaseException | None = None
        try:
            result_b = await self._call_slot("b", request_b)
        except Exception as exc:  # B's failure is recorded, never seen by the caller
            error_b = exc
        result_a, error_a, latency_ms = await a_done
        assert self.shadow is not None
        await self.shadow.record(request, result_a, error_a, result_b, error_b, latency_ms)

    async def close(self) -> None:
        """Let in-flight shadow comparisons finish and close the shadow log."""
        if self._shadow_tasks:
            await asyncio.gather(*list(self._shadow_tasks), return_exceptions=True)
        if self.shadow is not None:
            await self.shadow.aclose()

    def status(self) -> dict[str, Any]:
        slots = {
            slot: {
                "policy": self.keys[slot],
                "model_version": self.versions.get(slot),
                **self.health[slot].status(),
            }
            for slot in SLOTS
        }
        return {
            "mode": "shadow" if self.shadow is not None else "split",
            "split_percent": self.assigner.split,
            "slots": slots,
            "shadow_pending": len(self._shadow_tasks),
            "degraded": not all(s["available"] for s in slots.values()),
        }
