"""The cost-weighted batching scheduler: many concurrent requests, one batched policy call.

Each policy has its own lane (requests for different policies never share a call). A lane's
queue is flushed into one call of the inner ``BatchHandler`` when the first of these holds:

* ``size``: ``max_batch`` requests are waiting;
* ``cost``: the learned cost of the waiting batch reaches ``max_batch_cost_ms`` (one more
  request would exceed the budget);
* ``timeout``: the oldest waiting request has waited ``batch_timeout_ms`` since it could first
  have run (its arrival, or, when every batch slot was busy then, the moment one freed up: so
  requests that queued behind a running batch still wait briefly for the callers of that batch
  to come back, instead of splitting closed-loop clients into two half-size cohorts);
* ``expected``: every caller the lane expects is queued. When a batch finishes, the lane
  expects the callers it just answered plus those still queued or in flight to come back (a
  robot sends its next observation when its chunk arrives), so it stops waiting as soon as
  they have: a single client never pays the timeout, eight clients flush at eight. The
  estimate corrects itself each batch (a client that left costs one timeout);
* ``deadline``: waiting any longer would make a queued request miss its deadline, given the
  estimated cost of the batch.

and a slot is free (``batch_concurrency`` batches per lane in flight at most). While the slot
is busy, requests keep queueing, so under load batches fill up on their own.

Callers are independent of the batch they ride in: the batch runs in a task of its own, a
caller that goes away (cancelled, timed out by an outer wedge) is dropped from the queue or its
result discarded, and a failure of the call reaches every caller still waiting on it.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
import time
from collections.abc import Callable, Sequence

import attrs

from reflex_batching.config import BatchingConfig
from reflex_batching.cost_model import BatchCostModel
from reflex_batching.metrics import BatchingMetrics, LaneMetrics
from reflex_core.errors import Unavailable
from reflex_core.plugin import ActRequest, ActResult, BatchHandler

log = logging.getLogger(__name__)


@attrs.define(eq=False)
class _Pending:
    request: ActRequest
    future: asyncio.Future[ActResult]
    enqueued_ns: int


@attrs.define(eq=False)
class _Lane:
    """One policy's queue, its learned costs and its in-flight count."""

    policy: str
    cost: BatchCostModel
    queue: collections.deque[_Pending] = attrs.field(factory=collections.deque)
    inflight: int = 0
    timer: asyncio.TimerHandle | None = None
    free_since_ns: int = 0  # when a batch slot last became free
    inflight_rows: int = 0  # requests in running batches
    expected: int | None = None  # callers likely to be queued soon (see _run)
    timer_due_ns: int = 0  # when the armed timer fires (clock of the scheduler)
    metrics: LaneMetrics | None = None


