"""The actions scheduled for the coming control ticks, and how a new chunk joins them.

Ticks are counted by the control loop (tick ``k`` runs at ``start + k / frequency_hz``). A chunk
computed from an observation captured at tick ``c`` holds the actions for ticks ``c, c+1, ...``.
It arrives ``L`` ticks later (``L`` is measured, not assumed): its first ``L`` actions are for
ticks already gone and are dropped as stale; for ticks the queue already holds, old and new are
merged; the rest is appended. Ticks the old queue held beyond the new chunk are dropped: the
newest plan decides.
"""

from __future__ import annotations

import attrs
import numpy as np

from reflex_core.robot.control.merge import MergeFunction


@attrs.frozen
class Integration:
    """What happened to a chunk's actions when it joined the queue."""

    stale: int  # for ticks already executed: dropped
    merged: int  # overlapped the old chunk: merged with its action
    fresh: int  # new ticks: taken as they are
    latency_ticks: int  # ticks between capture and arrival


class ActionQueue:
    """Actions by tick. Not thread-safe: the control loop owns it."""

    def __init__(self) -> None:
        self._actions: dict[int, np.ndarray] = {}

    def integrate(
        self, actions: np.ndarray, capture_tick: int, now_tick: int, merge: MergeFunction
    ) -> Integration:
        """Join a chunk captured at ``capture_tick`` that is ready at ``now_tick`` (before that
        tick's action runs)."""
        chunk = np.asarray(actions, dtype=np.float32)
        if chunk.ndim != 2 or chunk.shape[0] == 0:
            raise ValueError(f"a chunk is a (T, D) array, got shape {chunk.shape}")
        stale = merged = fresh = 0
        queue: dict[int, np.ndarray] = {}
        for i, action in enumerate(chunk):
            tick = capture_tick + i
            if tick < now_tick:
                stale += 1
                continue
            old = self._actions.get(tick)
            if old is not None and old.shape == action.shape:
                queue[tick] = np.asarray(merge(old, action), dtype=np.float32)
                merged += 1
            else:
                queue[tick] = action.copy()
                fresh += 1
        self._actions = queue
        return Integration(
            stale=stale, merged=merged, fresh=fresh, latency_ticks=max(0, now_tick - capture_tick)
        )

    def pop(self, tick: int) -> np.ndarray | None:
        """The action for ``tick`` (None when there is none); earlier ticks are forgotten."""
        for old in [t for t in self._actions if t < tick]:
            del self._actions[old]
        return self._actions.pop(tick, None)

    def remaining(self, tick: int) -> int:
        """Actions scheduled for ``tick`` and later."""
        return sum(1 for t in self._actions if t >= tick)

    def last_tick(self) -> int | None:
        return max(self._actions) if self._actions else None
