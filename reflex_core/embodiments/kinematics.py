"""Forward kinematics over a URDF's joint origins and axes (numpy only).

Enough to answer "where is the end effector for these joint positions", batched over many
configurations, which is what the end-effector speed limit needs
(``constraints.max_ee_velocity``, enforced by ActionGuard): the chain from ``base_link`` to
``ee_link`` is read from the URDF's ``<joint>`` elements (``origin xyz/rpy``, ``axis``,
``type``, ``mimic``); links, meshes and inertias are ignored.

* ``revolute`` / ``continuous``: a rotation of ``q`` rad about ``axis`` (in the joint frame,
  after the origin transform), as URDF defines it;
* ``prismatic``: a translation of ``q`` m along ``axis``;
* ``fixed``: the origin transform only;
* a ``mimic`` joint: ``multiplier * q_mimicked + offset``.

Each moving joint on the chain must be an action dimension (matched by name) or mimic one;
``origin rpy`` is URDF's fixed-axis roll-pitch-yaw, ``R = Rz(yaw) Ry(pitch) Rx(roll)``.

>>> chain = KinematicChain.from_urdf("panda.urdf", "panda_link0", "panda_hand_tcp", names)
>>> chain.positions(q)          # q (N, D) in action order -> (N, 3) metres in the base frame
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import attrs
import numpy as np

from reflex_core.errors import ConfigError

MOVING = ("revolute", "continuous", "prismatic")


def _error(message: str) -> ConfigError:
    return ConfigError(message, slug="kinematics-invalid", field="kinematics")


def _floats(text: str | None, default: tuple[float, float, float], what: str) -> np.ndarray:
    if text is None:
        return np.array(default, dtype=np.float64)
    try:
        values = [float(x) for x in text.split()]
    except ValueError:
        values = []
    if len(values) != 3 or not all(math.isfinite(v) for v in values):
        raise _error(f"{what}: expected three finite numbers, got {text!r}")
    return np.array(values, dtype=np.float64)


def rpy_matrix(rpy: np.ndarray) -> np.ndarray:
    """URDF's fixed-axis roll-pitch-yaw: ``Rz(yaw) @ Ry(pitch) @ Rx(roll)``."""
    r, p, y = rpy
    cr, sr, cp, sp, cy, sy = (
        math.cos(r),
        math.sin(r),
        math.cos(p),
        math.sin(p),
        math.cos(y),
        math.sin(y),
    )
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


@attrs.frozen(eq=False)
class ChainJoint:
    """One joint on the base -> end-effector path.

    :ivar index: the action dimension driving it (None for a fixed joint).
    """

    name: str
    type: str
    rotation: np.ndarray  # origin rotation (3, 3)
    translation: np.ndarray  # origin translation (3,)
    axis: np.ndarray  # unit axis in the joint frame
    index: int | None
    multiplier: float = 1.0
    offset: float = 0.0


@attrs.frozen(eq=False)
class _CompiledChain:
    """A chain as homogeneous 4x4 transforms, one per moving joint (the fixed joints before it
    folded in), each an affine function of its joint value ``v``:
    ``constant + sin(v) * sine + (1 - cos(v)) * versine + v * linear``. For a revolute joint
    that is its origin times Rodrigues' rotation ``I + sin v K + (1 - cos v) K^2``; for a
    prismatic one its origin times a translation of ``v`` along the axis. ``end`` is the fixed
    transform after the last moving joint. So :meth:`KinematicChain.transforms` costs a few
    numpy calls for all joints at once plus one matrix product per joint, whatever ``N``."""

    index: np.ndarray  # (J,) the action dimension driving each moving joint
    multiplier: np.ndarray  # (J,)
    offset: np.ndarray  # (J,)
    constant: np.ndarray  # (J, 4, 4)
    sine: np.ndarray  # (J, 4, 4)
    versine: np.ndarray  # (J, 4, 4)
    linear: np.ndarray  # (J, 4, 4)
    end: np.ndarray  # (4, 4)


def _homogeneous(rotation: np.ndarray, translation: np.ndarray) -> np.ndarray:
    out = np.zeros((4, 4))
    out[:3, :3] = rotation
    out[:3, 3] = translation
    out[3, 3] = 1.0
    return out


def _compile(joints: Sequence[ChainJoint]) -> _CompiledChain:
    index: list[int] = []
    multiplier: list[float] = []
    offset: list[float] = []
    constant: list[np.ndarray] = []
    sine: list[np.ndarray] = []
    versine: list[np.ndarray] = []
    linear: list[np.ndarray] = []
    pending = np.eye(4)  # fixed transforms not yet folded into a moving joint
    for joint in joints:
        pending = pending @ _homogeneous(joint.rotation, joint.translation)
        if joint.index is None:
            continue
        rotation = pending[:3, :3]
        x, y, z = joint.axis
        k = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]], dtype=np.float64)
        terms = [np.zeros((4, 4)) for _ in range(3)]
        if joint.type == "prismatic":
            terms[2][:3, 3] = rotation @ joint.axis
        else:
            terms[0][:3, :3] = rotation @ k
            terms[1][:3, :3] = rotation @ k @ k
        constant.append(pending)
        sine.append(terms[0])
        versine.append(terms[1])
        linear.append(terms[2])
        index.append(joint.index)
        multiplier.append(joint.multiplier)
        offset.append(joint.offset)
        pending = np.eye(4)

    def stack(items: list[np.ndarray]) -> np.ndarray:
        return np.array(items, dtype=np.float64).reshape(-1, 4, 4)  # (0, 4, 4) when none

    return _CompiledChain(
        index=np.array(index, dtype=np.intp),
        multiplier=np.array(multiplier, dtype=np.float64),
        offset=np.array(offset, dtype=np.float64),
        constant=stack(constant),
        sine=stack(sine),
        versine=stack(versine),
        linear=stack(linear),
        end=pending,
    )


