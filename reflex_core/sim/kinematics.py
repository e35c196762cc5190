"""Forward kinematics for the simulated arm: joint angles -> 3-D points along the arm.

The Franka Panda uses its published modified Denavit-Hartenberg parameters (Craig's
convention: ``T_i = RotX(alpha) TransX(a) RotZ(theta) TransZ(d)``). Any other embodiment gets a
generic chain: a base yaw, then pitch joints with equal links, which is enough to draw it.
"""

from __future__ import annotations

import numpy as np

# (a, d, alpha) per joint, then the flange: the Panda's modified DH table (metres, radians).
PANDA_DH = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -np.pi / 2),
    (0.0, 0.316, np.pi / 2),
    (0.0825, 0.0, np.pi / 2),
    (-0.0825, 0.384, -np.pi / 2),
    (0.0, 0.0, np.pi / 2),
    (0.088, 0.0, np.pi / 2),
)
PANDA_FLANGE_D = 0.107 + 0.1034  # flange plus the hand, to the fingertips


def _modified_dh(a: float, d: float, alpha: float, theta: float) -> np.ndarray:
    ca, sa, ct, st = np.cos(alpha), np.sin(alpha), np.cos(theta), np.sin(theta)
    return np.array(
        [
            [ct, -st, 0.0, a],
            [st * ca, ct * ca, -sa, -d * sa],
            [st * sa, ct * sa, ca, d * ca],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def panda_points(q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Joint origins from the base to the fingertips (9, 3), and the hand's rotation (3, 3)."""
    transform = np.eye(4)
    points = [transform[:3, 3].copy()]
    for (a, d, alpha), theta in zip(PANDA_DH, q[:7], strict=True):
        transform = transform @ _modified_dh(a, d, alpha, float(theta))
        points.append(transform[:3, 3].copy())
    transform = transform @ _modified_dh(0.0, PANDA_FLANGE_D, 0.0, -np.pi / 4)
    points.append(transform[:3, 3].copy())
    return np.array(points), transform[:3, :3]


def chain_points(q: np.ndarray, reach: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """A generic arm: joint 0 yaws the base, the others pitch in the arm's vertical plane."""
    n = max(1, len(q))
    link = reach / n
    yaw = float(q[0]) if len(q) else 0.0
    heading = np.array([np.cos(yaw), np.sin(yaw), 0.0])
    points = [np.zeros(3), np.array([0.0, 0.0, link])]
    pitch = 0.0
    for angle in q[1:]:
        pitch += float(angle)
        step = link * (np.cos(pitch) * np.array([0.0, 0.0, 1.0]) + np.sin(pitch) * heading)
        points.append(points[-1] + step)
    direction = points[-1] - points[-2]
    norm = float(np.linalg.norm(direction)) or 1.0
    z = direction / norm
    x = np.cross([0.0, 0.0, 1.0], z)
    x = x / (np.linalg.norm(x) or 1.0) if np.linalg.norm(x) > 1e-9 else np.array([1.0, 0, 0])
    rotation = np.stack([x, np.cross(z, x), z], axis=1)
    return np.array(points), rotation


def arm_points(name: str, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Points along the arm and the end effector's rotation, for any embodiment."""
    if name == "franka" and len(q) >= 7:
        return panda_points(q)
    joints = q[:-1] if len(q) > 2 else q  # the last dimension is usually the gripper
    return chain_points(joints)
