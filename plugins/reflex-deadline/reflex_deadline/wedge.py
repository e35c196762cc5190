"""The deadline wedge: the caller gets an answer by the deadline whatever the policy does.

The policy call runs as its own task. The caller waits for it only until the deadline (the
configured ``--deadline-ms``, capped by the observation's ``max_gpu_seconds``, counted from when
the server received the request); then it gets a fallback chunk. The late inference is NOT
cancelled (an ORT call cannot be interrupted safely mid-run, and its result is still useful):
it finishes in the background and its chunk becomes the episode's last good chunk, which the
``tail`` strategy serves next time.

Fallback strategies, each per the embodiment's action kind (``action_space.kind``, see
:mod:`reflex_core.plugin.kit.chunks`; joint positions without an embodiment):

* ``hold``: keep still for every step: the robot's current position
  (``observation.state[:action_dim]``) for joint positions, zero motion for deltas and
  velocities (the gripper kept where it is). An ``ee_pose`` hold has no pose to hold (the
  state is not declared to carry one): refused at start-up (``deadline-fallback-unsafe``);
* ``tail``: the unexecuted rest of the episode's last good chunk, shifted by the control steps
  elapsed since it was produced and padded with "keep still" (its last target for positions
  and poses, zero motion for deltas and velocities); hold without one;
* ``decay``: that rest, followed while slowing linearly to rest by the chunk's end; hold
  without one;
* ``remote``: the same observation POSTed to another ``reflex serve``; the call starts
  ``--fallback-timeout-ms`` before the deadline if the policy has not answered by then (or at
  once when the policy fails), and its answer is used as soon as it arrives; hold on failure.

Whatever the strategy, the last resort is the hold: for an ``ee_pose`` embodiment that is the
episode's last commanded pose, and without one the request fails with 504
``deadline-no-fallback`` rather than send a made-up pose.

A policy failure (an exception, or a 5xx ReflexError) also falls back, with the reason
``policy-error``; a client error (4xx) propagates unchanged. The result's ``metadata.fallback``
says what happened; the SLO wedge further out counts fallbacks as timeouts/errors, and the
guard further out still checks every fallback chunk.

Overload: a request the server cannot take now (the background cap is reached: reason
``backlog``; the inference threads or a batcher inside refused it with a 503, e.g. the
terminal's ``overloaded`` when it could not finish by its deadline: reason ``overloaded``)
gets its fallback AT the deadline, not before, with ``retry_after_s``: when to come back. An
instant hold only brings a closed-loop client straight back, and answering those returns is
what an overloaded server spends itself on instead of real chunks. ``retry_after_s`` hands
refused callers turns spaced at the pace inner calls complete
(:class:`~reflex_core.plugin.kit.overload.TurnPacer`), so callers that wait as told come back
about as fast as there is room; while refusals are recent every answer gets one (see
:meth:`DeadlineWedge._book_turn`). Fallbacks and failures are logged once per kind per 10 s, the
rest counted into one line (:class:`~reflex_core.plugin.kit.overload.LogTally`), never once
per request.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from typing import Any

import attrs
import numpy as np

from reflex_core.errors import ConfigError, DeadlineExceeded, ReflexError, Unavailable
from reflex_core.plugin import ActRequest, ActResult, Handler, WedgeContext
from reflex_core.plugin.kit.chunks import (
    EE_POSE,
    JOINT_POSITION,
    LastChunkMemory,
    decay_chunk,
    hold_chunk,
    repeat_action,
)
from reflex_core.plugin.kit.collectors import Collectors
from reflex_core.plugin.kit.overload import LogTally, TurnPacer
from reflex_deadline.config import STRATEGIES, DeadlineConfig
from reflex_deadline.remote import RemoteFallback, RemoteOutcome

log = logging.getLogger(__name__)

REASON_DEADLINE = "deadline"
REASON_ERROR = "policy-error"
REASON_BACKLOG = "backlog"
REASON_OVERLOADED = "overloaded"
_PACE_WEIGHT = 0.2  # of the newest interval in the moving average of the completion pace
#: Turns are handed out this much closer together than calls complete now. At the completion
#: pace itself, admissions can only match completions: the pace falls whenever the callers are
#: slow to come back and can never climb again, so the server settles far below what its threads
#: can do (measured: 8 clients locked at ~100 chunks/s with the threads 60 % idle). A little
#: faster lets the pace climb back to the threads' own; what is too much is refused again.
_TURN_PROBE = 0.8


def _is_client_error(exc: BaseException) -> bool:
    return isinstance(exc, ReflexError) and exc.status < 500


class DeadlineWedge:
    """The wedge's state and handler.

    :param action_dim: width of a hold chunk. :param chunk_size: its length.
    :param frequency_hz: control rate for the tail's time shift (None: tail unavailable).
    """

    def __init__(
        self,
        config: DeadlineConfig,
        next: Handler,
        *,
        action_dim: int,
        chunk_size: int,
        frequency_hz: float | None,
        metrics: Any = None,
        memory_episodes: int = 1024,
        action_kind: str = JOINT_POSITION,
        gripper_idx: int | None = None,
    ) -> None:
        assert config.deadline_ms is not None
        self.config = config
        self.next = next
        self.strategy = config.deadline_fallback
        self.deadline_s = config.deadline_ms / 1e3
        self.action_dim = action_dim
        self.chunk_size = chunk_size
        self.frequency_hz = frequency_hz
        self.action_kind = action_kind
        self.gripper_idx = gripper_idx
        self.memory = LastChunkMemory(memory_episodes)  # last good chunk per episode
        self.remote: RemoteFallback | None = None
        self.remote_budget_s = 0.0
        if self.strategy == "remote":
            assert config.fallback_url is not None
            token = config.fallback_token or os.environ.get("REFLEX_FALLBACK_TOKEN")
            self.remote = RemoteFallback(config.fallback_url, token=token, action_dim=action_dim)
            budget_ms = config.fallback_timeout_ms or config.deadline_ms / 2
            self.remote_budget_s = min(budget_ms, config.deadline_ms) / 1e3
        self._background: set[asyncio.Task[ActResult]] = set()  # late inferences still running
        self.counts: dict[str, int] = {
            "on_time": 0,
            "fallback": 0,
            "late": 0,
            "late_completed": 0,
            "late_dropped": 0,
            REASON_BACKLOG: 0,
            REASON_OVERLOADED: 0,
        }
        # The pace inner calls complete at (a moving average of the time between completions,
        # on time or late): under overload, the time one more call needs. It spaces the turns
        # handed to refused callers.
        self.clock = time.monotonic
        self.pace_s: float | None = None
        self._last_completion_s: float | None = None
        self.pacer = TurnPacer()
        self._refusing_until_s = float("-inf")  # answers get turns until then
        self.log_tally = LogTally(log, "deadline fallbacks and late failures")

        collectors = Collectors(metrics)
        self._fallbacks = collectors.counter(
            "reflex_deadline_fallbacks_total",
            "Requests answered with a fallback chunk, by the strategy that produced it",
            ["strategy"],
            zeros=STRATEGIES,
        )
        self._late = collectors.counter(
            "reflex_deadline_late_total",
            "Inferences that missed their deadline (they finish in the background)",
        )
        self._background_gauge = collectors.gauge(
            "reflex_deadline_background_inferences",
            "Late inferences still running in the background",
        )
        self._remote_failures = collectors.counter(
            "reflex_deadline_remote_failures_total",
            "Remote fallback calls that failed (then the request held position)",
        )

    # -- request path ---------------------------------------------------------------------

    def deadline_for(self, request: ActRequest) -> tuple[int, float]:
        """(monotonic deadline in ns, budget in seconds) for one request."""
        budget = self.deadline_s
        cap = request.observation.max_gpu_seconds
        if cap is not None and cap >= 0:
            budget = min(budget, float(cap))
        deadline_ns = request.received_ns + int(budget * 1e9)
        if request.deadline_ns is not None:
            deadline_ns = min(deadline_ns, request.deadline_ns)
        return deadline_ns, budget

    async def __call__(self, request: ActRequest) -> ActResult:
        deadline_ns, budget_s = self.deadline_for(request)
        if len(self._background) >= self.config.deadline_max_late:
            # The policy is already behind on this many requests: do not pile on more work.
            return await self._overloaded(request, deadline_ns, budget_s, REASON_BACKLOG, None)
        inner = attrs.evolve(request, deadline_ns=deadline_ns)  # batching plans with it
        task = asyncio.ensure_future(self._infer(inner))
        remote: asyncio.Future[RemoteOutcome] | None = None
        remote_failure: str | None = None
        hedge_ns = deadline_ns - int(self.remote_budget_s * 1e9) if self.remote else None
        try:
            while True:
                # Results first: an answer that is in by the deadline check is on time.
                if task.done():
                    error = task.exception()
                    if error is None:
                        self.counts["on_time"] += 1
                        result = self._annotate(task.result(), None, budget_s)
                        self._book_turn(result, budget_s, refused=False)
                        return result
                    if _is_client_error(error):
                        raise error
                    if isinstance(error, Unavailable):  # refused inside: it cannot take it now
                        return await self._overloaded(
                            request, deadline_ns, budget_s, REASON_OVERLOADED, remote, error
                        )
                    self.log_tally.note(
                        REASON_ERROR, "policy failed (%s); falling back", _describe(error)
                    )
                    return await self._fall_back(
                        request, deadline_ns, budget_s, REASON_ERROR, remote, error=error
                    )
                if remote is not None and remote.done() and remote_failure is None:
                    outcome = remote.result()
                    if outcome.actions is not None:
                        self._go_background(task)
                        return self._remote_result(outcome, budget_s, REASON_DEADLINE)
                    remote_failure = outcome.error or "remote failed"
                    self._remote_failures.inc()
                now = time.monotonic_ns()
                if now >= deadline_ns:
                    break
                if remote is None and hedge_ns is not None and now >= hedge_ns:
                    remote = asyncio.ensure_future(self._fetch_remote(request, deadline_ns))
                wake_ns = deadline_ns
                if remote is None and hedge_ns is not None:
                    wake_ns = min(wake_ns, hedge_ns)
                waiting: set[asyncio.Future[Any]] = {task}
                if remote is not None and remote_failure is None:
                    waiting.add(remote)
                await asyncio.wait(
                    waiting,
                    timeout=max(0.0, (wake_ns - now) / 1e9),
                    return_when=asyncio.FIRST_COMPLETED,
                )
        except asyncio.CancelledError:
            # The caller went away: the inference still finishes and feeds the tail.
            self._go_background(task)
            if remote is not None:
                remote.cancel()
            raise
        self._late.inc()
        self.counts["late"] += 1
        self._go_background(task)
        return await self._fall_back(
            request, deadline_ns, budget_s, REASON_DEADLINE, remote, remote_failure=remote_failure
        )

    async def _infer(self, request: ActRequest) -> ActResult:
        result = await self.next(request)
        self._completed()
        actions = np.asarray(result.actions)
        good = (
            actions.ndim == 2
            and actions.shape[1] == self.action_dim
            and bool(np.isfinite(actions).all())
        )
        if good and request.episode_id is not None:
            self.memory.put(request.episode_id, actions, time.monotonic_ns())
        return result

    def _go_background(self, task: asyncio.Task[ActResult]) -> None:
        if task.done():
            return
        if len(self._background) >= self.config.deadline_max_late:
            # The cap holds: this late call is dropped, not kept. A call still queued for a
            # thread never runs; one already running finishes, unread (a thread cannot be
            # interrupted), and the server counts it until it has.
            task.cancel()
            self.counts["late_dropped"] += 1
            return
        self._background.add(task)
        self._background_gauge.set(len(self._background))

        def finished(t: asyncio.Task[ActResult]) -> None:
            self._background.discard(t)
            self._background_gauge.set(len(self._background))
            if t.cancelled():
                return
            error = t.exception()  # retrieve it: nobody awaits a late task
            if error is not None:
                if not isinstance(error, Unavailable):  # a refusal computed nothing: not news
                    self.log_tally.note(
                        "late-failed", "late inference failed: %s", _describe(error)
                    )
            else:
                self.counts["late_completed"] += 1

        task.add_done_callback(finished)

    def _completed(self) -> None:
        """An inner call returned a result: update the completion pace."""
        now = self.clock()
        last, self._last_completion_s = self._last_completion_s, now
        if last is None:
            return
        # Bounded by the deadline: a long quiet spell says nothing about the pace under load.
        interval = min(now - last, self.deadline_s)
        pace = self.pace_s
        self.pace_s = interval if pace is None else pace + _PACE_WEIGHT * (interval - pace)

    async def _overloaded(
        self,
        request: ActRequest,
        deadline_ns: int,
        budget_s: float,
        reason: str,
        remote: asyncio.Future[RemoteOutcome] | None,
        error: BaseException | None = None,
    ) -> ActResult:
        """The fallback of a request the server cannot take now: sent at the deadline, not
        before (a remote fallback is a real chunk: it is used when it arrives), with the turn
        at which to come back."""
        self.counts[reason] += 1
        self.log_tally.note(
            reason,
            "overload: request %s falls back (%s)%s",
            request.request_id,
            reason,
            f": {_describe(error)}" if error is not None else "",
        )
        if self.strategy != "remote":
            await self._wait_until(deadline_ns)
        result = await self._fall_back(request, deadline_ns, budget_s, reason, remote, error=error)
        self._book_turn(result, budget_s, refused=True)
        return result

    def _book_turn(self, result: ActResult, budget_s: float, *, refused: bool) -> None:
        """A refused caller gets a turn (``retry_after_s`` in the fallback note); so does every
        caller answered while refusals are recent (within the longest turn): if those that got
        a real chunk came straight back they would take every free thread, and the refused
        ones would keep coming back to be refused, an answer each time for no chunk. Turns for
        all keep the callers together at about the pace the policy can serve them."""
        now = self.clock()
        if refused:
            self._refusing_until_s = now + self.pacer.max_wait_s
        elif now >= self._refusing_until_s:
            return
        pace = self.pace_s if self.pace_s is not None else budget_s
        turn = self.pacer.wait_s(now, pace * _TURN_PROBE)
        result.metadata["fallback"]["retry_after_s"] = round(turn, 4)

    async def _wait_until(self, deadline_ns: int) -> None:
        wait_s = (deadline_ns - time.monotonic_ns()) / 1e9
        if wait_s > 0:
            await asyncio.sleep(wait_s)

    async def _fetch_remote(self, request: ActRequest, deadline_ns: int) -> RemoteOutcome:
        assert self.remote is not None
        remaining = (deadline_ns - time.monotonic_ns()) / 1e9
        return await self.remote.fetch(request, min(self.remote_budget_s, remaining))

    # -- fallbacks ------------------------------------------------------------------------

    async def _fall_back(
        self,
        request: ActRequest,
        deadline_ns: int,
        budget_s: float,
        reason: str,
        remote: asyncio.Future[RemoteOutcome] | None,
        *,
        error: BaseException | None = None,
        remote_failure: str | None = None,
    ) -> ActResult:
        detail = None if error is None else f"{type(error).__name__}: {error}"
        if self.strategy == "remote" and remote_failure is None:
            if remote is None and time.monotonic_ns() < deadline_ns:
                remote = asyncio.ensure_future(self._fetch_remote(request, deadline_ns))
            if remote is not None:
                remaining = max(0.0, (deadline_ns - time.monotonic_ns()) / 1e9)
                done, _ = await asyncio.wait({remote}, timeout=remaining)
                if remote in done:
                    outcome = remote.result()
                    if outcome.actions is not None:
                        return self._remote_result(outcome, budget_s, reason, detail)
                    remote_failure = outcome.error or "remote failed"
                    self._remote_failures.inc()
                else:
                    remote.cancel()
                    remote_failure = "remote did not answer by the deadline"
                    self._remote_failures.inc()
        if self.strategy == "remote" and remote_failure is None:
            remote_failure = "no time left for the remote call"
        if remote_failure is not None:
            detail = f"{detail}; {remote_failure}" if detail else remote_failure

        actions, strategy, why = None, "hold", None
        if self.strategy in ("tail", "decay"):
            actions, why = self._tail(request)
            if actions is not None and self.strategy == "decay":
                actions = decay_chunk(actions, kind=self.action_kind, gripper_idx=self.gripper_idx)
            strategy = self.strategy if actions is not None else "hold"
        if actions is None:
            actions = self._hold(request)
        if why:
            detail = f"{detail}; {why}" if detail else why
        return self._fallback_result(actions, strategy, reason, budget_s, detail)

    def _tail(self, request: ActRequest) -> tuple[np.ndarray | None, str | None]:
        if request.episode_id is None:
            return None, f"{self.strategy} needs an episode_id; held position"
        if self.frequency_hz is None:  # ruled out at startup; belt and braces
            return None, f"{self.strategy} needs the control rate; held position"
        tail = self.memory.tail(
            request.episode_id,
            self.frequency_hz,
            self.chunk_size,
            kind=self.action_kind,
            gripper_idx=self.gripper_idx,
        )
        if tail is None:
            return None, "no previous chunk for this episode; held position"
        return tail, None

    def _hold(self, request: ActRequest) -> np.ndarray:
        """Keep still, per the action kind (:func:`reflex_core.plugin.kit.chunks.hold_chunk`)."""
        stored = self.memory.get(request.episode_id) if request.episode_id is not None else None
        current = None
        if stored is not None:
            current = stored.current_action(
                time.monotonic_ns(),
                self.frequency_hz or 1.0,
                kind=self.action_kind,
                gripper_idx=self.gripper_idx,
            )
        try:
            return hold_chunk(
                request.observation.state,
                self.action_dim,
                self.chunk_size,
                kind=self.action_kind,
                gripper_idx=self.gripper_idx,
                current=current,
            )
        except ValueError as exc:
            if current is not None and self.action_kind == JOINT_POSITION:
                return repeat_action(current, self.chunk_size)
            raise DeadlineExceeded(
                f"the policy missed the deadline and there is no safe fallback: {exc}",
                slug="deadline-no-fallback",
            ) from exc

    # -- results --------------------------------------------------------------------------

    def _annotate(
        self, result: ActResult, fallback: dict[str, Any] | None, budget_s: float
    ) -> ActResult:
        note = fallback or {"used": False, "strategy": self.strategy, "reason": None}
        note["deadline_ms"] = round(budget_s * 1e3, 3)
        return ActResult(
            actions=result.actions,
            metadata={**result.metadata, "fallback": note},
            features=result.features,
        )

    def _fallback_result(
        self,
        actions: np.ndarray,
        strategy: str,
        reason: str,
        budget_s: float,
        detail: str | None,
        extra: dict[str, Any] | None = None,
    ) -> ActResult:
        self.counts["fallback"] += 1
        self._fallbacks.labels(strategy).inc()
        note: dict[str, Any] = {
            "used": True,
            "strategy": strategy,
            "configured": self.strategy,
            "reason": reason,
        }
        if detail:
            note["detail"] = detail
        note.update(extra or {})
        return self._annotate(
            # No "policy" key: no policy produced it (the server then reports the request's slot).
            ActResult(actions=np.asarray(actions, dtype=np.float32), metadata={}),
            note,
            budget_s,
        )

    def _remote_result(
        self, outcome: RemoteOutcome, budget_s: float, reason: str, detail: str | None = None
    ) -> ActResult:
        assert outcome.actions is not None and self.remote is not None
        extra = {"remote_url": self.remote.url, "remote_model": outcome.metadata.get("model")}
        return self._fallback_result(outcome.actions, "remote", reason, budget_s, detail, extra)

    # -- operations -----------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        backlog = len(self._background)
        return {
            "deadline_ms": self.config.deadline_ms,
            "strategy": self.strategy,
            "action_kind": self.action_kind,
            "fallback_url": self.remote.url if self.remote else None,
            "late_in_background": backlog,
            "counts": dict(self.counts),
            # at the cap every request falls back without reaching the policy
            "degraded": backlog >= self.config.deadline_max_late,
        }

    async def aclose(self) -> None:
        self.log_tally.flush()
        if self._background:
            await asyncio.wait(set(self._background), timeout=5.0)
        if self.remote is not None:
            await self.remote.aclose()


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _shape(ctx: WedgeContext) -> tuple[int | None, int | None]:
    action_dim = chunk_size = None
    if ctx.embodiment is not None:
        action_dim = int(ctx.embodiment.action_dim)
    for _slot, policy in sorted(ctx.policies.items()):
        action_dim = action_dim or getattr(policy, "action_dim", None)
        chunk_size = chunk_size or getattr(policy, "chunk_size", None)
    if chunk_size is None and ctx.embodiment is not None:
        chunk_size = int(ctx.embodiment.control.chunk_size)
    return action_dim, chunk_size


def make_deadline(config: DeadlineConfig, next: Handler, ctx: WedgeContext) -> DeadlineWedge:
    """The wedge factory: check the strategy's needs, register health and shutdown."""
    if config.deadline_fallback == "remote" and config.fallback_url is None:
        raise ConfigError(
            "--deadline-fallback remote needs --fallback-url URL",
            slug="deadline-needs-fallback-url",
        )
    if config.deadline_fallback != "remote" and config.fallback_url is not None:
        raise ConfigError(
            f"--fallback-url is only used with --deadline-fallback remote (got "
            f"{config.deadline_fallback})",
            slug="deadline-unused-fallback-url",
        )
    hz = config.deadline_control_hz
    if hz is None and ctx.embodiment is not None:
        hz = float(ctx.embodiment.control.frequency_hz)
    if config.deadline_fallback in ("tail", "decay") and hz is None:
        raise ConfigError(
            f"--deadline-fallback {config.deadline_fallback} needs the control rate: serve with "
            "--embodiment or pass --deadline-control-hz",
            slug="deadline-needs-control-rate",
        )
    kind = str(getattr(ctx.embodiment, "action_kind", JOINT_POSITION))
    gripper = getattr(ctx.embodiment, "gripper", None)
    gripper_idx = None if gripper is None else int(gripper.component_idx)
    if kind == EE_POSE and config.deadline_fallback == "hold":
        raise ConfigError(
            "--deadline-fallback hold has no safe meaning for end-effector pose actions "
            f"(embodiment {ctx.embodiment.name!r}, action_space.kind ee_pose): the state is not "
            "declared to carry a pose, so there is no position to hold before a chunk was "
            "sent; use tail, decay or remote (they hold the last commanded pose)",
            slug="deadline-fallback-unsafe",
        )
    action_dim, chunk_size = _shape(ctx)
    if action_dim is None or chunk_size is None:
        raise ConfigError(
            "the deadline wedge cannot size its fallback chunks: no embodiment and no policy "
            "with action_dim/chunk_size",
            slug="deadline-unknown-shape",
        )
    wedge = DeadlineWedge(
        config,
        next,
        action_dim=int(action_dim),
        chunk_size=int(chunk_size),
        frequency_hz=hz,
        metrics=ctx.metrics,
        action_kind=kind,
        gripper_idx=gripper_idx,
    )
    ctx.health["deadline"] = wedge.health
    ctx.on_shutdown.append(wedge.aclose)
    return wedge
