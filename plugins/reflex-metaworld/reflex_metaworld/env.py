"""The Meta-World env adapter: one task, stepped one 12.5 ms control tick at a time.

Tasks are Meta-World's v3 set with the goal observable (the variant its scripted experts are
written for: the goal is part of the state). A seed fixes the object and goal placement.
Cameras are rendered with MuJoCo's own renderer (``MUJOCO_GL=egl`` headless, the default set
here) with shadows and reflections off, which is what makes a frame cheap on a CPU.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from reflex_core.eval.env import RenderedEnv, finite_command
from reflex_metaworld.embodiment import METAWORLD_HZ

# MuJoCo picks its GL platform when it is first imported: headless EGL unless told otherwise.
os.environ.setdefault("MUJOCO_GL", "egl")

# embodiment camera -> (MuJoCo camera, rotate 180 degrees): Meta-World's corner cameras render
# upside down in MuJoCo's image convention.
CAMERAS = {
    "corner": ("corner2", True),
    "top": ("topview", False),
    "gripper": ("behindGripper", False),
}
VIDEO_CAMERA = "corner"


def task_names() -> tuple[str, ...]:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    return tuple(ALL_V3_ENVIRONMENTS)


def prompt_for(task: str) -> str:
    """``pick-place-v3`` -> ``pick place``: the task's words as its instruction."""
    return task.rsplit("-v", 1)[0].replace("-", " ")


def state_from_obs(obs: np.ndarray) -> np.ndarray:
    """Meta-World's 39-value observation -> the embodiment's 21-value state."""
    obs = np.asarray(obs, dtype=np.float64)
    return np.concatenate([obs[:18], obs[36:39]]).astype(np.float32)


def obs_from_state(state: np.ndarray) -> np.ndarray:
    """The inverse, for a scripted expert: the previous frame is taken to be the current one."""
    state = np.asarray(state, dtype=np.float64)
    return np.concatenate([state[:18], state[:18], state[18:21]])


class MetaWorldEnv(RenderedEnv):
    """:class:`reflex_core.eval.env.EnvAdapter` over one Meta-World v3 task."""

    label = "Meta-World"
    video_camera = VIDEO_CAMERA

    frequency_hz = METAWORLD_HZ

    def __init__(self, task: str, *, seed: int = 0, image_size: int = 64) -> None:
        from metaworld.env_dict import ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE

        key = f"{task}-goal-observable"
        if key not in ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE:
            raise ValueError(f"unknown Meta-World task {task!r}")
        super().__init__(task, prompt_for(task), image_size)
        self.camera_names = tuple(CAMERAS)
        self.env = ALL_V3_ENVIRONMENTS_GOAL_OBSERVABLE[key](seed=seed)
        # Episode length is the caller's; Meta-World would refuse to step past its own 500.
        self.env.max_path_length = 1 << 30
        self.env.seeded_rand_vec = True
        self.frequency_hz = 1.0 / (self.env.frame_skip * self.env.model.opt.timestep)
        self._obs = np.zeros(39)
        self._gripper = -1.0

    # -- episode ------------------------------------------------------------------------------

    def reset(self, seed: int) -> None:
        env = self.env
        env.seed(int(seed))
        env._freeze_rand_vec = False  # draw this seed's object and goal placement
        self._obs, _ = env.reset()
        env._freeze_rand_vec = True
        self._gripper = -1.0
        self._start_episode()

    def _step(self, action: np.ndarray) -> None:
        obs, reward, _terminated, _truncated, info = self.env.step(action)
        self._obs = obs
        self._scored(reward, info.get("success", 0.0))

    def act(self, action: np.ndarray) -> None:
        command = np.clip(finite_command(action, 4, "actions (dx, dy, dz, grip)"), -1.0, 1.0)
        self._gripper = float(command[3])
        self._step(command.astype(np.float32))

    def hold(self) -> None:
        self._step(np.array([0.0, 0.0, 0.0, self._gripper], dtype=np.float32))

    # -- observation --------------------------------------------------------------------------

    def state(self) -> np.ndarray:
        return state_from_obs(self._obs)

    def _render(self, camera: str, size: int) -> np.ndarray:
        name, flip = CAMERAS[camera]
        image = self._render_mujoco(self.env.model, self.env.data, name, size)
        return np.ascontiguousarray(image[::-1, ::-1]) if flip else image

    def _close_sim(self) -> None:
        self.env.close()


def make(task: str, *, seed: int = 0, image_size: int = 64) -> MetaWorldEnv:
    return MetaWorldEnv(task, seed=seed, image_size=image_size)


def expert(task: str) -> Any:
    """Meta-World's scripted policy for ``task`` as ``state (21,) -> action (4,)``."""
    from metaworld.policies import ENV_POLICY_MAP

    policy = ENV_POLICY_MAP[task]()

    def act(state: np.ndarray) -> np.ndarray:
        import warnings

        with warnings.catch_warnings():
            # "Constant(s) may be too high": the policies' own gains, clipped by the env anyway
            warnings.simplefilter("ignore", UserWarning)
            action = policy.get_action(obs_from_state(state))
        return np.clip(np.asarray(action, dtype=np.float32), -1.0, 1.0)

    return act