class BatchScheduler:
    """Queues requests per policy and runs them as batches through ``next_batch``.

    :param config: the wedge's options (``max_batch`` must be set).
    :param next_batch: the batch-level handler inside this wedge (A2C2 head, then the policy).
    :param metrics: collectors to update; None keeps no metrics.
    :param clock: monotonic nanoseconds (tests inject a fake one only for cost bookkeeping;
        waiting always uses the event loop's own timer).
    """

    def __init__(
        self,
        config: BatchingConfig,
        next_batch: BatchHandler,
        metrics: BatchingMetrics | None = None,
        clock: Callable[[], int] = time.monotonic_ns,
    ) -> None:
        if config.max_batch is None:
            raise ValueError("BatchScheduler needs config.max_batch")
        self.config = config
        self.max_batch: int = config.max_batch
        self._next = next_batch
        self._metrics = metrics
        self._clock = clock
        self._lanes: dict[str, _Lane] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._closed = False

    # -- request side ---------------------------------------------------------------------

    async def submit(self, request: ActRequest) -> ActResult:
        """Queue one request and wait for its share of a batched call."""
        if self._closed:
            raise Unavailable("the server is shutting down", slug="shutting-down")
        lane = self._lane(request.policy)
        if len(lane.queue) >= self.config.max_queue:
            if lane.metrics is not None:
                lane.metrics.rejected.inc()
            raise Unavailable(
                f"batching queue for policy {lane.policy!r} is full "
                f"({self.config.max_queue} waiting); retry shortly",
                slug="queue-full",
                retry_after_s=self._drain_estimate_s(lane),
                details={"policy": lane.policy, "max_queue": self.config.max_queue},
            )
        future: asyncio.Future[ActResult] = asyncio.get_running_loop().create_future()
        pending = _Pending(request, future, self._clock())
        lane.queue.append(pending)
        self._set_depth(lane)
        self._schedule(lane)
        try:
            return await future
        except asyncio.CancelledError:
            # The caller went away. If its request has not been dispatched yet, take it out so
            # it neither runs nor counts against the queue bound; a running batch goes on.
            try:
                lane.queue.remove(pending)
            except ValueError:
                pass
            else:
                self._set_depth(lane)
                self._schedule(lane)
            raise

    def queue_depth(self, policy: str) -> int:
        lane = self._lanes.get(policy)
        return len(lane.queue) if lane is not None else 0

    def queue_depths(self) -> dict[str, int]:
        return {name: len(lane.queue) for name, lane in sorted(self._lanes.items())}

    def cost_model(self, policy: str) -> BatchCostModel:
        return self._lane(policy).cost

    # -- flushing -------------------------------------------------------------------------

    def _lane(self, policy: str) -> _Lane:
        lane = self._lanes.get(policy)
        if lane is None:
            lane = _Lane(policy, BatchCostModel(self.config.cost_ewma_alpha))
            if self._metrics is not None:
                lane.metrics = self._metrics.for_policy(policy)
            self._lanes[policy] = lane
        return lane

    def _size_limit(self, lane: _Lane) -> tuple[int, str]:
        """How many requests the next batch may take, and which bound sets that."""
        budget = self.config.max_batch_cost_ms
        if budget is None:
            return self.max_batch, "size"
        limit = lane.cost.largest_within(budget, self.max_batch)
        return limit, ("size" if limit >= self.max_batch else "cost")

    def _schedule(self, lane: _Lane) -> None:
        """Dispatch what is due; otherwise make sure a timer fires when it will be."""
        while lane.queue and lane.inflight < self.config.batch_concurrency:
            reason, due_ns = self._flush_decision(lane)
            if reason is None:
                # Most arrivals leave the due time where it was (it follows the oldest
                # request): keep that timer rather than cancel and re-arm one per request.
                if lane.timer is None or lane.timer_due_ns != due_ns:
                    self._cancel_timer(lane)
                    wait_s = max(0.0, (due_ns - self._clock()) / 1e9)
                    lane.timer = asyncio.get_running_loop().call_later(wait_s, self._on_timer, lane)
                    lane.timer_due_ns = due_ns
                return
            self._dispatch(lane, reason)
        self._cancel_timer(lane)

    @staticmethod
    def _cancel_timer(lane: _Lane) -> None:
        if lane.timer is not None:
            lane.timer.cancel()
            lane.timer = None

    def _on_timer(self, lane: _Lane) -> None:
        lane.timer = None
        self._schedule(lane)

    def _flush_decision(self, lane: _Lane) -> tuple[str | None, int]:
        """``(reason, 0)`` when the lane should flush now, else ``(None, when it is due)`` (in
        the scheduler's clock)."""
        limit, bound = self._size_limit(lane)
        n = len(lane.queue)
        if n >= limit:
            return bound, 0
        if lane.expected is not None and n >= min(lane.expected, limit):
            return "expected", 0
        now = self._clock()
        runnable_since = max(lane.queue[0].enqueued_ns, lane.free_since_ns)
        due_ns = runnable_since + int(self.config.batch_timeout_ms * 1e6)
        if due_ns <= now:
            return "timeout", 0
        # A queued request with a deadline must be dispatched early enough for the batch to
        # finish in time: by its deadline minus what the batch is expected to cost.
        deadlines = [p.request.deadline_ns for p in lane.queue if p.request.deadline_ns]
        if deadlines:
            est_ms = lane.cost.estimate(n) or 0.0
            latest_start = min(deadlines) - int(est_ms * 1e6)
            if latest_start <= now:
                return "deadline", 0
            due_ns = min(due_ns, latest_start)
        # The timer re-runs this decision, so the reason is settled when it fires.
        return None, due_ns

    def _dispatch(self, lane: _Lane, reason: str) -> None:
        limit, _ = self._size_limit(lane)
        batch: list[_Pending] = []
        while lane.queue and len(batch) < limit:
            pending = lane.queue.popleft()
            if not pending.future.done():
                batch.append(pending)
        self._set_depth(lane)
        if not batch:
            return
        lane.inflight += 1
        lane.inflight_rows += len(batch)
        if lane.metrics is not None:
            lane.metrics.flushed(reason)
            lane.metrics.batch_size.observe(len(batch))
        task = asyncio.get_running_loop().create_task(
            self._run(lane, batch, reason), name=f"reflex-batch-{lane.policy}"
        )
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _run(self, lane: _Lane, batch: Sequence[_Pending], reason: str) -> None:
        start = self._clock()
        try:
            results = await self._next([p.request for p in batch])
            if len(results) != len(batch):
                raise RuntimeError(
                    f"batch handler returned {len(results)} results for {len(batch)} requests"
                )
        except Exception as exc:  # every caller of this batch gets the failure
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(exc)
            return
        except BaseException:  # the batch task itself was cancelled (shutdown)
            for pending in batch:
                if not pending.future.done():
                    pending.future.set_exception(
                        Unavailable("the batch was cancelled", slug="shutting-down")
                    )
            raise
        finally:
            # Who will be queued soon: the callers just answered, the ones still in flight
            # and the ones already waiting.
            lane.expected = lane.inflight_rows + len(lane.queue)
            lane.inflight -= 1
            lane.inflight_rows -= len(batch)
            lane.free_since_ns = self._clock()
            if not self._closed:
                self._schedule(lane)
        elapsed_ns = self._clock() - start
        lane.cost.observe(len(batch), elapsed_ns / 1e6)
        metrics = lane.metrics
        if metrics is not None:
            metrics.batch_seconds.observe(elapsed_ns / 1e9)
        for pending, result in zip(batch, results, strict=True):
            if pending.future.done():  # its caller is gone; the others still get theirs
                continue
            waited_ns = start - pending.enqueued_ns
            if metrics is not None:
                metrics.queue_wait.observe(waited_ns / 1e9)
            note = {
                "size": len(batch),
                "flush_reason": reason,
                "queue_ms": round(waited_ns / 1e6, 3),
                "batch_ms": round(elapsed_ns / 1e6, 3),
            }
            pending.future.set_result(
                attrs.evolve(result, metadata={**result.metadata, "batch": note})
            )

    # -- housekeeping ---------------------------------------------------------------------

    def _set_depth(self, lane: _Lane) -> None:
        if lane.metrics is not None:
            lane.metrics.queue_depth.set(len(lane.queue))

    def _drain_estimate_s(self, lane: _Lane) -> float:
        """Roughly how long until the queue has room: the batches ahead times their cost."""
        batches = math.ceil(len(lane.queue) / self.max_batch) / self.config.batch_concurrency
        per_batch_ms = lane.cost.estimate(self.max_batch) or self.config.batch_timeout_ms
        return round(max(0.001, batches * per_batch_ms / 1000.0), 3)

    async def close(self) -> None:
        """Refuse new work, fail what is still queued, and let running batches finish."""
        self._closed = True
        for lane in self._lanes.values():
            if lane.timer is not None:
                lane.timer.cancel()
                lane.timer = None
            while lane.queue:
                pending = lane.queue.popleft()
                if not pending.future.done():
                    pending.future.set_exception(
                        Unavailable("the server is shutting down", slug="shutting-down")
                    )
            self._set_depth(lane)
        if self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)