@attrs.frozen(eq=False)
class KinematicChain:
    """The joints from ``base_link`` to ``ee_link`` and which action dimension drives each."""

    base_link: str
    ee_link: str
    joints: tuple[ChainJoint, ...]
    dim: int
    source: str
    # The chain precomputed for transforms(): ActionGuard runs forward kinematics on the
    # server's event loop for every chunk it checks, where each numpy call counts.
    _compiled: _CompiledChain = attrs.field(init=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_compiled", _compile(self.joints))

    @property
    def driven_dims(self) -> list[int]:
        """Action dimensions that move the end effector."""
        return sorted({j.index for j in self.joints if j.index is not None})

    @classmethod
    def from_urdf(
        cls,
        path: str | Path,
        base_link: str,
        ee_link: str,
        joint_names: Sequence[str],
    ) -> KinematicChain:
        """Read the chain from a URDF file.

        :param joint_names: one per action dimension; moving joints on the chain are matched
            to them by name.
        :raises ConfigError: ``kinematics-invalid`` (unreadable file, no path between the
            links, a moving joint on the chain that is no action dimension, bad numbers).
        """
        path = Path(path)
        try:
            root = ET.parse(path).getroot()
        except (OSError, ET.ParseError) as exc:
            raise _error(f"cannot read the URDF {path}: {exc}") from exc
        by_child: dict[str, ET.Element] = {}
        elements: dict[str, ET.Element] = {}
        for joint in root.iter("joint"):
            child = joint.find("child")
            name = joint.get("name")
            if child is None or child.get("link") is None or name is None:
                continue
            # A <joint> inside <transmission> has no <child>; it is skipped above.
            by_child[str(child.get("link"))] = joint
            elements[name] = joint
        path_joints: list[ET.Element] = []
        link = ee_link
        seen: set[str] = set()
        while link != base_link:
            joint = by_child.get(link)
            if joint is None or link in seen:
                raise _error(
                    f"{path}: no chain of joints from {base_link!r} to {ee_link!r} "
                    f"(stuck at link {link!r})"
                )
            seen.add(link)
            path_joints.append(joint)
            parent = joint.find("parent")
            link = str(parent.get("link")) if parent is not None else ""
        path_joints.reverse()

        index_of = {name: i for i, name in enumerate(joint_names)}
        chain: list[ChainJoint] = []
        for joint in path_joints:
            name = str(joint.get("name"))
            kind = str(joint.get("type"))
            origin = joint.find("origin")
            xyz = _floats(origin.get("xyz") if origin is not None else None, (0, 0, 0), name)
            rpy = _floats(origin.get("rpy") if origin is not None else None, (0, 0, 0), name)
            axis_el = joint.find("axis")
            axis = _floats(axis_el.get("xyz") if axis_el is not None else None, (1, 0, 0), name)
            index, multiplier, offset = None, 1.0, 0.0
            if kind in MOVING:
                norm = float(np.linalg.norm(axis))
                if not norm > 0:
                    raise _error(f"{path}: joint {name!r} has a zero axis")
                axis = axis / norm
                driver = name
                mimic = joint.find("mimic")
                if name not in index_of and mimic is not None:
                    driver = str(mimic.get("joint"))
                    multiplier = float(mimic.get("multiplier", "1"))
                    offset = float(mimic.get("offset", "0"))
                if driver not in index_of:
                    raise _error(
                        f"{path}: joint {name!r} moves the end effector {ee_link!r} but is not "
                        f"an action dimension ({', '.join(joint_names)})"
                    )
                index = index_of[driver]
            elif kind != "fixed":
                raise _error(f"{path}: joint {name!r} of type {kind!r} cannot be on the chain")
            chain.append(
                ChainJoint(
                    name=name,
                    type=kind,
                    rotation=rpy_matrix(rpy),
                    translation=xyz,
                    axis=axis,
                    index=index,
                    multiplier=multiplier,
                    offset=offset,
                )
            )
        return cls(
            base_link=base_link,
            ee_link=ee_link,
            joints=tuple(chain),
            dim=len(joint_names),
            source=f"{path} ({base_link} -> {ee_link})",
        )

    def transforms(self, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """End-effector rotation (N, 3, 3) and position (N, 3) for joint positions ``q``
        (N, D) or (D,), in action order."""
        q = np.asarray(q, dtype=np.float64)
        if q.ndim == 1:
            q = q[None, :]
        if q.ndim != 2 or q.shape[1] != self.dim:
            raise ValueError(f"expected joint positions (N, {self.dim}), got shape {q.shape}")
        chain = self._compiled
        value = q[:, chain.index] * chain.multiplier + chain.offset  # (N, J)
        per_joint = (
            chain.constant
            + np.sin(value)[:, :, None, None] * chain.sine
            + (1.0 - np.cos(value))[:, :, None, None] * chain.versine
            + value[:, :, None, None] * chain.linear
        )  # (N, J, 4, 4)
        pose = np.broadcast_to(chain.end, (q.shape[0], 4, 4))
        for j in range(per_joint.shape[1] - 1, -1, -1):
            pose = per_joint[:, j] @ pose
        return pose[:, :3, :3], pose[:, :3, 3]

    def positions(self, q: np.ndarray) -> np.ndarray:
        """End-effector positions (N, 3) in metres, in the base link's frame."""
        return self.transforms(q)[1]
