"""The limits the guard enforces, one entry per action dimension.

Two sources, one at a time (the URDF wins when given, since it describes the hardware):

* the embodiment: position limits = ``action_ranges``; velocity = ``constraints.
  max_joint_velocity`` per dimension (none when the embodiment does not set it) and
  ``constraints.max_gripper_velocity`` for the gripper dimension (reported in
  ``/guard/status``; not enforced per step, see :attr:`JointLimits.max_step`);
* a URDF (``--guard-urdf``): position and velocity limits of the joint with the same name as
  each action dimension (the embodiment's ``joint_names``, or ``--guard-joint-names``).

The gripper dimension (from the embodiment) is reported as its own violation kind either way.

The embodiment also says what an action means (``action_space.kind``: the velocity limits are
read per kind, see :mod:`reflex_actionguard.checks`) and bounds the end effector's speed
(``constraints.max_ee_velocity``): from its ``kinematics`` (a URDF chain) for joint-space
actions, from the position part (dims 0-2) for end-effector actions. A joint-space embodiment
with an end-effector limit and no kinematics is refused (``guard-ee-velocity-unenforceable``):
a safety limit is enforced or refused, never ignored.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from reflex_actionguard.urdf import limits_for_joints
from reflex_core.errors import ConfigError
from reflex_core.plugin.kit.chunks import EE_KINDS, JOINT_POSITION


def _readonly(values: Sequence[float]) -> np.ndarray:
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


@attrs.frozen(eq=False)
class JointLimits:
    """Per-dimension limits; ``-inf``/``inf`` where there is none.

    :ivar frequency_hz: the control rate the velocity limits are checked at (one action per
        step), or None when no dimension has a velocity limit.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    max_velocity: np.ndarray
    gripper_idx: int | None
    frequency_hz: float | None
    source: str
    notes: tuple[str, ...]
    kind: str = JOINT_POSITION
    max_ee_velocity: float | None = None
    chain: Any = (
        None  # reflex_core.embodiments.kinematics.KinematicChain for a joint-space ee limit
    )

    @property
    def dim(self) -> int:
        return len(self.names)

    @property
    def has_velocity_limits(self) -> bool:
        return bool(np.isfinite(self.max_velocity).any())

    @property
    def has_ee_limit(self) -> bool:
        return self.max_ee_velocity is not None

    @property
    def ee_name(self) -> str:
        """How violations name the end effector: the chain's link, else ``end_effector``."""
        return self.chain.ee_link if self.chain is not None else "end_effector"

    def describe_ee(self) -> dict[str, Any] | None:
        if self.max_ee_velocity is None:
            return None
        return {
            "max_ee_velocity": self.max_ee_velocity,
            "from": self.chain.source if self.chain is not None else "action dims 0-2",
        }

    @property
    def max_step(self) -> np.ndarray:
        """Largest allowed change per control step, per dimension (inf: unlimited).

        The gripper dimension has none: the server sends it as an open/close target (the
        embodiment's gripper block snaps it to an end of its range), so every toggle is a
        full-range step by design, and the gripper's own controller sets how fast it moves.
        Its range is still checked.
        """
        if self.frequency_hz is None:
            return np.full(self.dim, np.inf)
        step = self.max_velocity / self.frequency_hz
        if self.gripper_idx is not None:
            step = step.copy()
            step[self.gripper_idx] = np.inf
        return step

    def describe(self) -> list[dict[str, Any]]:
        """JSON-able, for ``/guard/status`` (``None`` where unlimited)."""

        def num(x: float) -> float | None:
            return float(x) if math.isfinite(x) else None

        return [
            {
                "joint": name,
                "lower": num(self.lower[i]),
                "upper": num(self.upper[i]),
                "max_velocity": num(self.max_velocity[i]),
                "gripper": i == self.gripper_idx,
                "source": self.notes[i],
            }
            for i, name in enumerate(self.names)
        ]


def _check_frequency(frequency_hz: float | None, has_velocity: bool, source: str) -> None:
    if frequency_hz is not None and not frequency_hz > 0:
        raise ConfigError(
            f"guard: the control frequency must be > 0 Hz, got {frequency_hz}",
            slug="guard-invalid-frequency",
        )
    if has_velocity and frequency_hz is None:
        raise ConfigError(
            f"guard: {source} sets velocity limits but the control frequency is unknown; "
            "use an embodiment (control.frequency_hz) or --guard-control-hz",
            slug="guard-needs-control-rate",
        )


