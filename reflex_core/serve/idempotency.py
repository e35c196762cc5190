"""Idempotency window: a retry with the same ``request_id`` gets the same chunk, not a second
inference.

A robot client that times out and retries must not make the arm act on two different chunks for
one observation. The first request runs as its own task; every request with the same key within
the window awaits that task (also while it is still in flight), so a retry that arrives before
the first answer shares it. A failure is not remembered: the next retry runs again.

A key names one observation: each entry keeps a fingerprint of what it answered
(:func:`observation_fingerprint`), and the same key arriving with a different observation is
refused (409 ``request-id-reused``) instead of being answered with another observation's chunk
(two robots sharing an id scheme, a client reusing a counter after a restart).

Memory is bounded: at most ``max_entries`` keys; expired entries go first, then the oldest
finished ones. When every slot holds a request still in flight, new keys run uncached.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

import numpy as np

from reflex_core.errors import Conflict

T = TypeVar("T")

DEFAULT_MAX_ENTRIES = 4096
REQUEST_ID_REUSED = "request-id-reused"


def observation_fingerprint(observation: Any, noise: np.ndarray | None = None) -> bytes:
    """What makes two observations "the same request": state, prompt, episode, capture time,
    cameras with their shapes, and the fixed noise if any.

    The pixels are hashed only when the observation has no ``capture_time_ns``: a capture time
    already names one capture (the SDK always sends one, and a retry keeps it), and hashing two
    224x224 frames costs ~0.2 ms that the common path should not pay.
    """
    digest = hashlib.sha256()
    state = np.ascontiguousarray(observation.state, dtype=np.float32)
    digest.update(state.tobytes())
    for text in (observation.prompt, observation.episode_id, observation.capture_time_ns):
        digest.update(b"\x00" + repr(text).encode())
    for name in sorted(observation.images):
        image = observation.images[name]
        digest.update(f"\x00{name}{image.shape}".encode())
        if observation.capture_time_ns is None:
            digest.update(np.ascontiguousarray(image).tobytes())
    if noise is not None:
        digest.update(b"\x00noise" + np.ascontiguousarray(noise, dtype=np.float32).tobytes())
    return digest.digest()


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
        # key -> (created monotonic s, fingerprint, task); insertion order == age order
        self._entries: OrderedDict[str, tuple[float, bytes | None, asyncio.Task[T]]] = OrderedDict()

    @property
    def enabled(self) -> bool:
        return self.window_s > 0 and self.max_entries > 0

    def __len__(self) -> int:
        return len(self._entries)

    async def run(
        self, key: str, call: Callable[[], Awaitable[T]], fingerprint: bytes | None = None
    ) -> tuple[T, bool]:
        """Run ``call()`` once per key within the window.

        :param fingerprint: what the key stands for; a live key with a different one is refused.
        :return: the result and whether it was a replay of an earlier call.
        :raises Conflict: ``request-id-reused`` (409).
        """
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None:
            created, known, task = entry
            failed = task.done() and (task.cancelled() or task.exception() is not None)
            if now - created <= self.window_s and not failed:
                if known != fingerprint:
                    raise Conflict(
                        f"request_id {key!r} was used for a different observation less than "
                        f"{self.window_s:g} s ago; give every observation its own request_id",
                        slug=REQUEST_ID_REUSED,
                        field="request_id",
                    )
                # shield: a retry whose client goes away must not cancel the shared run
                return await asyncio.shield(task), True
            del self._entries[key]
        task = asyncio.ensure_future(call())
        if self._make_room(now):
            self._entries[key] = (now, fingerprint, task)
            task.add_done_callback(lambda t, k=key: self._forget_failure(k, t))
        return await asyncio.shield(task), False

    def _forget_failure(self, key: str, task: asyncio.Task[T]) -> None:
        if task.cancelled() or task.exception() is not None:
            entry = self._entries.get(key)
            if entry is not None and entry[2] is task:
                del self._entries[key]

    def _make_room(self, now: float) -> bool:
        while self._entries:
            _key, (created, _fingerprint, _task) = next(iter(self._entries.items()))
            if now - created <= self.window_s:
                break
            self._entries.popitem(last=False)
        if len(self._entries) < self.max_entries:
            return True
        for key, (_created, _fingerprint, task) in self._entries.items():
            if task.done():
                del self._entries[key]
                return True
        return False
