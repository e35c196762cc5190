"""The robosuite env adapter: one Panda task, stepped one 50 ms control tick at a time.

The task is robosuite's own environment (``robosuite.make(TASK, robots="Panda")``): its scene,
object placement, physics, reward and ``_check_success()``. Two things are chosen here:

- the controller: robosuite's ``JOINT_POSITION`` arm controller with ``input_type: absolute``
  (its other settings robosuite's defaults: kp 50, critically damped, gravity compensated), so
  an action's first 7 values are absolute joint targets, as the ``panda-robosuite`` embodiment
  declares; the 8th, the finger opening target (m), becomes robosuite's gripper command (-1
  open, +1 close, 0 stay): it moves the finger target toward the asked opening by robosuite's
  own gripper speed, 4 mm per tick, and stops there;
- the cameras: with ``use_camera_obs`` on, robosuite renders every camera observation at every
  control tick, with 4x multisampling and shadow maps: a 64-px view costs over 10x the tick's
  physics (~90 ms against 4-7 ms, measured). The adapter turns them
  off and renders only the cameras the served policy declares, when an observation is taken,
  with MuJoCo's own renderer (``MUJOCO_GL=egl`` headless, set here by default) at the size asked,
  the geoms robosuite shows (visual meshes, not collision geoms), shadows, reflections and
  multisampling off. Renders are upright (image row 0 at the top, the ``opencv`` convention),
  not robosuite's default ``opengl`` convention (upside down).

A seed fixes an episode's randomization (object placement, the arm's initial joint noise): the
env's random generator is put in the state ``numpy.random.default_rng(seed)`` starts in, then
robosuite resets (``hard_reset=False``: the scene is built once, not re-parsed every episode).
Success is ``env._check_success()`` at any tick. ``ignore_done``: the episode's length is the
evaluation's (``--max-steps``, default the task's horizon). A simulation MuJoCo cannot go on with
(``mjWARN_BADQPOS`` / ``BADQVEL`` / ``BADQACC``: a NaN, infinite or huge value, after which
MuJoCo resets the state on its own) ends the episode as a failure
(:class:`~reflex_core.eval.env.EnvFailure`).
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np

from reflex_core.eval.env import RenderedEnv, finite_command
from reflex_robosuite.embodiment import (
    ARM_LIMITS,
    FINGER_RANGE,
    FINGER_STEP_M,
    ROBOSUITE_HZ,
)

# MuJoCo picks its GL platform when first imported: headless EGL unless told.
os.environ.setdefault("MUJOCO_GL", "egl")

ROBOSUITE_VERSION = "1.5.2"
# task -> the language instruction sent as the prompt (robosuite has none of its own)
PROMPTS = {
    "Lift": "lift the red cube",
    "Stack": "stack the red cube on top of the green cube",
    "PickPlaceCan": "pick up the can and place it in its bin",
    "Door": "open the door",
}
TASKS = tuple(PROMPTS)
# robosuite 1.5.2's default ``horizon`` of every task above (a test reads it from their
# signatures): 1000 ticks, 50 s at 20 Hz
HORIZON = 1000
VIDEO_CAMERA = "agentview"
STATE_DIM = 8
INSTALL_HINT = (
    f"robosuite is not installed: pip install --no-deps robosuite=={ROBOSUITE_VERSION} "
    "(its mink pin needs numpy<2; see plugins/reflex-robosuite/README.md)"
)


def _diverged_warnings() -> tuple[Any, ...]:
    """MuJoCo's warnings for a simulation it had to reset (a position, velocity or acceleration
    that is NaN, infinite or past 1e10)."""
    import mujoco

    w = mujoco.mjtWarning
    return (w.mjWARN_BADQPOS, w.mjWARN_BADQVEL, w.mjWARN_BADQACC)


class _QuietRobosuite(logging.Filter):
    """robosuite logs at INFO for every env it makes (the controller file it loaded) and warns
    on import about what this adapter does not use (a private macro file, ``robosuite_models``,
    the mink whole-body IK for GR1): keep its other warnings and errors."""

    UNUSED = ("private macro file", "setup_macros.py", "robosuite_models", "mink-based")

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            return False
        if record.levelno == logging.WARNING:
            message = record.getMessage()
            return not any(text in message for text in self.UNUSED)
        return True


def import_robosuite() -> Any:
    """``robosuite``, imported with its known noise filtered (:class:`_QuietRobosuite`)."""
    logger = logging.getLogger("robosuite_logs")  # robosuite's DefaultLogger
    if not any(isinstance(f, _QuietRobosuite) for f in logger.filters):
        logger.addFilter(_QuietRobosuite())
    try:
        import robosuite
    except ModuleNotFoundError as exc:
        if exc.name != "robosuite":
            raise
        raise ModuleNotFoundError(INSTALL_HINT, name="robosuite") from exc
    return robosuite


def controller_config() -> dict[str, Any]:
    """robosuite's default composite controller for the Panda (``BASIC``) with its one arm on
    robosuite's ``JOINT_POSITION`` controller taking absolute targets, its input range the
    joints' limits; the gripper stays robosuite's ``GRIP``. The body parts the Panda does not
    have (``BASIC`` lists a left arm, torso, head, base and legs for every robot) are left out,
    which robosuite would otherwise warn about and drop."""
    robosuite = import_robosuite()
    config = robosuite.load_composite_controller_config(controller="BASIC", robot="Panda")
    arm = robosuite.load_part_controller_config(default_controller="JOINT_POSITION")
    arm.update(
        input_type="absolute",
        input_min=[low for low, _ in ARM_LIMITS],
        input_max=[high for _, high in ARM_LIMITS],
        gripper={"type": "GRIP"},
    )
    config["body_parts"] = {"right": arm}
    return config


class RobosuiteEnv(RenderedEnv):
    """:class:`reflex_core.eval.env.EnvAdapter` over one robosuite task with the Panda."""

    label = "robosuite"
    video_camera = VIDEO_CAMERA

    frequency_hz = ROBOSUITE_HZ

    def __init__(self, task: str, *, seed: int = 0, image_size: int = 64) -> None:
        if task not in PROMPTS:
            raise ValueError(f"unknown robosuite task {task!r}; tasks: {', '.join(TASKS)}")
        robosuite = import_robosuite()
        super().__init__(task, PROMPTS[task], image_size)
        self.env = robosuite.make(
            task,
            robots="Panda",
            controller_configs=controller_config(),
            control_freq=ROBOSUITE_HZ,
            has_renderer=False,
            has_offscreen_renderer=False,  # renders are this adapter's (module doc)
            use_camera_obs=False,
            ignore_done=True,
            hard_reset=False,
            seed=int(seed),
        )
        self.frequency_hz = 1.0 / self.env.control_timestep
        sim = self.env.sim
        self.model, self.data = sim.model._model, sim.data._data  # the raw mujoco structs
        # 4x multisampling and 4096-px shadow maps make a small frame ~2-6x dearer on a CPU
        self.model.vis.quality.offsamples = 0
        self.model.vis.quality.shadowsize = 0
        self.camera_names = tuple(self.model.camera(i).name for i in range(self.model.ncam))
        self.robot = self.env.robots[0]
        self.gripper = self.robot.gripper["right"]
        self._arm_qpos = [sim.model.get_joint_qpos_addr(j) for j in self.robot.robot_joints]
        self._finger_qpos = sim.model.get_joint_qpos_addr(self.gripper.joints[0])
        # what robosuite's own renderer shows (render_visual_mesh on, render_collision_mesh
        # off): its visual meshes are geom group 1, the collision geoms group 0
        import mujoco

        self._scene_option = mujoco.MjvOption()
        self._scene_option.geomgroup[0] = 0
        self._scene_option.geomgroup[1] = 1
        self._diverged = _diverged_warnings()
        self._arm_target = np.zeros(7)
        self._finger_target = 0.0
        self.reset(seed)

    # -- episode ------------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        # the placement samplers hold this generator: re-seed it in place
        self.env.rng.bit_generator.state = np.random.default_rng(int(seed)).bit_generator.state
        self.env.reset()
        self._arm_target = self.data.qpos[self._arm_qpos].copy()  # the arm holds its start pose
        self._finger_target = self.finger_command()  # and the finger its start target
        self._start_episode()

    def finger_command(self) -> float:
        """The finger position robosuite's gripper is commanding now (m): its normalized command
        (``current_action``, -1 closed .. 1 open for finger 1) over the finger's range."""
        low, high = FINGER_RANGE
        return float(low + (high - low) * (1.0 + self.gripper.current_action[0]) / 2.0)

    def gripper_action(self) -> float:
        """robosuite's gripper command that moves the finger toward ``_finger_target``: +1
        closes and -1 opens by one step (4 mm), 0 keeps it within half a step of the target."""
        error = self._finger_target - self.finger_command()
        if error < -FINGER_STEP_M / 2:
            return 1.0
        if error > FINGER_STEP_M / 2:
            return -1.0
        return 0.0

    def _step(self) -> None:
        from reflex_core.eval.env import EnvFailure

        before = [int(self.data.warning[w].number) for w in self._diverged]
        _, reward, _, _ = self.env.step(np.append(self._arm_target, self.gripper_action()))
        after = [int(self.data.warning[w].number) for w in self._diverged]
        if after != before:
            # MuJoCo resets the state of a diverged simulation on its own: the episode is over
            names = [
                w.name for w, a, b in zip(self._diverged, after, before, strict=True) if a != b
            ]
            raise EnvFailure(f"the simulation diverged (MuJoCo {', '.join(names)})")
        self._scored(reward, self.env._check_success())

    def act(self, action: np.ndarray) -> None:
        command = finite_command(action, STATE_DIM)
        # robosuite's controller takes the goal as given: MuJoCo's joint limits stop the arm
        # at its range, the motors' torque limits bound how fast it gets there
        self._arm_target = command[:7]
        self._finger_target = float(command[7])
        self._step()

    def hold(self) -> None:
        """Position control: holding is keeping the last targets."""
        self._step()

    # -- observation --------------------------------------------------------------------------

    def state(self) -> np.ndarray:
        """The 7 joint positions (rad) and finger 1's position (m), measured."""
        return np.append(self.data.qpos[self._arm_qpos], self.data.qpos[self._finger_qpos]).astype(
            np.float32
        )

    def _render(self, camera: str, size: int) -> np.ndarray:
        return self._render_mujoco(self.model, self.data, camera, size, self._scene_option)

    def _close_sim(self) -> None:
        self.env.close()


def make(task: str, *, seed: int = 0, image_size: int = 64) -> RobosuiteEnv:
    return RobosuiteEnv(task, seed=seed, image_size=image_size)
