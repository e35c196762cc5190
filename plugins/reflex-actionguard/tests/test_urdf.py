"""Limits from a small franka-like URDF written for the test: revolute joints, a continuous
joint, a prismatic finger and a mimic finger."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from reflex_actionguard.limits import limits_from_urdf
from reflex_actionguard.urdf import limits_for_joints, parse_urdf_joints

from reflex_core.errors import ConfigError

# panda_joint1..6, each from panda_link<i-1> to panda_link<i>: (lower, upper, velocity, effort)
REVOLUTE = [
    (-2.8973, 2.8973, 2.175, 87),
    (-1.7628, 1.7628, 2.175, 87),
    (-2.8973, 2.8973, 2.175, 87),
    (-3.0718, -0.0698, 2.175, 87),
    (-2.8973, 2.8973, 2.61, 12),
    (-0.0175, 3.7525, 2.61, 12),
]
REVOLUTE_JOINTS = "".join(
    f"""  <joint name="panda_joint{i}" type="revolute">
    <parent link="panda_link{i - 1}"/><child link="panda_link{i}"/>
    <limit lower="{lower}" upper="{upper}" velocity="{velocity}" effort="{effort}"/>
  </joint>
"""
    for i, (lower, upper, velocity, effort) in enumerate(REVOLUTE, start=1)
)
URDF = f"""<?xml version="1.0"?>
<robot name="panda_like">
  <link name="panda_link0"/><link name="panda_link1"/><link name="panda_link2"/>
  <link name="panda_link3"/><link name="panda_link4"/><link name="panda_link5"/>
  <link name="panda_link6"/><link name="panda_link7"/><link name="panda_hand"/>
  <link name="panda_leftfinger"/><link name="panda_rightfinger"/>
{REVOLUTE_JOINTS}  <!-- a continuous wrist for the test: no position limit, velocity only -->
  <joint name="panda_joint7" type="continuous">
    <parent link="panda_link6"/><child link="panda_link7"/>
    <limit velocity="2.61" effort="12"/>
  </joint>
  <joint name="panda_hand_joint" type="fixed">
    <parent link="panda_link7"/><child link="panda_hand"/>
  </joint>
  <joint name="panda_finger_joint1" type="prismatic">
    <parent link="panda_hand"/><child link="panda_leftfinger"/>
    <limit lower="0.0" upper="0.04" velocity="0.2" effort="20"/>
  </joint>
  <joint name="panda_finger_joint2" type="prismatic">
    <parent link="panda_hand"/><child link="panda_rightfinger"/>
    <limit lower="0.0" upper="0.04" velocity="0.2" effort="20"/>
    <mimic joint="panda_finger_joint1" multiplier="-2.0" offset="0.1"/>
  </joint>
