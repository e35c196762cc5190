"""Action-chunk math shared by the wedges (guard, deadline, router...).

A chunk is a ``(T, D)`` float32 array: T consecutive action targets, one per control step, in
robot units. The robot starts executing a chunk when it receives it and advances one row per
control step (``1 / frequency_hz`` seconds). From that follow the three pieces here:

* :func:`hold_chunk`: "stay where you are": the robot's current state repeated T times.
* :func:`shift_chunk`: what is left of a chunk after ``k`` control steps, padded to T rows by
  holding its last action (a robot that runs off the end of a chunk keeps the last target).
* :class:`LastChunkMemory`: the last chunk sent per episode, bounded (LRU), so a wedge can ask
  "what is this episode's robot executing right now".
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable

import attrs
import numpy as np


def as_chunk(actions: np.ndarray) -> np.ndarray:
    """Validate and return ``actions`` as a C-contiguous ``(T, D)`` float32 array."""
    array = np.asarray(actions, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"an action chunk must be (T, D) with T, D >= 1, got shape {array.shape}")
    return np.ascontiguousarray(array)


def hold_chunk(state: np.ndarray, action_dim: int, chunk_size: int) -> np.ndarray:
    """A chunk that holds the robot where it is: ``state[:action_dim]`` for every step.

    This assumes absolute joint-position actions whose first ``action_dim`` state entries are
    the same joints (true for the shipped embodiments). Raises ValueError when the state is
    shorter than the action or not finite: then there is no position to hold.
    """
    state = np.asarray(state, dtype=np.float32).reshape(-1)
    if chunk_size < 1 or action_dim < 1:
        raise ValueError(f"chunk_size and action_dim must be >= 1, got {chunk_size}, {action_dim}")
    if state.size < action_dim:
        raise ValueError(
            f"cannot hold position: state has {state.size} values, the action needs {action_dim}"
        )
    position = state[:action_dim]
    if not np.isfinite(position).all():
        raise ValueError("cannot hold position: the state is not finite")
    return np.tile(position, (chunk_size, 1)).astype(np.float32, copy=False)


def repeat_action(action: np.ndarray, chunk_size: int) -> np.ndarray:
    """``action`` (D,) repeated ``chunk_size`` times."""
    action = np.asarray(action, dtype=np.float32).reshape(-1)
    return np.tile(action, (chunk_size, 1)).astype(np.float32, copy=False)


def elapsed_steps(since_ns: int, now_ns: int, frequency_hz: float) -> int:
    """Whole control steps executed between two monotonic times (never negative)."""
    if not frequency_hz > 0:
        raise ValueError(f"frequency_hz must be > 0, got {frequency_hz}")
    elapsed_s = max(0, now_ns - since_ns) / 1e9
    # A small epsilon so 0.1 s at 10 Hz is exactly 1 step despite float rounding.
    return int(math.floor(elapsed_s * frequency_hz + 1e-9))


def shift_chunk(actions: np.ndarray, steps: int, chunk_size: int | None = None) -> np.ndarray:
    """Drop the first ``steps`` rows (already executed), pad with the last action to
    ``chunk_size`` rows (default: the chunk's own length).

    ``steps >= T`` yields the last action held for the whole chunk.
    """
    chunk = as_chunk(actions)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    size = chunk.shape[0] if chunk_size is None else chunk_size
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {size}")
    # Past the end the robot keeps the last target, so at least the last row survives.
    tail = chunk[min(steps, chunk.shape[0] - 1) :][:size]
    if tail.shape[0] < size:
        pad = np.broadcast_to(tail[-1], (size - tail.shape[0], chunk.shape[1]))
        tail = np.concatenate([tail, pad], axis=0)
    return np.array(tail, dtype=np.float32, order="C")  # a copy: callers may edit it


def action_at(actions: np.ndarray, steps: int) -> np.ndarray:
    """The action a robot is executing ``steps`` control steps after it received the chunk
    (the last one once it ran off the end)."""
    chunk = as_chunk(actions)
    return chunk[min(max(steps, 0), chunk.shape[0] - 1)].copy()


@attrs.frozen(eq=False)
class StoredChunk:
    """A chunk and when it was produced (monotonic ns)."""

    actions: np.ndarray
    produced_ns: int

    def steps_since(self, now_ns: int, frequency_hz: float) -> int:
        return elapsed_steps(self.produced_ns, now_ns, frequency_hz)

    def tail(self, now_ns: int, frequency_hz: float, chunk_size: int | None = None) -> np.ndarray:
        """The unexecuted remainder at ``now_ns``, padded by holding the last action."""
        return shift_chunk(self.actions, self.steps_since(now_ns, frequency_hz), chunk_size)

    def current_action(self, now_ns: int, frequency_hz: float) -> np.ndarray:
        """The action the robot is executing at ``now_ns``."""
        return action_at(self.actions, self.steps_since(now_ns, frequency_hz))


class LastChunkMemory:
    """The last chunk per episode, least recently used evicted beyond ``max_episodes``.

    Keys are episode ids; callers decide what to do without one (the wedges skip memory then,
    so two robots that send no episode id never see each other's chunks). Thread-safe.
    """

    def __init__(self, max_episodes: int = 1024) -> None:
        if max_episodes < 1:
            raise ValueError(f"max_episodes must be >= 1, got {max_episodes}")
        self.max_episodes = max_episodes
        self._chunks: OrderedDict[Hashable, StoredChunk] = OrderedDict()
        self._lock = threading.Lock()

    def put(self, episode: Hashable, actions: np.ndarray, produced_ns: int | None = None) -> None:
        stored = StoredChunk(
            actions=as_chunk(actions).copy(),
            produced_ns=time.monotonic_ns() if produced_ns is None else produced_ns,
        )
        with self._lock:
            self._chunks[episode] = stored
            self._chunks.move_to_end(episode)
            while len(self._chunks) > self.max_episodes:
                self._chunks.popitem(last=False)

    def get(self, episode: Hashable) -> StoredChunk | None:
        with self._lock:
            stored = self._chunks.get(episode)
            if stored is not None:
                self._chunks.move_to_end(episode)
            return stored

    def tail(
        self,
        episode: Hashable,
        frequency_hz: float,
        chunk_size: int | None = None,
        now_ns: int | None = None,
    ) -> np.ndarray | None:
        """The episode's last chunk time-shifted to now, or None without one."""
        stored = self.get(episode)
        if stored is None:
            return None
        now = time.monotonic_ns() if now_ns is None else now_ns
        return stored.tail(now, frequency_hz, chunk_size)

    def forget(self, episode: Hashable) -> None:
        with self._lock:
            self._chunks.pop(episode, None)

    def clear(self) -> None:
        with self._lock:
            self._chunks.clear()

    def __len__(self) -> int:
        return len(self._chunks)

    def __contains__(self, episode: object) -> bool:
        return episode in self._chunks