def limits_from_embodiment(embodiment: Any, frequency_hz: float | None = None) -> JointLimits:
    """Limits from an :class:`~reflex_core.embodiments.EmbodimentConfig`."""
    dim = int(embodiment.action_dim)
    ranges = np.asarray(embodiment.action_ranges, dtype=np.float64).reshape(dim, 2)
    velocity = np.full(dim, np.inf)
    notes = ["embodiment action_ranges"] * dim
    constraints = embodiment.constraints
    if constraints.max_joint_velocity is not None:
        velocity = np.asarray(constraints.max_joint_velocity, dtype=np.float64).reshape(dim).copy()
        notes = ["embodiment action_ranges + max_joint_velocity"] * dim
    gripper_idx = None if embodiment.gripper is None else int(embodiment.gripper.component_idx)
    if gripper_idx is not None:
        velocity[gripper_idx] = min(velocity[gripper_idx], float(constraints.max_gripper_velocity))
        notes[gripper_idx] = "embodiment gripper range + max_gripper_velocity"
    hz = frequency_hz if frequency_hz is not None else float(embodiment.control.frequency_hz)
    kind, max_ee, chain = ee_limit_of(embodiment)
    limits = JointLimits(
        names=tuple(embodiment.joint_names),
        lower=_readonly(ranges[:, 0]),
        upper=_readonly(ranges[:, 1]),
        max_velocity=_readonly(velocity),
        gripper_idx=gripper_idx,
        frequency_hz=hz,
        source=f"embodiment {embodiment.name}",
        notes=tuple(notes),
        kind=kind,
        max_ee_velocity=max_ee,
        chain=chain,
    )
    _check_frequency(hz, limits.has_velocity_limits or max_ee is not None, limits.source)
    return limits


def ee_limit_of(embodiment: Any) -> tuple[str, float | None, Any]:
    """(action kind, end-effector speed limit, kinematic chain) of an embodiment.

    :raises ConfigError: ``guard-ee-velocity-unenforceable`` for joint-space actions with a
        limit and no ``kinematics``; ``kinematics-invalid`` for a chain that does not fit.
    """
    if embodiment is None:
        return JOINT_POSITION, None, None
    kind = str(getattr(embodiment, "action_kind", JOINT_POSITION))
    max_ee = float(embodiment.constraints.max_ee_velocity)
    if kind in EE_KINDS:
        # The checks work in action units: a limit in m/s over actions in, say, centimetres.
        return kind, max_ee / float(getattr(embodiment, "position_unit_m", 1.0)), None
    chain = embodiment.kinematic_chain() if hasattr(embodiment, "kinematic_chain") else None
    if chain is None:
        raise ConfigError(
            f"guard: embodiment {embodiment.name!r} limits the end effector to {max_ee:g} m/s "
            f"(constraints.max_ee_velocity) but has no kinematics to compute the end effector "
            'from its joint actions: add a "kinematics" block (a URDF with base_link and '
            "ee_link) to the embodiment; the limit is never silently ignored",
            slug="guard-ee-velocity-unenforceable",
        )
    return kind, max_ee, chain


def limits_from_urdf(
    path: str | Path,
    joint_names: Sequence[str],
    *,
    frequency_hz: float | None,
    gripper_idx: int | None = None,
    embodiment: Any = None,
) -> JointLimits:
    """Limits of the URDF joints named ``joint_names`` (one per action dimension, in order)."""
    if not joint_names:
        raise ConfigError(
            "guard: a URDF needs the action joint names (from the embodiment or "
            "--guard-joint-names) to match its joints to action dimensions",
            slug="guard-needs-embodiment",
        )
    if len(set(joint_names)) != len(joint_names):
        raise ConfigError(
            f"guard: duplicate action joint names {list(joint_names)}", slug="guard-invalid-joints"
        )
    resolved = limits_for_joints(path, joint_names)
    kind, max_ee, chain = ee_limit_of(embodiment)
    limits = JointLimits(
        names=tuple(joint_names),
        lower=_readonly([j.lower for j in resolved]),
        upper=_readonly([j.upper for j in resolved]),
        max_velocity=_readonly([j.max_velocity for j in resolved]),
        gripper_idx=gripper_idx,
        frequency_hz=frequency_hz,
        source=f"urdf {path}",
        notes=tuple(j.note for j in resolved),
        kind=kind,
        max_ee_velocity=max_ee,
        chain=chain,
    )
    _check_frequency(frequency_hz, limits.has_velocity_limits or max_ee is not None, limits.source)
    return limits
