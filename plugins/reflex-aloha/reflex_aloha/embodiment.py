"""The ALOHA embodiment: two Trossen ViperX 300 6DOF arms (Interbotix ``vx300s``) with their
grippers, 14 absolute joint-position targets at 50 Hz.

Order and units are ALOHA's (and gym-aloha's, and the lerobot ALOHA datasets'): the left arm's
six joints (rad), the left gripper, the right arm's six joints, the right gripper. A gripper
value is the finger opening normalized over the puppet gripper's travel
(0 = closed at 18.44 mm, 1 = open at 58 mm; gym-aloha's ``PUPPET_GRIPPER_POSITION_*``), an
absolute target like the joints. Joint limits are the ViperX's own (Interbotix's ``vx300s``
description: shoulder -106..72 deg, elbow -101..92 deg, wrist angle -107..128 deg, the rolls and
the waist +-180 deg), which gym-aloha's MJCF repeats; velocity limits are the description's
pi rad/s per joint.

The state is the same 14 values measured (gym-aloha's ``qpos`` / lerobot's ``agent_pos``).

The schema's ``gripper`` block names one snapped open/close dimension; ALOHA has two grippers
whose openings are continuous targets, so the block is null and both pass through as positions.
There is no ``kinematics`` block either (the schema names one chain, ALOHA has two end
effectors): ActionGuard's end-effector speed check cannot run on this embodiment and says so
(``guard-ee-velocity-unenforceable``) rather than skip it; its per-joint position and velocity
limits need no kinematics.
"""

from __future__ import annotations

from typing import Any

from reflex_core.eval.embodiment import joint_position_blocks

ARM_JOINTS = ("waist", "shoulder", "elbow", "forearm_roll", "wrist_angle", "wrist_rotate")
# [rad], Interbotix vx300s (the same numbers as gym-aloha's MJCF joint ranges).
ARM_LIMITS = (
    (-3.14158, 3.14158),
    (-1.85005, 1.25664),
    (-1.76278, 1.6057),
    (-3.14158, 3.14158),
    (-1.8675, 2.23402),
    (-3.14158, 3.14158),
)
ARM_VELOCITY = 3.14159  # rad/s, every arm joint of the vx300s description
GRIPPER_RANGE = (0.0, 1.0)  # normalized opening: 0 closed, 1 open
# normalized opening per second. The description publishes no limit for this normalized value;
# 10/s (a full stroke in 0.1 s, 5 ticks) only refuses jumps, not a fast close.
GRIPPER_VELOCITY = 10.0
# gym-aloha's START_ARM_POSE for one arm (rad), the pose every episode starts in
HOME = (0.0, -0.96, 1.16, 0.0, -0.3, 0.0)
ALOHA_HZ = 50.0  # gym-aloha's DT = 20 ms

SIDES = ("left", "right")
JOINT_NAMES = [f"{side}_{joint}" for side in SIDES for joint in (*ARM_JOINTS, "gripper")]


def _per_arm(arm: list[Any], gripper: Any) -> list[Any]:
    return [*arm, gripper, *arm, gripper]


def aloha() -> dict[str, Any]:
    """The embodiment document (see the module doc)."""
    return {
        "schema_version": 1,
        "embodiment": "aloha",
        "description": (
            "ALOHA: two ViperX 300 6DOF arms. 14 absolute joint-position targets: left "
            "waist, shoulder, elbow, forearm_roll, wrist_angle, wrist_rotate (rad), left gripper "
            "opening (0 closed .. 1 open), then the same for the right arm. State: the same 14 "
            "values measured. 50 Hz."
        ),
        **joint_position_blocks(
            JOINT_NAMES, _per_arm(list(ARM_LIMITS), GRIPPER_RANGE), _per_arm(list(HOME), 0.5)
        ),
        "gripper": None,  # two continuous grippers (module doc)
        "cameras": [
            {"name": "top", "resolution": [640, 480], "fps": 50, "color_space": "rgb8"},
        ],
        "control": {"frequency_hz": ALOHA_HZ, "chunk_size": 50, "rtc_execution_horizon": 25},
        "constraints": {
            "max_ee_velocity": 1.0,
            # GRIPPER_VELOCITY x the 39.56 mm travel, in m/s
            "max_gripper_velocity": 0.4,
            "collision_check": False,
            "max_joint_velocity": _per_arm([ARM_VELOCITY] * 6, GRIPPER_VELOCITY),
        },
    }