</robot>
"""

ARM = [f"panda_joint{i}" for i in range(1, 8)]


@pytest.fixture
def urdf(tmp_path: Path) -> Path:
    path = tmp_path / "panda_like.urdf"
    path.write_text(URDF)
    return path


def test_joints_are_parsed(urdf: Path) -> None:
    joints = parse_urdf_joints(urdf)
    assert joints["panda_joint7"].type == "continuous"
    assert joints["panda_finger_joint2"].mimic_of == "panda_finger_joint1"
    assert joints["panda_finger_joint2"].multiplier == -2.0
    assert joints["panda_hand_joint"].type == "fixed"


def test_limits_match_action_dimensions_by_name_not_order(urdf: Path) -> None:
    names = ["panda_joint4", "panda_joint1", "panda_finger_joint1"]
    limits = limits_for_joints(urdf, names)
    assert [j.name for j in limits] == names
    assert (limits[0].lower, limits[0].upper) == (-3.0718, -0.0698)
    assert (limits[1].lower, limits[1].upper, limits[1].max_velocity) == (-2.8973, 2.8973, 2.175)
    assert (limits[2].lower, limits[2].upper, limits[2].max_velocity) == (0.0, 0.04, 0.2)


def test_continuous_joint_has_velocity_but_no_position_limit(urdf: Path) -> None:
    (limit,) = limits_for_joints(urdf, ["panda_joint7"])
    assert limit.lower == -math.inf and limit.upper == math.inf
    assert limit.max_velocity == 2.61


def test_mimic_joint_takes_the_mimicked_limits_scaled(urdf: Path) -> None:
    (limit,) = limits_for_joints(urdf, ["panda_finger_joint2"])
    # q2 = -2 * q1 + 0.1 with q1 in [0, 0.04] -> q2 in [0.02, 0.1]; speed doubles
    assert limit.lower == pytest.approx(0.02)
    assert limit.upper == pytest.approx(0.1)
    assert limit.max_velocity == pytest.approx(0.4)
    assert "mimic" in limit.note


def test_mimic_chains_compose(tmp_path: Path) -> None:
    path = tmp_path / "chain.urdf"
    path.write_text(
        """<robot name="r">
        <joint name="a" type="prismatic"><limit lower="0" upper="1" velocity="1"/></joint>
        <joint name="b" type="prismatic"><limit lower="0" upper="1" velocity="1"/>
          <mimic joint="a" multiplier="2" offset="1"/></joint>
        <joint name="c" type="prismatic"><limit lower="0" upper="1" velocity="1"/>
          <mimic joint="b" multiplier="3"/></joint>
        </robot>"""
    )
    (c,) = limits_for_joints(path, ["c"])
    # c = 3 * (2a + 1) = 6a + 3, a in [0, 1]
    assert (c.lower, c.upper, c.max_velocity) == (3.0, 9.0, 6.0)


def test_unmatched_joints_are_all_named(urdf: Path) -> None:
    names = [*ARM, "gripper", "elbow_extra"]
    with pytest.raises(ConfigError) as info:
        limits_for_joints(urdf, names)
    err = info.value
    assert err.slug == "guard-urdf-unmatched-joints"
    assert "'gripper'" in err.message and "'elbow_extra'" in err.message
    assert err.details["unmatched"] == ["gripper", "elbow_extra"]
    assert "panda_finger_joint1" in err.details["urdf_joints"]


def test_a_fixed_joint_cannot_be_an_action_dimension(urdf: Path) -> None:
    with pytest.raises(ConfigError) as info:
        limits_for_joints(urdf, ["panda_hand_joint"])
    assert info.value.slug == "guard-urdf-joint-type"


@pytest.mark.parametrize(
    ("text", "slug"),
    [
        ("<robot", "guard-urdf-invalid"),
        ("<sdf></sdf>", "guard-urdf-invalid"),
        ('<robot><joint name="a" type="revolute"/></robot>', "guard-urdf-invalid"),
        (
            '<robot><joint name="a" type="revolute"><limit lower="x" upper="1"/></joint></robot>',
            "guard-urdf-invalid",
        ),
        (
            '<robot><joint name="a" type="revolute"><limit lower="1" upper="0" velocity="1"/>'
            "</joint></robot>",
            "guard-urdf-invalid",
        ),
        (
            '<robot><joint name="a" type="revolute"><limit lower="0" upper="1" velocity="0"/>'
            "</joint></robot>",
            "guard-urdf-invalid",
        ),
        (
            '<robot><joint name="a" type="prismatic"><mimic joint="b"/></joint>'
            '<joint name="b" type="prismatic"><mimic joint="a"/></joint></robot>',
            "guard-urdf-invalid",
        ),
        (
            '<robot><joint name="a" type="prismatic"><mimic joint="zz"/></joint></robot>',
            "guard-urdf-invalid",
        ),
    ],
)
def test_broken_urdfs_are_config_errors(tmp_path: Path, text: str, slug: str) -> None:
    path = tmp_path / "broken.urdf"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        limits_for_joints(path, ["a"])
    assert info.value.slug == slug


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        limits_for_joints(tmp_path / "nope.urdf", ["a"])
    assert info.value.slug == "guard-urdf-missing"


def test_joint_limits_from_urdf(urdf: Path) -> None:
    names = [*ARM, "panda_finger_joint1"]
    limits = limits_from_urdf(urdf, names, frequency_hz=10.0, gripper_idx=7)
    assert limits.dim == 8
    assert np.isinf(limits.lower[6]) and limits.max_velocity[6] == 2.61
    assert limits.upper[7] == 0.04
    np.testing.assert_allclose(limits.max_step[:2], [0.2175, 0.2175])


def test_urdf_velocity_limits_need_a_control_rate(urdf: Path) -> None:
    with pytest.raises(ConfigError) as info:
        limits_from_urdf(urdf, ARM, frequency_hz=None)
    assert info.value.slug == "guard-needs-control-rate"
