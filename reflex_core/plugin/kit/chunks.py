"""Action-chunk math shared by the wedges (guard, deadline, router...).

A chunk is a ``(T, D)`` float32 array: T consecutive actions, one per control step, in robot
units. The robot starts executing a chunk when it receives it and advances one row per control
step (``1 / frequency_hz`` seconds).

What a row means is the embodiment's ``action_space.kind`` (:data:`ACTION_KINDS`):

=================  ===========================================  ===========================
kind               a row is                                     "stay still" is
=================  ===========================================  ===========================
``joint_position`` absolute joint targets (the default)         the measured joints
``ee_pose``        an absolute end-effector pose (dims 0-2 m)   the pose commanded now
``joint_delta``    a joint displacement for this step           zeros
``ee_delta``       an end-effector displacement for this step   zeros
``joint_velocity`` joint velocities (units/s)                   zeros
``ee_velocity``    an end-effector twist (m/s, rad/s)           zeros
=================  ===========================================  ===========================

The gripper dimension is an absolute target in every kind (the embodiment's gripper block
snaps it to an end of its range); "stay still" keeps it where it is.

* :func:`hold_chunk`: "stay where you are" for T steps, per kind.
* :func:`shift_chunk`: what is left of a chunk after ``k`` control steps, padded to T rows with
  "keep still": the last target for the absolute kinds (a robot that runs off the end of a
  chunk keeps it), zero motion for the rate kinds (deltas, velocities).
* :func:`decay_chunk`: a chunk that follows a plan while slowing to rest by its end.
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

JOINT_POSITION = "joint_position"
JOINT_DELTA = "joint_delta"
JOINT_VELOCITY = "joint_velocity"
EE_POSE = "ee_pose"
EE_DELTA = "ee_delta"
EE_VELOCITY = "ee_velocity"
ACTION_KINDS = (JOINT_POSITION, JOINT_DELTA, JOINT_VELOCITY, EE_POSE, EE_DELTA, EE_VELOCITY)
JOINT_KINDS = (JOINT_POSITION, JOINT_DELTA, JOINT_VELOCITY)
EE_KINDS = (EE_POSE, EE_DELTA, EE_VELOCITY)
ABSOLUTE_KINDS = (JOINT_POSITION, EE_POSE)
DELTA_KINDS = (JOINT_DELTA, EE_DELTA)
VELOCITY_KINDS = (JOINT_VELOCITY, EE_VELOCITY)
EE_POSITION_DIMS = 3  # an ee action's position part: dims 0-2, metres (m/s for a twist)


def check_kind(kind: str) -> str:
    if kind not in ACTION_KINDS:
        raise ValueError(f"unknown action kind {kind!r}; known: {', '.join(ACTION_KINDS)}")
    return kind


def is_absolute(kind: str) -> bool:
    """True when a row is a target (positions, poses), False for a rate (deltas, velocities)."""
    return check_kind(kind) in ABSOLUTE_KINDS


def as_chunk(actions: np.ndarray) -> np.ndarray:
    """Validate and return ``actions`` as a C-contiguous ``(T, D)`` float32 array."""
    array = np.asarray(actions, dtype=np.float32)
    if array.ndim != 2 or array.shape[0] < 1 or array.shape[1] < 1:
        raise ValueError(f"an action chunk must be (T, D) with T, D >= 1, got shape {array.shape}")
    return np.ascontiguousarray(array)


def hold_chunk(
    state: np.ndarray | None,
    action_dim: int,
    chunk_size: int,
    *,
    kind: str = JOINT_POSITION,
    gripper_idx: int | None = None,
    current: np.ndarray | None = None,
) -> np.ndarray:
    """A chunk that keeps the robot where it is, for ``chunk_size`` steps.

    * ``joint_position``: ``state[:action_dim]`` (the first ``action_dim`` state entries are
      the same joints, as in the shipped embodiments);
    * ``ee_pose``: ``current``, the pose commanded now (the state is not declared to carry a
      pose);
    * deltas and velocities: zeros, the gripper dimension kept at ``current``'s value, else (a
      joint-space kind) at the state's.

    :param current: the action the robot is executing now (the episode's last chunk), if known.
    :raises ValueError: when there is nothing safe to hold (a short or non-finite state, no
        commanded pose, no gripper value).
    """
    check_kind(kind)
    if chunk_size < 1 or action_dim < 1:
        raise ValueError(f"chunk_size and action_dim must be >= 1, got {chunk_size}, {action_dim}")
    if kind == EE_POSE:
        if current is None:
            raise ValueError(
                "cannot hold an end-effector pose: no pose commanded yet in this episode"
            )
        return repeat_action(current, chunk_size)
    if kind != JOINT_POSITION:
        still = np.zeros(action_dim, dtype=np.float32)
        if gripper_idx is not None:
            still[gripper_idx] = _gripper_value(state, current, gripper_idx, kind)
        return np.tile(still, (chunk_size, 1))
    if state is None:
        raise ValueError("cannot hold position: no state")
    state = np.asarray(state, dtype=np.float32).reshape(-1)
    if state.size < action_dim:
        raise ValueError(
            f"cannot hold position: state has {state.size} values, the action needs {action_dim}"
        )
    position = state[:action_dim]
    if not np.isfinite(position).all():
        raise ValueError("cannot hold position: the state is not finite")
    return np.tile(position, (chunk_size, 1)).astype(np.float32, copy=False)


def _gripper_value(
    state: np.ndarray | None, current: np.ndarray | None, gripper_idx: int, kind: str
) -> float:
    if current is not None:
        value = float(np.asarray(current, dtype=np.float64).reshape(-1)[gripper_idx])
        if np.isfinite(value):
            return value
    if kind in JOINT_KINDS and state is not None:
        values = np.asarray(state, dtype=np.float64).reshape(-1)
        if values.size > gripper_idx and np.isfinite(values[gripper_idx]):
            return float(values[gripper_idx])
    raise ValueError("cannot keep the gripper still: no commanded or measured gripper value")


def still_rows(
    last: np.ndarray, rows: int, kind: str, gripper_idx: int | None = None
) -> np.ndarray:
    """``rows`` rows of "keep still" after an action ``last``: ``last`` repeated for the
    absolute kinds, zero motion (the gripper kept at ``last``'s value) for the rate kinds."""
    last = np.asarray(last, dtype=np.float32).reshape(-1)
    if is_absolute(kind):
        return np.tile(last, (rows, 1))
    still = np.zeros((rows, last.size), dtype=np.float32)
    if gripper_idx is not None:
        still[:, gripper_idx] = last[gripper_idx]
    return still


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


def shift_chunk(
    actions: np.ndarray,
    steps: int,
    chunk_size: int | None = None,
    *,
    kind: str = JOINT_POSITION,
    gripper_idx: int | None = None,
) -> np.ndarray:
    """Drop the first ``steps`` rows (already executed) and pad to ``chunk_size`` rows (default:
    the chunk's own length) with "keep still" (:func:`still_rows`).

    Absolute kinds: ``steps >= T`` yields the last target held for the whole chunk (past the
    end the robot keeps it). Rate kinds: the rows past the end are zero motion, never a repeat
    of the last delta or velocity (that would keep the robot moving).
    """
    chunk = as_chunk(actions)
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    size = chunk.shape[0] if chunk_size is None else chunk_size
    if size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {size}")
    if is_absolute(kind):
        tail = chunk[min(steps, chunk.shape[0] - 1) :][:size]
    else:
        tail = chunk[steps:][:size]
    if tail.shape[0] < size:
        pad = still_rows(chunk[-1], size - tail.shape[0], kind, gripper_idx)
        tail = np.concatenate([tail, pad], axis=0)
    return np.array(tail, dtype=np.float32, order="C")  # a copy: callers may edit it


def decay_chunk(
    plan: np.ndarray, *, kind: str = JOINT_POSITION, gripper_idx: int | None = None
) -> np.ndarray:
    """Follow ``plan`` (T, D), the remainder of a chunk starting at the action executed now,
    while slowing down linearly to rest by its last step.

    The motion of step t is scaled by ``w_t = 1 - (t + 1) / T`` (the last step does not move):
    for the absolute kinds the per-step change ``plan[t] - plan[t - 1]``, re-integrated from
    ``plan[0]``; for the rate kinds the row itself. No step is faster than the plan's, so a plan
    within the velocity limits stays within them. The gripper dimension follows the plan.
    """
    plan = as_chunk(plan).astype(np.float64)
    size = plan.shape[0]
    weights = 1.0 - np.arange(1, size + 1, dtype=np.float64) / size
    if is_absolute(kind):
        steps = np.diff(plan, axis=0, prepend=plan[:1])
        out = plan[0] + np.cumsum(steps * weights[:, None], axis=0)
    else:
        out = plan * weights[:, None]
    if gripper_idx is not None:
        out[:, gripper_idx] = plan[:, gripper_idx]
    return np.ascontiguousarray(out, dtype=np.float32)


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

    def tail(
        self,
        now_ns: int,
        frequency_hz: float,
        chunk_size: int | None = None,
        *,
        kind: str = JOINT_POSITION,
        gripper_idx: int | None = None,
    ) -> np.ndarray:
        """The unexecuted remainder at ``now_ns``, padded with "keep still" (:func:`shift_chunk`)."""
        return shift_chunk(
            self.actions,
            self.steps_since(now_ns, frequency_hz),
            chunk_size,
            kind=kind,
            gripper_idx=gripper_idx,
        )

    def current_action(
        self,
        now_ns: int,
        frequency_hz: float,
        *,
        kind: str = JOINT_POSITION,
        gripper_idx: int | None = None,
    ) -> np.ndarray:
        """The action the robot is executing at ``now_ns`` (past the end: the last target for
        an absolute kind, zero motion for a rate kind)."""
        return shift_chunk(
            self.actions,
            self.steps_since(now_ns, frequency_hz),
            1,
            kind=kind,
            gripper_idx=gripper_idx,
        )[0]


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
        *,
        kind: str = JOINT_POSITION,
        gripper_idx: int | None = None,
    ) -> np.ndarray | None:
        """The episode's last chunk time-shifted to now, or None without one."""
        stored = self.get(episode)
        if stored is None:
            return None
        now = time.monotonic_ns() if now_ns is None else now_ns
        return stored.tail(now, frequency_hz, chunk_size, kind=kind, gripper_idx=gripper_idx)

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
