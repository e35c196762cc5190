"""The gym-aloha env adapter: one bimanual task, stepped one 20 ms control tick at a time.

gym-aloha's ``AlohaEnv`` renders three 640x480 cameras on every step whatever is asked of it;
this adapter drives the same pieces underneath it instead (its MJCF scene, its dm-control task
with its reward, its seeded object placement) through dm-control's ``control.Environment``, and
renders only the cameras the served policy declares, with MuJoCo's own renderer
(``MUJOCO_GL=egl`` headless, the default set here) at the size asked, shadows and multisampling
off, which is what makes a frame cheap on a CPU.

A seed places the objects exactly as ``gym.make("gym_aloha/AlohaTransferCube-v0").reset(seed=S)``
does (gym-aloha's own ``sample_box_pose`` / ``sample_insertion_pose``), so a success rate here is
comparable with one measured through gym-aloha. Success is gym-aloha's: the task's reward reaches
its maximum, 4 (transfer-cube: the cube is held by the left gripper off the table; insertion: the
peg touches the pin inside the socket), at any tick. A command the simulation cannot follow
(dm-control's ``PhysicsError``) ends the episode as a failure
(:class:`~reflex_core.eval.env.EnvFailure`).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from reflex_aloha.embodiment import ALOHA_HZ
from reflex_core.eval.env import RenderedEnv, finite_command

# MuJoCo (and dm-control) pick their GL platform when first imported: headless EGL unless told.
os.environ.setdefault("MUJOCO_GL", "egl")

# task -> gym-aloha's joint-space scene (the end-effector variants are mocap-driven, not this
# embodiment's action space, and gym-aloha itself leaves them unimplemented)
SCENES = {
    "transfer_cube": "bimanual_viperx_transfer_cube.xml",
    "insertion": "bimanual_viperx_insertion.xml",
}
# the task strings of lerobot's ALOHA sim datasets (aloha_sim_*_human), which policies trained
# on them were prompted with
PROMPTS = {
    "transfer_cube": "Pick up the cube with the right arm and transfer it to the left arm.",
    "insertion": "Insert the peg into the socket.",
}
# the scene's cameras: ``top`` is the one ALOHA sim policies see (lerobot's datasets)
CAMERAS = ("top", "angle", "front_close", "left_wrist", "right_wrist", "left_pillar",
           "right_pillar")  # fmt: skip
VIDEO_CAMERA = "top"
STATE_DIM = 14


def _task(name: str) -> Any:
    """gym-aloha's dm-control task for ``name``, minus its per-step camera renders: the adapter
    renders what is asked, when it is asked."""
    from gym_aloha.tasks.sim import InsertionTask, TransferCubeTask

    base = TransferCubeTask if name == "transfer_cube" else InsertionTask

    class Task(base):  # type: ignore[misc, valid-type]
        def get_observation(self, physics: Any) -> dict[str, Any]:
            return {}

    return Task()


def place_objects(task: str, seed: int) -> np.ndarray:
    """The objects' free-joint poses (position + quaternion each) gym-aloha draws for ``seed``."""
    from gym_aloha.utils import sample_box_pose, sample_insertion_pose

    if task == "transfer_cube":
        return np.asarray(sample_box_pose(seed), dtype=np.float64)
    return np.concatenate(sample_insertion_pose(seed)).astype(np.float64)


class AlohaEnv(RenderedEnv):
    """:class:`reflex_core.eval.env.EnvAdapter` over one gym-aloha task."""

    label = "gym-aloha"
    video_camera = VIDEO_CAMERA

    frequency_hz = ALOHA_HZ

    def __init__(self, task: str, *, seed: int = 0, image_size: int = 64) -> None:
        from dm_control import mujoco as dm_mujoco
        from dm_control.rl import control
        from gym_aloha.constants import ASSETS_DIR, DT

        if task not in SCENES:
            raise ValueError(f"unknown gym-aloha task {task!r}; tasks: {', '.join(SCENES)}")
        super().__init__(task, PROMPTS[task], image_size)
        self.camera_names = CAMERAS
        physics = dm_mujoco.Physics.from_xml_path(str(ASSETS_DIR / SCENES[task]))
        # the scene's 4x multisampling and 4096-px shadow maps make a frame ~10x dearer on a CPU
        # (64 px: ~300 ms against ~30 ms, measured side by side)
        physics.model.ptr.vis.quality.offsamples = 0
        physics.model.ptr.vis.quality.shadowsize = 0
        self.physics = physics
        self._task = _task(task)
        self._env = control.Environment(
            physics, self._task, time_limit=float("inf"), control_timestep=DT,
            flat_observation=False,
        )  # fmt: skip
        self.frequency_hz = 1.0 / DT
        self._command = np.zeros(STATE_DIM)
        self.reset(seed)

    # -- episode ------------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        from gym_aloha.tasks.sim import BOX_POSE

        # gym-aloha hands the placement to its task through this module global
        BOX_POSE[0] = place_objects(self.task, int(seed))
        self._env.reset()
        self._command = self.state().astype(np.float64)  # the arms hold their start pose
        self._start_episode()

    def _step(self, command: np.ndarray) -> None:
        from dm_control.rl.control import PhysicsError

        from reflex_core.eval.env import EnvFailure

        try:
            step = self._env.step(command)
        except PhysicsError as exc:
            # The position actuators follow a target jump with no speed limit (the servos have
            # one): a jump across a joint's range can blow the simulation up. dm-control stops
            # there, as gym-aloha would; the episode is the policy's failure.
            raise EnvFailure(f"the simulation diverged: {exc}") from exc
        self._scored(step.reward, step.reward >= self._task.max_reward)

    def act(self, action: np.ndarray) -> None:
        command = finite_command(action, STATE_DIM)
        # Out-of-range targets are clipped by the actuators' ctrlrange, as the servos would.
        self._command = command
        self._step(command)

    def hold(self) -> None:
        """Position control: holding is re-sending the last targets."""
        self._step(self._command)

    # -- observation --------------------------------------------------------------------------

    def state(self) -> np.ndarray:
        """The 14 measured joint values (arm joints in rad, grippers as normalized opening)."""
        return np.asarray(self._task.get_qpos(self.physics), dtype=np.float32)

    def object_poses(self) -> np.ndarray:
        """The objects' free-joint poses now (gym-aloha's ``env_state``)."""
        return np.asarray(self._task.get_env_state(self.physics), dtype=np.float64)

    def _render(self, camera: str, size: int) -> np.ndarray:
        return self._render_mujoco(self.physics.model.ptr, self.physics.data.ptr, camera, size)

    def _close_sim(self) -> None:
        self.physics.free()


def make(task: str, *, seed: int = 0, image_size: int = 64) -> AlohaEnv:
    return AlohaEnv(task, seed=seed, image_size=image_size)
