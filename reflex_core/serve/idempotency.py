"""Idempotency window: a retry with the same ``request_id`` gets the same chunk, not a second
inference.

A robot client that times out and retries must not make the arm act on two different chunks for
one observation. The first request runs as its own task; every request with the same key within
the window awaits that task (also while it is still in flight), so a retry that arrives before
the first answer shares it. A failure is not remembered: the next retry runs again.

Memory is bounded: at most ``max_entries`` keys; expired entries go first, then the oldest
finished ones. When every slot holds a request still in flight, new keys run uncached.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_MAX_ENTRIES = 4096


class IdempotencyWindow(Generic[T]):
    """Deduplicates concurrent and recent calls by key."""

    def __init__(
        self,
        window_s: float,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self._clock = clock
        # key -> (created monotonic s, task); insertion order == age order
        self._entries: OrderedDict[str, tuple[float, asyncio.Task[T]]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.window_s > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    async def run(self, key: str, call: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """Run ``call()`` once per key within the window.

        :return: the result and whether it was a replay of an earlier call.
        """
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None:
            created, task = entry
            failed = task.done() and (task.cancelled() or task.exception() is not None)
            if now - created <= self.window_s and not failed:
                # shield: a retry whose client goes away must not cancel the shared run
                return await asyncio.shield(task), True
            del self._entries[key]
        task = asyncio.ensure_future(call())
        if self._make_room(now):
            self._entries[key] = (now, task)
            task.add_done_callback(lambda t, k=key: self._forget_failure(k, t))
        return await asyncio.shield(task), False

    def _forget_failure(self, key: str, task: asyncio.Task[T]) -> None:
        if task.cancelled() or task.exception() is not None:
            entry = self._entries.get(key)
            if entry is not None and entry[1] is task:
                del self._entries[key]

    def _make_room(self, now: float) -> bool:
        while self._entries:
            _key, (created, _task) = next(iter(self._entries.items()))
            if now - created <= self.window_s:
                break
            self._entries.popitem(last=False)
        if len(self._entries) < self.max_entries:
            return True
        for key, (_created, task) in self._entries.items():
            if task.done():
                del self._entries[key]
                return True
        return False
