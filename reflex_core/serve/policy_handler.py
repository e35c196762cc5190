"""The terminal policy handler: the innermost ``BatchHandler`` of the wedge chain.

A batch is split by policy slot, each slot's rows go to ONE ``policy.infer`` call on an
inference thread, and a call that could only finish after its deadline never takes a thread
(:class:`InferenceLoad` keeps the pace). :class:`TerminalPolicyHandler` is the part of
:class:`~reflex_core.serve.app.ReflexServer` that does it.
"""

from __future__ import annotations

import asyncio
import collections
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from reflex_core.errors import ReflexError, Unavailable
from reflex_core.plugin.contracts import PolicyLike
from reflex_core.plugin.kit.overload import TurnPacer
from reflex_core.plugin.wedges import ActRequest, ActResult
from reflex_core.serve.errors import OVERLOADED, UNKNOWN_POLICY
from reflex_core.serve.executor import InferenceExecutor
from reflex_core.serve.metrics import ServeMetrics

RECENT_CALLS = 16  # the window the fastest recent call is taken from
PROBE_EVERY_S = 1.0  # a free thread takes a call at least this often, whatever the pace says
CHECKED_KEY = "reflex.checked"
"""``ActRequest.annotations`` key: the observation as ``policy.validate`` accepted it at the
boundary, for the terminal handler (the policy trusts it instead of checking again)."""


class TerminalPolicyHandler:
    """The server's policy calls (a part of ``ReflexServer``, which provides the attributes)."""

    policies: Mapping[str, PolicyLike]
    load: InferenceLoad
    metrics: ServeMetrics
    _model_meta: dict[str, dict[str, Any]]
    executor: InferenceExecutor
    _describe: Callable[[Any], dict[str, Any]]

    async def _run_batch(self, requests: Sequence[ActRequest]) -> list[ActResult]:
        """The terminal BatchHandler: one ``policy.infer`` per policy slot in the batch."""
        if len(requests) == 1:  # the unbatched chain: no grouping to do
            return await self._infer_slot(requests[0].policy, requests)
        if not requests:
            return []
        slots: dict[str, list[int]] = {}
        for i, request in enumerate(requests):
            slots.setdefault(request.policy, []).append(i)
        if len(slots) == 1:
            ((slot, _),) = slots.items()
            return await self._infer_slot(slot, requests)
        results: list[ActResult | None] = [None] * len(requests)
        groups = list(slots.items())
        outputs = await asyncio.gather(
            *(self._infer_slot(slot, [requests[i] for i in idx]) for slot, idx in groups)
        )
        for (_slot, idx), group_results in zip(groups, outputs, strict=True):
            for i, result in zip(idx, group_results, strict=True):
                results[i] = result
        return results  # type: ignore[return-value]

    async def _infer_slot(self, slot: str, requests: Sequence[ActRequest]) -> list[ActResult]:
        policy = self.policies.get(slot)
        if policy is None:
            raise ReflexError(
                f"no policy in slot {slot!r} (have {', '.join(sorted(self.policies))})",
                slug=UNKNOWN_POLICY,
                status=500,
            )
        observations = [checked_observation(r) for r in requests]
        # one row per request; the policy draws the rows without a seed from its own generator
        # (as it would for those requests one by one) and checks the shapes
        noise = None if all(r.noise is None for r in requests) else [r.noise for r in requests]
        deadlines = [r.deadline_ns for r in requests]
        deadline_ns = None if None in deadlines else max(deadlines)  # type: ignore[type-var]
        load = self.load
        if deadline_ns is not None and load.doomed(slot, deadline_ns):
            # Queued behind the calls already waiting, this one could only finish after its
            # deadline: it never takes a thread (a chunk nobody gets on time is how goodput
            # collapsed). Refused at once, with a turn to come back at; whoever set the
            # deadline decides when to answer (the deadline wedge sends its fallback at the
            # deadline, not before, so a closed-loop client cannot come straight back).
            load.shed += len(requests)
            raise load.refusal(slot)
        started = time.perf_counter()
        load.started()
        try:
            # A caller that stops waiting (the deadline wedge at its cap drops a late call)
            # does not free the thread: the call counts until the thread is done with it.
            output, own_s, cpu_s = await self.executor.run(
                run_policy, policy, observations, noise, deadline_ns, on_done=load.release
            )
        except Unavailable as exc:
            if exc.slug != OVERLOADED:
                raise
            load.stale += len(requests)
            raise load.refusal(slot) from None
        load.observe(slot, own_s, cpu_s)
        seconds = time.perf_counter() - started
        self.metrics.observe_inference(slot, len(requests), seconds)
        base = dict(output.timings)
        # the runtime's own total is the policy's; "total_ms" in a response is the server's
        if "total_ms" in base:
            base["policy_ms"] = base.pop("total_ms")
        base["inference_ms"] = round(seconds * 1e3, 3)
        base["batch_size"] = len(requests)
        model = self._model_meta.get(slot) or self._describe(policy)
        features = output.features
        return [
            ActResult(
                actions=output.actions[i],
                metadata={"policy": slot, "model": dict(model), "timings": dict(base)},
                features=None if features is None else features[i],
            )
            for i in range(len(requests))
        ]


