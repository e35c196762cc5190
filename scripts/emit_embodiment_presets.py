#!/usr/bin/env python3
"""Write the shipped embodiment presets (embodiments/<name>.json) from the dicts below.

The JSON files are generated, never edited by hand: change a robot here, run this script, and
commit the script and the JSON together. ``--check`` writes nothing and exits 1 when a file
differs from what this script would write (the test suite runs it).

Each preset is a joint-position action space (``action_space.kind`` ``joint_position``): one
dimension per joint in radians (metres for a prismatic finger), gripper included, with the
robot's published joint limits, and a ``kinematics`` block naming the kinematics-only URDF in
``embodiments/kinematics/`` (sources and licenses in its README) from which ActionGuard
computes the end-effector speed it holds to ``constraints.max_ee_velocity``. The normalization
stats are derived from those limits (mean = centre of the range, std = a quarter of its width,
so the range maps to about [-2, 2] in normalized units); replace them with your dataset's stats
when you train on your own data.

Usage: python scripts/emit_embodiment_presets.py [--check] [--out-dir DIR]
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
# Validate against this checkout's code and schema, whatever reflex_core is installed.
sys.path.insert(0, str(REPO_ROOT))

from reflex_core.embodiments.validate import (  # noqa: E402
    format_errors,
    validate_embodiment_config,
)

DEFAULT_OUT_DIR = REPO_ROOT / "embodiments"

# (joint name, lower limit, upper limit, max velocity per second), in action order.
Joint = tuple[str, float, float, float]

# Franka Emika Panda (FER), franka_description URDF: 7 revolute joints + the hand's finger joint
# (per-finger opening 0..0.04 m, 0 = closed, 0.2 m/s).
FRANKA_JOINTS: list[Joint] = [
    ("panda_joint1", -2.8973, 2.8973, 2.1750),
    ("panda_joint2", -1.7628, 1.7628, 2.1750),
    ("panda_joint3", -2.8973, 2.8973, 2.1750),
    ("panda_joint4", -3.0718, -0.0698, 2.1750),
    ("panda_joint5", -2.8973, 2.8973, 2.6100),
    ("panda_joint6", -0.0175, 3.7525, 2.6100),
    ("panda_joint7", -2.8973, 2.8973, 2.6100),
    ("panda_finger_joint1", 0.0, 0.04, 0.2),
]

# Universal Robots UR5 / UR5e, Universal_Robots_ROS2_Description config/ur5{,e}/joint_limits.yaml:
# +-360 deg and 180 deg/s on every joint, elbow limited to +-180 deg there (the shoulder blocks
# the rest). Gripper: Robotiq 2F-85 "finger_joint" (robotiq description URDF: 0 = open,
# 0.8 rad = closed, 2.0 rad/s).
UR5_JOINTS: list[Joint] = [
    ("shoulder_pan_joint", -2 * math.pi, 2 * math.pi, math.pi),
    ("shoulder_lift_joint", -2 * math.pi, 2 * math.pi, math.pi),
    ("elbow_joint", -math.pi, math.pi, math.pi),
    ("wrist_1_joint", -2 * math.pi, 2 * math.pi, math.pi),
    ("wrist_2_joint", -2 * math.pi, 2 * math.pi, math.pi),
    ("wrist_3_joint", -2 * math.pi, 2 * math.pi, math.pi),
    ("finger_joint", 0.0, 0.8, 2.0),
]

# SO-ARM100 (LeRobot SO-100), TheRobotStudio/SO-ARM100 Simulation/SO100/so100.urdf: joint names
# and limits as in the URDF, 1 rad/s on every joint; the "gripper" joint moves the jaw, 0 rad is
# closed and 2.0 rad wide open.
SO100_JOINTS: list[Joint] = [
    ("shoulder_pan", -2.0, 2.0, 1.0),
    ("shoulder_lift", 0.0, 3.5, 1.0),
    ("elbow_flex", -3.14158, 0.0, 1.0),
    ("wrist_flex", -2.5, 1.2, 1.0),
    ("wrist_roll", -3.14158, 3.14158, 1.0),
    ("gripper", -0.2, 2.0, 1.0),
]


def _camera(name: str, width: int = 640, height: int = 480, fps: float = 30) -> dict[str, Any]:
    return {"name": name, "resolution": [width, height], "fps": fps, "color_space": "rgb8"}


def _stats(joints: list[Joint]) -> tuple[list[float], list[float]]:
    # Rounded so the JSON stays short and stable (binary float noise from (lo + hi) / 2).
    mean = [round((lo + hi) / 2, 6) for _, lo, hi, _ in joints]
    std = [round((hi - lo) / 4, 6) for _, lo, hi, _ in joints]
    return mean, std


def preset(
    slug: str,
    description: str,
    joints: list[Joint],
    *,
    gripper: dict[str, Any] | None,
    cameras: list[dict[str, Any]],
    control: dict[str, Any],
    max_ee_velocity: float,
    max_gripper_velocity: float,
    kinematics: dict[str, str],
) -> dict[str, Any]:
    """One embodiment document. The state vector is the same joint positions as the action."""
    mean, std = _stats(joints)
    return {
        "schema_version": 1,
        "embodiment": slug,
        "description": description,
        "joint_names": [name for name, *_ in joints],
        "action_space": {
            "type": "continuous",
            "kind": "joint_position",
            "dim": len(joints),
            "ranges": [[lo, hi] for _, lo, hi, _ in joints],
        },
        "normalization": {
            "mean_action": mean,
            "std_action": std,
            "mean_state": mean,
            "std_state": std,
        },
        "gripper": gripper,
        "cameras": cameras,
        "control": control,
        "constraints": {
            "max_ee_velocity": max_ee_velocity,
            "max_gripper_velocity": max_gripper_velocity,
            # Reflex runs no collision checker; the flag tells the robot-side stack to run its own.
            "collision_check": False,
            "max_joint_velocity": [velocity for *_, velocity in joints],
        },
        "kinematics": kinematics,
    }


PRESETS: dict[str, dict[str, Any]] = {
    "franka": preset(
        "franka",
        "Franka Emika Panda: 7 joint positions (rad) + panda_finger_joint1, the opening of one "
        "finger (m, 0 = closed, 0.04 = open).",
        FRANKA_JOINTS,
        gripper={"component_idx": 7, "close_threshold": 0.5, "inverted": True},
        cameras=[_camera("wrist"), _camera("front")],
        # 15 Hz as in DROID, the largest public Franka dataset pi0 / pi0.5 are tuned on.
        control={"frequency_hz": 15, "chunk_size": 50, "rtc_execution_horizon": 10},
        max_ee_velocity=1.7,  # Franka's documented Cartesian translation limit
        max_gripper_velocity=0.2,
        kinematics={
            "urdf": "kinematics/franka_panda.urdf",
            "base_link": "panda_link0",
            "ee_link": "panda_hand_tcp",
        },
    ),
    "so100": preset(
        "so100",
        "SO-ARM100 (LeRobot SO-100): 5 joint positions + the gripper jaw angle (rad, low = "
        "closed).",
        SO100_JOINTS,
        gripper={"component_idx": 5, "close_threshold": 0.5, "inverted": True},
        cameras=[_camera("front"), _camera("wrist")],
        # LeRobot records and replays SO-100 at 30 fps.
        control={"frequency_hz": 30, "chunk_size": 50, "rtc_execution_horizon": 25},
        # No published Cartesian limit: 1 rad/s joints at ~0.4 m reach; jaw tip ~0.1 m/s.
        max_ee_velocity=0.4,
        max_gripper_velocity=0.1,
        kinematics={"urdf": "kinematics/so100.urdf", "base_link": "base", "ee_link": "gripper"},
    ),
    "ur5": preset(
        "ur5",
        "Universal Robots UR5 / UR5e: 6 joint positions (rad) + Robotiq 2F-85 finger_joint "
        "(rad, 0 = open, 0.8 = closed).",
        UR5_JOINTS,
        gripper={"component_idx": 6, "close_threshold": 0.5, "inverted": False},
        cameras=[_camera("wrist"), _camera("front")],
        control={"frequency_hz": 10, "chunk_size": 50, "rtc_execution_horizon": 10},
        max_ee_velocity=1.0,  # UR5 / UR5e typical TCP speed, 1 m/s
        max_gripper_velocity=0.15,  # Robotiq 2F-85 closing speed, 20-150 mm/s
        kinematics={"urdf": "kinematics/ur5.urdf", "base_link": "base_link", "ee_link": "tool0"},
    ),
}


def render(document: dict[str, Any]) -> str:
    """The exact file content: sorted keys, 2-space indent, trailing newline."""
    return json.dumps(document, indent=2, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 on drift")
    parser.add_argument("--out-dir", type=Path, default=DEFAULT_OUT_DIR)
    args = parser.parse_args(argv)

    invalid = False
    for name, document in PRESETS.items():
        ok, issues = validate_embodiment_config(document)
        if issues:
            print(f"{name}:\n{format_errors(issues)}", file=sys.stderr)
        invalid |= not ok
    if invalid:
        print("refusing to write invalid presets", file=sys.stderr)
        return 1

    drift = []
    for name, document in sorted(PRESETS.items()):
        path = args.out_dir / f"{name}.json"
        content = render(document)
        current = path.read_text(encoding="utf-8") if path.is_file() else None
        if current == content:
            continue
        if args.check:
            drift.append(f"{path}: {'missing' if current is None else 'differs'}")
        else:
            path.write_text(content, encoding="utf-8")
            print(f"wrote {path}")
    stale = sorted(
        p for p in args.out_dir.glob("*.json") if p.name != "schema.json" and p.stem not in PRESETS
    )
    drift += [f"{p}: not produced by this script (remove it or add its dict)" for p in stale]
    if drift:
        print("embodiment presets out of date:\n  " + "\n  ".join(drift), file=sys.stderr)
        if args.check:
            print("run: python scripts/emit_embodiment_presets.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
