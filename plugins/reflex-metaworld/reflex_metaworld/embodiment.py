"""The embodiments this plugin registers: the Rethink Sawyer in joint space, and the Sawyer as
Meta-World drives it (end-effector deltas through a mocap weld).

Joint names and limits are the Sawyer's own (``right_j0`` ... ``right_j6``; position and
velocity limits from Rethink's ``sawyer_description`` URDF, which Meta-World's MJCF repeats, with
``right_j1`` narrowed there to the workspace Meta-World uses). Meta-World never commands those
joints: its action is a 4-vector, the hand's displacement per control tick in units of
``action_scale`` = 1 cm (clipped to [-1, 1]) and a gripper effort in [-1 open, 1 close]; the arm
follows the hand through the weld. So ``sawyer-metaworld``'s action dimensions are those four,
and its state is Meta-World's state observation without the previous frame:
hand xyz (3), finger opening (1), object 1 pos + quat (7), object 2 pos + quat (7), goal xyz (3).
"""

from __future__ import annotations

from typing import Any

from reflex_core.eval.embodiment import joint_position_blocks

# right_j0..right_j6 [rad], from Rethink's sawyer_description URDF.
SAWYER_JOINTS = ["right_j0", "right_j1", "right_j2", "right_j3", "right_j4", "right_j5", "right_j6"]
SAWYER_LIMITS = [
    [-3.0503, 3.0503],
    [-3.8095, 2.2736],
    [-3.0426, 3.0426],
    [-3.0439, 3.0439],
    [-2.9761, 2.9761],
    [-2.9761, 2.9761],
    [-4.7124, 4.7124],
]
SAWYER_VELOCITY = [1.74, 1.328, 1.957, 1.957, 3.485, 3.485, 4.545]  # rad/s
# Meta-World's MJCF narrows right_j1 (the shoulder) to the table workspace.
METAWORLD_LIMITS = {"right_j1": [-3.8, -0.5]}
# The electric gripper's finger (Meta-World's r_close slide joint), metres.
FINGER = ("r_close", [0.0, 0.04])

STATE_LABELS = [
    "hand_x", "hand_y", "hand_z", "finger_opening",
    "obj1_x", "obj1_y", "obj1_z", "obj1_qw", "obj1_qx", "obj1_qy", "obj1_qz",
    "obj2_x", "obj2_y", "obj2_z", "obj2_qw", "obj2_qx", "obj2_qy", "obj2_qz",
    "goal_x", "goal_y", "goal_z",
]  # fmt: skip

# Meta-World: frame_skip 5 x timestep 2.5 ms = one control tick every 12.5 ms.
METAWORLD_HZ = 80.0


def sawyer() -> dict[str, Any]:
    """The Sawyer in joint space: 7 joint positions (rad) + the finger opening (m)."""
    home = [0.0, -1.18, 0.0, 2.18, 0.0, 0.57, 3.3161, 0.02]
    return {
        "schema_version": 1,
        "embodiment": "custom",
        "description": (
            "Rethink Sawyer: right_j0..right_j6 joint positions (rad, limits from Rethink's "
            "sawyer_description URDF) + r_close, the finger opening (m, 0 = closed, "
            "0.04 = open)."
        ),
        **joint_position_blocks([*SAWYER_JOINTS, FINGER[0]], [*SAWYER_LIMITS, FINGER[1]], home),
        "gripper": {"component_idx": 7, "close_threshold": 0.5, "inverted": True},
        "cameras": [
            {
                "name": "right_hand_camera",
                "resolution": [752, 480],
                "fps": 30,
                "color_space": "rgb8",
            },
            {"name": "head_camera", "resolution": [1280, 800], "fps": 30, "color_space": "rgb8"},
        ],
        "control": {"frequency_hz": 100, "chunk_size": 50, "rtc_execution_horizon": 25},
        "constraints": {
            "max_ee_velocity": 1.5,
            "max_gripper_velocity": 0.2,
            "collision_check": False,
            "max_joint_velocity": [*SAWYER_VELOCITY, 0.2],
        },
    }


def sawyer_metaworld() -> dict[str, Any]:
    """The Sawyer as Meta-World drives it (see the module doc)."""
    hand_mean, hand_std = [0.0, 0.7, 0.15], [0.2, 0.15, 0.1]
    quat_mean, quat_std = [0.0, 0.0, 0.0, 0.0], [1.0, 1.0, 1.0, 1.0]
    mean_state = [*hand_mean, 0.5, *hand_mean, *quat_mean, *hand_mean, *quat_mean, *hand_mean]
    std_state = [*hand_std, 0.5, *hand_std, *quat_std, *hand_std, *quat_std, *hand_std]
    return {
        "schema_version": 1,
        "embodiment": "custom",
        "description": (
            "Rethink Sawyer in Meta-World (MuJoCo), driven through the hand: actions are the "
            "hand's x/y/z displacement per 12.5 ms tick in cm (clipped to [-1, 1]) and the "
            "gripper effort (-1 open .. 1 close); the 21-value state is hand xyz, finger "
            "opening, object 1 and 2 position + quaternion, goal xyz (Meta-World's state "
            "observation without its previous-frame copy)."
        ),
        "joint_names": ["hand_dx", "hand_dy", "hand_dz", "gripper_effort"],
        # the hand's displacement per tick: an ee delta whose unit is 1 cm
        "action_space": {
            "type": "continuous",
            "kind": "ee_delta",
            "position_unit_m": 0.01,
            "dim": 4,
            "ranges": [[-1.0, 1.0]] * 4,
        },
        "normalization": {
            "mean_action": [0.0, 0.0, 0.0, 0.0],
            "std_action": [0.5, 0.5, 0.5, 1.0],
            "mean_state": mean_state,
            "std_state": std_state,
        },
        "gripper": {"component_idx": 3, "close_threshold": 0.5, "inverted": False},
        "cameras": [{"name": "corner", "resolution": [224, 224], "fps": 80, "color_space": "rgb8"}],
        "control": {"frequency_hz": METAWORLD_HZ, "chunk_size": 16, "rtc_execution_horizon": 8},
        "constraints": {
            # 1 cm per 12.5 ms tick at most (the action range), in m/s
            "max_ee_velocity": 0.8,
            "max_gripper_velocity": 0.2,
            "collision_check": False,
            "max_joint_velocity": None,
        },
    }
