"""The ``panda-robosuite`` embodiment: the Franka Emika Panda as robosuite 1.5 simulates it,
driven in joint space: 7 absolute joint-position targets (rad) and the opening of one finger
(m), at robosuite's 20 Hz.

Joint names, limits and the finger's convention are the ``franka`` preset's (the Panda's own:
``panda_joint1`` ... ``panda_joint7``, the limits of Franka's datasheet, which robosuite's Panda
MJCF repeats to the digit; ``panda_finger_joint1``, 0 = closed .. 0.04 = open), and so is the
kinematics block (the shipped ``franka_panda.urdf``, base ``panda_link0`` to ``panda_hand_tcp``).
robosuite's ``robot0_joint1`` ... ``robot0_joint7`` are those joints under its naming prefix.
What differs from ``franka``, and why this is an embodiment of its own:

- the control rate: robosuite steps MuJoCo in 2 ms substeps and a control tick must be a whole
  number of them: 20 Hz is its default (25 substeps); the preset's 15 Hz is not one (33
  substeps would be 66 ms, not 1/15 s);
- the cameras: robosuite's ``agentview`` (the front view robosuite and robomimic policies are
  trained on) and ``robot0_eye_in_hand`` (the wrist), not the preset's ``front`` / ``wrist``;
- the finger's speed: robosuite's Panda gripper moves its finger target by a fifth of the
  stroke per control tick (``PandaGripper.speed`` 0.2 of the normalized [-1, 1] command),
  i.e. 4 mm per 50 ms tick, 0.08 m/s, which is what ``max_gripper_velocity`` says.

The arm follows its targets through robosuite's own ``JOINT_POSITION`` controller with
``input_type: absolute`` (a computed-torque PD: the goal is the action as given, kp 50,
critically damped, gravity compensated, torques clipped to the motors' 80/12 N m), so
``action_space.kind`` is ``joint_position``: absolute joint targets. The velocity limits are
the real Panda's (2.175 rad/s for joints 1-4, 2.61 for 5-7, Franka's datasheet; robosuite's
MJCF has none, its motors' torque limits bound the speed).

The state is the same 8 values measured: the 7 joint positions and ``finger_joint1``'s
position (robosuite's ``robot0_joint_pos`` and ``robot0_gripper_qpos[0]``).
"""

from __future__ import annotations

from typing import Any

from reflex_core.eval.embodiment import joint_position_blocks

ARM_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8))
FINGER = "panda_finger_joint1"
JOINT_NAMES = [*ARM_JOINTS, FINGER]
# [rad]: Franka's datasheet, the ``franka`` preset, robosuite's robots/panda/robot.xml
ARM_LIMITS = (
    (-2.8973, 2.8973),
    (-1.7628, 1.7628),
    (-2.8973, 2.8973),
    (-3.0718, -0.0698),
    (-2.8973, 2.8973),
    (-0.0175, 3.7525),
    (-2.8973, 2.8973),
)
FINGER_RANGE = (0.0, 0.04)  # m: robosuite's grippers/panda_gripper.xml finger_joint1
ARM_VELOCITY = (2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61)  # rad/s, Franka's datasheet
ROBOSUITE_HZ = 20.0  # robosuite's default control_freq: 25 MuJoCo substeps of 2 ms
# robosuite's PandaGripper moves its normalized command by 0.2 (of [-1, 1]) per tick: a fifth
# of the half-stroke range, 0.004 m of finger travel per tick
FINGER_STEP_M = 0.2 * (FINGER_RANGE[1] - FINGER_RANGE[0]) / 2
FINGER_SPEED = FINGER_STEP_M * ROBOSUITE_HZ  # 0.08 m/s
# robosuite's Panda ``init_qpos`` (the pose every episode starts in, before its 0.02 rad
# gaussian initialization noise) and the finger half open, where robosuite's gripper starts
HOME = (0.0, 0.19635, 0.0, -2.61799, 0.0, 2.94159, 0.78540)
FINGER_HOME = 0.02
CAMERAS = ("agentview", "robot0_eye_in_hand")
CAMERA_RESOLUTION = 256  # robosuite's default camera_heights / camera_widths


def panda_robosuite() -> dict[str, Any]:
    """The embodiment document (see the module doc)."""
    return {
        "schema_version": 1,
        "embodiment": "panda-robosuite",
        "description": (
            "Franka Emika Panda in robosuite 1.5 (MuJoCo): 7 absolute joint-position targets "
            "(rad, panda_joint1..7, through robosuite's JOINT_POSITION controller) + "
            "panda_finger_joint1, the opening of one finger (m, 0 = closed, 0.04 = open). "
            "State: the same 8 values measured. 20 Hz."
        ),
        **joint_position_blocks(JOINT_NAMES, [*ARM_LIMITS, FINGER_RANGE], [*HOME, FINGER_HOME]),
        # the ``franka`` preset's: low values close, snapped to 0 (closed) or 0.04 (open)
        "gripper": {"component_idx": 7, "close_threshold": 0.5, "inverted": True},
        "cameras": [
            {
                "name": name,
                "resolution": [CAMERA_RESOLUTION, CAMERA_RESOLUTION],
                "fps": int(ROBOSUITE_HZ),
                "color_space": "rgb8",
            }
            for name in CAMERAS
        ],
        "control": {"frequency_hz": ROBOSUITE_HZ, "chunk_size": 50, "rtc_execution_horizon": 10},
        "constraints": {
            "max_ee_velocity": 1.7,  # the Panda's Cartesian limit (Franka's datasheet)
            "max_gripper_velocity": round(FINGER_SPEED, 6),
            "collision_check": False,
            "max_joint_velocity": [*ARM_VELOCITY, round(FINGER_SPEED, 6)],
        },
        "kinematics": {
            "urdf": "kinematics/franka_panda.urdf",
            "base_link": "panda_link0",
            "ee_link": "panda_hand_tcp",
        },
    }
