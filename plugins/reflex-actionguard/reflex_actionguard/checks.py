"""The checks and the clamp, as pure functions of a chunk, the limits and a reference action.

The reference is what the chunk starts from, per action kind (``limits.kind``):

* absolute kinds (``joint_position``, ``ee_pose``): the action the robot is executing when the
  new chunk arrives (the previous chunk of the episode, time-shifted) or its measured position;
  the first action of the new chunk must be reachable from it within one control step, like
  every later step;
* joint rate kinds (``joint_delta``, ``joint_velocity``): the measured joint positions, from
  which the chunk's joint positions are integrated for the end-effector check;
* end-effector rate kinds: unused.

Per-step motion, per kind: the change between consecutive targets (absolute), the row itself
(deltas), the row over the control rate (velocities). It is held to ``max_velocity /
frequency_hz`` per dimension (the gripper excepted) and, through the end effector's position
(forward kinematics of the joints, or dims 0-2 of an ee action), to ``max_ee_velocity /
frequency_hz``.

Small tolerances absorb float32 rounding so a chunk the clamp produced always re-checks clean.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from reflex_actionguard.limits import JointLimits
from reflex_core.plugin.kit.chunks import EE_POSITION_DIMS, VELOCITY_KINDS, is_absolute

_RTOL = 1e-5
_ATOL = 1e-6
_EE_MARGIN = 0.999  # the clamp aims this far under the end-effector limit


@attrs.frozen
class Violation:
    """All violations of one kind on one joint within a chunk.

    :ivar kind: ``non-finite``, ``position``, ``gripper`` (the gripper dimension out of its
        range), ``velocity`` (a step larger than ``max_velocity / frequency_hz``; step 0 is the
        jump from the reference), ``ee-velocity`` (the end effector faster than
        ``max_ee_velocity``; ``joint`` names the end-effector link; without ``worst`` it could
        not be computed: a joint rate chunk without a measured joint state), or ``shape`` (the
        chunk does not have one column per joint).
    :ivar steps: how many steps violate. :ivar first_step: the first of them.
    :ivar worst: the most extreme offending value (a position, or a per-second velocity).
    :ivar limit: the bound it crossed.
    """

    kind: str
    joint: str | None
    steps: int
    first_step: int
    worst: float | None = None
    limit: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {k: v for k, v in attrs.asdict(self).items() if v is not None}


def _tol(limit: np.ndarray) -> np.ndarray:
    return _ATOL + _RTOL * np.abs(np.where(np.isfinite(limit), limit, 0.0))


def inspect_chunk(
    actions: np.ndarray, limits: JointLimits, reference: np.ndarray | None
) -> list[Violation]:
    """Every violation in ``actions`` (T, D); empty when the chunk is within limits."""
    actions = np.asarray(actions)
    if actions.ndim != 2 or actions.shape[1] != limits.dim or actions.shape[0] < 1:
        return [
            Violation(
                "shape", None, steps=int(actions.shape[0]) if actions.ndim else 0, first_step=0
            )
        ]
    values = actions.astype(np.float64)
    violations: list[Violation] = []
    finite = np.isfinite(values)
    for j in np.flatnonzero(~finite.all(axis=0)):
        bad = np.flatnonzero(~finite[:, j])
        violations.append(Violation("non-finite", limits.names[j], int(bad.size), int(bad[0])))
    if violations:
        return violations  # limits are meaningless on NaN; the chunk is rejected anyway

    below = values < limits.lower - _tol(limits.lower)
    above = values > limits.upper + _tol(limits.upper)
    for j in range(limits.dim):
        bad = np.flatnonzero(below[:, j] | above[:, j])
        if bad.size == 0:
            continue
        lows, highs = values[below[:, j], j], values[above[:, j], j]
        low_excess = limits.lower[j] - lows.min() if lows.size else -np.inf
        high_excess = highs.max() - limits.upper[j] if highs.size else -np.inf
        worst, limit = (
            (float(lows.min()), float(limits.lower[j]))
            if low_excess >= high_excess
            else (float(highs.max()), float(limits.upper[j]))
        )
        kind = "gripper" if j == limits.gripper_idx else "position"
        violations.append(
            Violation(kind, limits.names[j], int(bad.size), int(bad[0]), worst, limit)
        )

    reference = _usable(reference, limits.dim)
    hz = float(limits.frequency_hz or 0.0)
    if limits.has_velocity_limits:
        steps, offset = _motion(values, limits, reference)
        steps = np.abs(steps)
        max_step = limits.max_step
        too_fast = steps > max_step + _tol(max_step)
        for j in np.flatnonzero(too_fast.any(axis=0)):
            bad = np.flatnonzero(too_fast[:, j])
            violations.append(
                Violation(
                    "velocity",
                    limits.names[j],
                    int(bad.size),
                    int(bad[0]) + offset,
                    float(steps[:, j].max() * hz),
                    float(limits.max_velocity[j]),
                )
            )
    if limits.has_ee_limit:
        violation = _ee_violation(values, limits, reference, hz)
        if violation is not None:
            violations.append(violation)
    return violations


def _usable(reference: np.ndarray | None, dim: int) -> np.ndarray | None:
    if reference is None:
        return None
    reference = np.asarray(reference, dtype=np.float64).reshape(-1)
    if reference.size != dim or not np.isfinite(reference).all():
        return None
    return reference


def _motion(
    values: np.ndarray, limits: JointLimits, reference: np.ndarray | None
) -> tuple[np.ndarray, int]:
    """Per-step motion (T', D) and the step index of its first row."""
    if is_absolute(limits.kind):
        if reference is not None:
            return values - np.concatenate([reference[None, :], values[:-1]]), 0
        return np.diff(values, axis=0), 1
    if limits.kind in VELOCITY_KINDS:
        return values / float(limits.frequency_hz or 1.0), 0
    return values, 0


def _ee_positions(
    values: np.ndarray, limits: JointLimits, reference: np.ndarray | None
) -> tuple[np.ndarray, int] | None:
    """End-effector positions (M, 3), one per step boundary, and the step index of the first
    motion; None when they cannot be computed (a joint rate chunk without a joint state)."""
    kind = limits.kind
    if limits.chain is not None:  # joint-space actions: forward kinematics
        if is_absolute(kind):
            q = values if reference is None else np.concatenate([reference[None, :], values])
            return limits.chain.positions(q), 0 if reference is not None else 1
        if reference is None:
            return None
        motion, _ = _motion(values, limits, None)
        q = reference + np.concatenate([np.zeros((1, limits.dim)), np.cumsum(motion, axis=0)])
        return limits.chain.positions(q), 0
    position = values[:, :EE_POSITION_DIMS]
    if is_absolute(kind):
        if reference is None:
            return position, 1
        return np.concatenate([reference[None, :EE_POSITION_DIMS], position]), 0
    motion, _ = _motion(values, limits, None)
    zero = np.zeros((1, EE_POSITION_DIMS))
    return np.concatenate([zero, np.cumsum(motion[:, :EE_POSITION_DIMS], axis=0)]), 0


def _ee_violation(
    values: np.ndarray, limits: JointLimits, reference: np.ndarray | None, hz: float
) -> Violation | None:
    assert limits.max_ee_velocity is not None
    limit = float(limits.max_ee_velocity)
    located = _ee_positions(values, limits, reference)
    if located is None:
        return Violation("ee-velocity", limits.ee_name, int(values.shape[0]), 0, None, limit)
    points, offset = located
    if points.shape[0] < 2:
        return None
    speeds = np.linalg.norm(np.diff(points, axis=0), axis=1) * hz
    bad = np.flatnonzero(speeds > limit + _ATOL + _RTOL * limit)
    if bad.size == 0:
        return None
    return Violation(
        "ee-velocity",
        limits.ee_name,
        int(bad.size),
        int(bad[0]) + offset,
        float(speeds.max()),
        limit,
    )


class _EeStep:
    """The end effector's displacement for one step's motion from a start, per kind."""

    def __init__(self, limits: JointLimits) -> None:
        self.limits = limits
        self.max_step = (
            float(limits.max_ee_velocity) / float(limits.frequency_hz or 1.0)
            if limits.max_ee_velocity is not None
            else None
        )

    def __call__(self, start: np.ndarray | None, motion: np.ndarray) -> float | None:
        chain = self.limits.chain
        if chain is None:
            return float(np.linalg.norm(motion[:EE_POSITION_DIMS]))
        if start is None:
            return None
        points = chain.positions(np.stack([start, start + motion]))
        return float(np.linalg.norm(points[1] - points[0]))

    def first_too_fast(
        self, starts: list[np.ndarray | None], motions: list[np.ndarray]
    ) -> int | None:
        """The first of these steps (``start`` -> ``start + motion``) that moves the end effector
        faster than :meth:`scale` allows, or None; one forward-kinematics call for them all."""
        if self.max_step is None or not motions:
            return None
        moves = np.asarray(motions)
        if self.limits.chain is None:
            moved = np.linalg.norm(moves[:, :EE_POSITION_DIMS], axis=1)
        elif any(start is None for start in starts):
            return None  # a joint rate kind without a joint state: nothing to compute from
        else:
            origins = np.asarray(starts)
            points = self.limits.chain.positions(np.concatenate([origins, origins + moves]))
            moved = np.linalg.norm(points[len(moves) :] - points[: len(moves)], axis=1)
        over = np.flatnonzero(moved > self.max_step * (1 + _RTOL))
        return int(over[0]) if over.size else None

    def scale(self, start: np.ndarray | None, motion: np.ndarray, scale: float) -> float:
        """The largest factor <= ``scale`` that keeps this step's end effector in its limit."""
        if self.max_step is None:
            return scale
        for _ in range(8):
            moved = self(start, scale * motion)
            if moved is None or moved <= self.max_step * (1 + _RTOL):
                return scale
            scale *= _EE_MARGIN * self.max_step / moved
        moved = self(start, scale * motion)
        if moved is None or moved <= self.max_step * (1 + _RTOL):
            return scale
        return 0.0  # not converging (near a singularity): this step stays where it is


def clamp_chunk(
    actions: np.ndarray, limits: JointLimits, reference: np.ndarray | None
) -> np.ndarray:
    """Project a finite chunk into the limits, keeping the direction of motion.

    Positions (action values) are clipped first. Then, step by step from the reference (for an
    absolute kind itself clipped into the position limits: the robot may sit a hair outside
    them), a step that is too fast on any joint, or moves the end effector too fast, is scaled
    down as a whole (a rate row's gripper target excepted), by the largest factor that brings it within every
    limit, so the arm keeps heading where the policy pointed it, only slower. For an absolute
    kind later steps continue from where the scaled step ended (and head for their own target);
    a delta or velocity row is scaled on its own. The result satisfies every limit it can be
    checked against.
    """
    values = np.clip(np.asarray(actions, dtype=np.float64), limits.lower, limits.upper)
    if not (limits.has_velocity_limits or limits.has_ee_limit):
        return values.astype(np.float32)
    hz = float(limits.frequency_hz or 1.0)
    max_step = limits.max_step
    limited = np.isfinite(max_step)
    ee = _EeStep(limits)
    reference = _usable(reference, limits.dim)
    absolute = is_absolute(limits.kind)
    # A step of targets is scaled as a whole (the gripper along); a rate row is scaled but its
    # gripper dimension, an absolute target in every kind, is kept.
    moving = np.ones(limits.dim, dtype=bool)
    if limits.gripper_idx is not None and not absolute:
        moving[limits.gripper_idx] = False
    velocity = limits.kind in VELOCITY_KINDS
    if absolute:
        if reference is not None:
            previous = np.clip(reference, limits.lower, limits.upper)
            start = 0
        else:
            previous, start = values[0].copy(), 1
    else:
        previous, start = reference, 0  # joint positions, integrated (joint rate kinds)

    def run(first: int, previous: np.ndarray | None, per_step_ee: bool) -> None:
        for t in range(first, values.shape[0]):
            motion = (values[t] - previous) if absolute else values[t] / (hz if velocity else 1.0)
            motion = np.where(moving, motion, 0.0)
            magnitude = np.abs(motion[limited])
            over = magnitude > max_step[limited]
            scale = float(np.min(max_step[limited][over] / magnitude[over])) if over.any() else 1.0
            if per_step_ee:
                scale = ee.scale(previous, motion, scale)
            starts.append(previous)
            motions.append(scale * motion)
            if absolute:
                values[t] = np.where(moving, previous + scale * motion, values[t])
                previous = values[t]
            else:
                values[t] = np.where(moving, scale * values[t], values[t])
                if previous is not None:
                    previous = previous + scale * motion

    # Forward kinematics is the costly part and this runs on the server's event loop: first
    # every step is scaled for the joint limits alone and one batched call checks the end
    # effector over all of them. Where it stays within its limit (the usual case) that IS the
    # step-by-step result (each step's own check would have passed); from the first step where
    # it does not, the steps are redone one by one, each scaled for the end effector too.
    clipped = values.copy()
    starts: list[np.ndarray | None] = []
    motions: list[np.ndarray] = []
    run(start, previous, per_step_ee=False)
    bad = ee.first_too_fast(starts, motions)
    if bad is not None:
        values[start + bad :] = clipped[start + bad :]
        run(start + bad, starts[bad], per_step_ee=True)
    # float32 rounding may push a value a few ulps past a bound; keep positions exact.
    return np.clip(values, limits.lower, limits.upper).astype(np.float32)
