"""Forward kinematics over URDF joint origins, checked on real arm descriptions.

The Panda's URDF (embodiments/kinematics/franka_panda.urdf, from franka_description) is held to
Franka's own published kinematics, the modified Denavit-Hartenberg table of the FER arm (Franka
Control Interface documentation, "Robot and interface specifications"): an independent source,
written here as a product of DH transforms. The UR5 file is held to the standard DH chain it was
written from.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.embodiments.kinematics import KinematicChain, rpy_matrix
from reflex_core.errors import ConfigError

KINEMATICS = Path(__file__).resolve().parents[1] / "embodiments" / "kinematics"
PANDA = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1"]

# Franka FER, modified DH (Craig): a_{i-1} (m), d_i (m), alpha_{i-1} (rad); flange d = 0.107 m.
FRANKA_DH = [
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
]
UR5_DH = [  # standard DH: d_i, a_i, alpha_i (Universal Robots' published UR5 parameters)
    (0.089159, 0.0, math.pi / 2),
    (0.0, -0.425, 0.0),
    (0.0, -0.39225, 0.0),
    (0.10915, 0.0, math.pi / 2),
    (0.09465, 0.0, -math.pi / 2),
    (0.0823, 0.0, 0.0),
]


def _rx(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1]])


def _rz(a: float) -> np.ndarray:
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]])


def _tr(x: float, y: float, z: float) -> np.ndarray:
    out = np.eye(4)
    out[:3, 3] = (x, y, z)
    return out


def franka_dh_flange(q: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    for (a, d, alpha), theta in zip(FRANKA_DH, q[:7], strict=True):
        pose = pose @ _rx(alpha) @ _tr(a, 0, 0) @ _rz(theta) @ _tr(0, 0, d)
    return pose @ _tr(0, 0, 0.107)


def ur5_dh_flange(q: np.ndarray) -> np.ndarray:
    pose = np.eye(4)
    for (d, a, alpha), theta in zip(UR5_DH, q[:6], strict=True):
        pose = pose @ _rz(theta) @ _tr(0, 0, d) @ _tr(a, 0, 0) @ _rx(alpha)
    return pose


@pytest.fixture(scope="module")
def panda_flange() -> KinematicChain:
    return KinematicChain.from_urdf(
        KINEMATICS / "franka_panda.urdf", "panda_link0", "panda_link8", PANDA
    )


def test_panda_urdf_matches_frankas_published_dh_table(panda_flange: KinematicChain) -> None:
    rng = np.random.default_rng(0)
    q = rng.uniform(-2.9, 2.9, size=(500, 8))
    rotation, position = panda_flange.transforms(q)
    expected = np.stack([franka_dh_flange(row) for row in q])
    np.testing.assert_allclose(position, expected[:, :3, 3], atol=1e-12)
    np.testing.assert_allclose(rotation, expected[:, :3, :3], atol=1e-12)
    assert panda_flange.driven_dims == list(range(7))  # the finger does not move the flange


def test_panda_ready_pose_numbers() -> None:
    # libfranka's "ready" pose: q = (0, -pi/4, 0, -3pi/4, 0, pi/2, pi/4)
    q = np.array([0, -math.pi / 4, 0, -3 * math.pi / 4, 0, math.pi / 2, math.pi / 4, 0.04])
    emb = EmbodimentConfig.load_preset("franka")
    tcp = emb.kinematic_chain().positions(q)[0]
    flange = KinematicChain.from_urdf(
        KINEMATICS / "franka_panda.urdf", "panda_link0", "panda_link8", PANDA
    ).positions(q)[0]
    np.testing.assert_allclose(flange, [0.306891, 0.0, 0.590282], atol=1e-6)
    np.testing.assert_allclose(tcp, [0.306891, 0.0, 0.486882], atol=1e-6)  # 0.1034 m further


def test_panda_end_effector_speed_from_finite_differences() -> None:
    # joint 1 alone at 1 rad/s swings the TCP on a circle of its horizontal reach
    chain = EmbodimentConfig.load_preset("franka").kinematic_chain()
    q0 = np.array([0, -math.pi / 4, 0, -3 * math.pi / 4, 0, math.pi / 2, math.pi / 4, 0.0])
    dt = 1e-4
    q1 = q0.copy()
    q1[0] += 1.0 * dt
    p0, p1 = chain.positions(np.stack([q0, q1]))
    speed = np.linalg.norm(p1 - p0) / dt
    assert speed == pytest.approx(math.hypot(p0[0], p0[1]), rel=1e-4)  # 0.3069 m/s


def test_ur5_urdf_matches_the_dh_chain() -> None:
    names = [
        "shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint",
        "wrist_1_joint", "wrist_2_joint", "wrist_3_joint", "finger_joint",
    ]  # fmt: skip
    chain = KinematicChain.from_urdf(KINEMATICS / "ur5.urdf", "base_link", "tool0", names)
    rng = np.random.default_rng(1)
    q = rng.uniform(-math.pi, math.pi, size=(300, 7))
    expected = np.stack([ur5_dh_flange(row)[:3, 3] for row in q])
    np.testing.assert_allclose(chain.positions(q), expected, atol=1e-12)
    # all zeros: the arm stretched out along -x
    np.testing.assert_allclose(
        chain.positions(np.zeros(7))[0], [-0.81725, -0.19145, -0.005491], atol=1e-9
    )


def test_so100_chain_and_rpy_convention() -> None:
    emb = EmbodimentConfig.load_preset("so100")
    chain = emb.kinematic_chain()
    assert chain.driven_dims == [0, 1, 2, 3, 4]  # the jaw does not move the gripper frame
    # URDF rpy is fixed-axis XYZ: R = Rz(y) Ry(p) Rx(r)
    r, p, y = 0.3, -0.7, 1.1
    expected = (
        _rz(y)[:3, :3]
        @ np.array([[math.cos(p), 0, math.sin(p)], [0, 1, 0], [-math.sin(p), 0, math.cos(p)]])
        @ _rx(r)[:3, :3]
    )
    np.testing.assert_allclose(rpy_matrix(np.array([r, p, y])), expected, atol=1e-15)


def test_a_chain_that_does_not_fit_is_refused(tmp_path: Path) -> None:
    urdf = KINEMATICS / "franka_panda.urdf"
    with pytest.raises(ConfigError) as exc:
        KinematicChain.from_urdf(urdf, "panda_link0", "no_such_link", PANDA)
    assert exc.value.slug == "kinematics-invalid" and "no_such_link" in exc.value.message
    with pytest.raises(ConfigError) as exc:  # joint 4 moves the hand but is no action dimension
        KinematicChain.from_urdf(urdf, "panda_link0", "panda_hand_tcp", PANDA[:3])
    assert exc.value.slug == "kinematics-invalid" and "panda_joint4" in exc.value.message
    broken = tmp_path / "broken.urdf"
    broken.write_text("<robot><joint name='j'")
    with pytest.raises(ConfigError) as exc:
        KinematicChain.from_urdf(broken, "a", "b", ["j"])
    assert exc.value.slug == "kinematics-invalid"


def _urdf_joint_transform(origin_xyz, origin_rpy, axis, kind, value) -> np.ndarray:
    """One joint as URDF defines it, written out: origin (xyz, then fixed-axis rpy) times the
    joint's motion (a rotation about the axis by Rodrigues' formula, or a slide along it)."""
    out = _tr(*origin_xyz)
    out[:3, :3] = rpy_matrix(np.array(origin_rpy))
    motion = np.eye(4)
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    if kind == "prismatic":
        motion[:3, 3] = axis * value
    elif kind == "revolute":
        k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
        motion[:3, :3] = np.eye(3) + math.sin(value) * k + (1 - math.cos(value)) * (k @ k)
    return out @ motion


def test_prismatic_mimic_and_fixed_joints_compose_as_urdf_defines(tmp_path: Path) -> None:
    joints = [  # name, type, xyz, rpy, axis, mimic (joint, multiplier, offset)
        ("a", "revolute", (0.1, 0.2, 0.3), (0.3, -0.2, 0.7), (0.3, 0.5, 0.8), None),
        ("f", "fixed", (0.0, 0.1, 0.05), (1.0, 0.1, -0.4), (1, 0, 0), None),
        ("p", "prismatic", (0.2, 0.0, 0.0), (0.0, 0.5, 0.0), (0, 1, 1), None),
        ("m", "revolute", (0.0, 0.0, 0.1), (0.2, 0.0, 0.0), (1, 0, 0), ("a", -0.5, 0.1)),
        ("g", "fixed", (0.05, 0.05, 0.05), (0.0, 0.0, 1.2), (1, 0, 0), None),
    ]
    links = ["base", "l1", "l2", "l3", "l4", "ee"]
    body = []
    for (name, kind, xyz, rpy, axis, mimic), parent, child in zip(
        joints, links[:-1], links[1:], strict=True
    ):
        mimic_el = ""
        if mimic is not None:
            mimic_el = f'<mimic joint="{mimic[0]}" multiplier="{mimic[1]}" offset="{mimic[2]}"/>'
        body.append(
            f'<joint name="{name}" type="{kind}"><parent link="{parent}"/>'
            f'<child link="{child}"/><origin xyz="{" ".join(map(str, xyz))}" '
            f'rpy="{" ".join(map(str, rpy))}"/><axis xyz="{" ".join(map(str, axis))}"/>'
            f"{mimic_el}</joint>"
        )
    urdf = tmp_path / "chain.urdf"
    urdf.write_text(f"<robot name='t'>{''.join(body)}</robot>")
    chain = KinematicChain.from_urdf(urdf, "base", "ee", ["a", "p"])
    q = np.random.default_rng(3).uniform(-2.5, 2.5, (20, 2))
    rotation, position = chain.transforms(q)
    for i, (qa, qp) in enumerate(q):
        values = {"a": qa, "p": qp, "m": -0.5 * qa + 0.1}
        pose = np.eye(4)
        for name, kind, xyz, rpy, axis, _ in joints:
            pose = pose @ _urdf_joint_transform(xyz, rpy, axis, kind, values.get(name, 0.0))
        np.testing.assert_allclose(rotation[i], pose[:3, :3], atol=1e-12)
        np.testing.assert_allclose(position[i], pose[:3, 3], atol=1e-12)