class InferenceLoad:
    """What the inference threads have on their hands, to tell whether a new call could finish
    by its deadline: calls queued or running, and each slot's own time per call (an
    exponentially weighted mean of the last calls, waiting excluded)."""

    def __init__(self, threads: int) -> None:
        self.threads = threads
        self.outstanding = 0  # only the event loop's thread touches these
        self.service_s: dict[str, float] = {}
        # The thread's own CPU time per call, averaged the same way: far below service_s, the
        # thread spent the difference waiting for a CPU (other processes, or too many threads).
        self.cpu_s: dict[str, float] = {}
        self.shed = 0  # refused as unable to make their deadline
        self.stale = 0  # dropped by a thread: their deadline had passed when it got to them
        self.pacer = TurnPacer()
        # The fastest of each slot's last calls, and when a call last started: a free thread
        # refuses a call only if even the fastest could not make its deadline, and never for
        # longer than PROBE_EVERY_S (a pace that only ever refused work would never learn it
        # had become faster).
        self.recent_s: dict[str, collections.deque[float]] = {}
        self.last_start_ns = 0

    def doomed(self, slot: str, deadline_ns: int) -> bool:
        """Whether a call submitted now would finish after ``deadline_ns`` at the current pace:
        queued behind the calls outstanding at the mean pace; or, with a thread free, not even
        at the fastest recent pace (a request that waited on the event loop until little of its
        budget is left would only occupy the thread with a chunk nobody can use)."""
        service = self.service_s.get(slot)
        if service is None:
            return False
        now = time.monotonic_ns()
        if self.outstanding < self.threads:
            if now - self.last_start_ns > PROBE_EVERY_S * 1e9:
                return False
            fastest = min(self.recent_s.get(slot) or (0.0,))
            return now + int(fastest * 1e9) > deadline_ns
        rounds = self.outstanding // self.threads + 1
        return now + int(rounds * service * 1e9) > deadline_ns

    def started(self) -> None:
        """A call was handed to the threads."""
        self.outstanding += 1
        self.last_start_ns = time.monotonic_ns()

    def release(self) -> None:
        """A thread is done with a call (or skipped it)."""
        self.outstanding -= 1

    def refusal(self, slot: str) -> Unavailable:
        """The 503 ``overloaded`` for a call refused now: its ``retry_after_s`` is a turn, the
        refused callers spaced at the pace the threads complete calls (one call's time over
        the threads), so those that wait as told come back about as fast as there is room."""
        service = self.service_s.get(slot) or 0.0
        wait_s = self.pacer.wait_s(time.monotonic(), service / self.threads)
        return overloaded(wait_s)

    def observe(self, slot: str, seconds: float | None, cpu_s: float | None = None) -> None:
        if seconds is not None:
            self.recent_s.setdefault(slot, collections.deque(maxlen=RECENT_CALLS)).append(seconds)
        for averages, value in ((self.service_s, seconds), (self.cpu_s, cpu_s)):
            if value is None:
                continue
            old = averages.get(slot)
            averages[slot] = value if old is None else old + 0.2 * (value - old)


def overloaded(retry_after_s: float | None) -> Unavailable:
    return Unavailable(
        "the inference threads are too far behind for this request to finish by its deadline",
        slug=OVERLOADED,
        retry_after_s=None if retry_after_s is None else round(retry_after_s, 4),
    )


def run_policy(
    policy: Any, observations: list[Any], noise: Any, deadline_ns: int | None
) -> tuple[Any, float, float]:
    """On an inference thread: the policy call, its own duration and the thread's CPU time in
    it. A call whose deadline has passed before a thread got to it is not run (nobody can use
    its chunk on time)."""
    if deadline_ns is not None and time.monotonic_ns() >= deadline_ns:
        raise overloaded(None)
    started, cpu_started = time.perf_counter(), time.thread_time()
    output = policy.infer(observations, noise)
    return output, time.perf_counter() - started, time.thread_time() - cpu_started


def checked_observation(request: ActRequest) -> Any:
    """What the policy runs for ``request``: the form ``policy.validate`` returned at the
    boundary while it still describes this request's observation (a wedge may have swapped the
    observation), else the observation itself (which the policy then checks)."""
    checked = request.annotations.get(CHECKED_KEY)
    if checked is not None and checked.observation is request.observation:
        return checked
    return request.observation
