"""The checks and the clamp, as pure functions of a chunk, the limits and a reference action.

The reference is the action the robot is executing when the new chunk arrives (the previous
chunk of the episode, time-shifted) or its measured position: the first action of the new chunk
must be reachable from it within one control step, like every later step.

Small tolerances absorb float32 rounding so a chunk the clamp produced always re-checks clean.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from reflex_actionguard.limits import JointLimits

_RTOL = 1e-5
_ATOL = 1e-6


@attrs.frozen
class Violation:
    """All violations of one kind on one joint within a chunk.

    :ivar kind: ``non-finite``, ``position``, ``gripper`` (the gripper dimension out of its
        range), ``velocity`` (a step larger than ``max_velocity / frequency_hz``; step 0 is the
        jump from the reference), or ``shape`` (the chunk does not have one column per joint).
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

    if limits.has_velocity_limits:
        hz = float(limits.frequency_hz or 0.0)
        previous = values[:-1]
        offset = 1
        if reference is not None and np.isfinite(reference).all():
            previous = np.concatenate([np.asarray(reference, np.float64)[None, :], previous])
            offset = 0
        steps = np.abs(values[offset:] - previous)
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
    return violations


def clamp_chunk(
    actions: np.ndarray, limits: JointLimits, reference: np.ndarray | None
) -> np.ndarray:
    """Project a finite chunk into the limits, keeping the direction of motion.

    Positions are clipped first. Then, step by step from the reference (itself clipped into the
    position limits: the robot may sit a hair outside them), a step that is too fast on any
    joint is scaled down as a whole, by the largest factor that brings every joint within its
    per-step limit, so the arm keeps heading where the policy pointed it, only slower. Later
    steps continue from where the scaled step ended. The result satisfies every limit.
    """
    values = np.clip(np.asarray(actions, dtype=np.float64), limits.lower, limits.upper)
    if not limits.has_velocity_limits:
        return values.astype(np.float32)
    max_step = limits.max_step
    limited = np.isfinite(max_step)
    if reference is not None and np.isfinite(reference).all():
        previous = np.clip(np.asarray(reference, np.float64), limits.lower, limits.upper)
        start = 0
    else:
        previous = values[0]
        start = 1
    for t in range(start, values.shape[0]):
        delta = values[t] - previous
        magnitude = np.abs(delta[limited])
        over = magnitude > max_step[limited]
        if over.any():
            scale = float(np.min(max_step[limited][over] / magnitude[over]))
            values[t] = previous + scale * delta
        previous = values[t]
    # float32 rounding may push a value a few ulps past a bound; keep positions exact.
    return np.clip(values, limits.lower, limits.upper).astype(np.float32)
