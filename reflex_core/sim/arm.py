"""``SimArm``: a kinematic arm in NumPy that behaves enough like a real one to close the loop.

* joint targets are clipped into the embodiment's action ranges (counted in ``clipped``);
* each control tick the joints move toward the target with a first-order response
  (time constant ``time_constant_s``), no faster than the embodiment's ``max_joint_velocity``,
  and never out of range;
* ``observe()`` returns the joint state and one rendered image per embodiment camera.

It implements the control loop's robot interface (``observe`` / ``act``) and can be saved to a
JSON-able dict and restored (the shell examples keep it in a file between commands).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from reflex_core.sim.kinematics import arm_points
from reflex_core.sim.render import View, render_arm

DEFAULT_IMAGE_SCALE = 0.25  # a 640x480 camera renders at 160x120: ship small images


def _views(camera_names: list[str]) -> dict[str, View]:
    """A view per camera: the wrist camera looks down at the hand; the others alternate
    front (x right, z up), top (x right, y up) and side (y right, z up)."""
    cycle = [
        View((0, 2), np.array([0.3, 0.0, 0.5]), 1.6),
        View((0, 1), np.array([0.3, 0.0, 0.0]), 1.6),
        View((1, 2), np.array([0.0, 0.0, 0.5]), 1.6),
    ]
    views, i = {}, 0
    for name in camera_names:
        if "wrist" in name.lower():
            views[name] = View((0, 1), np.zeros(3), 0.5)  # recentred on the hand each frame
        else:
            views[name] = cycle[i % len(cycle)]
            i += 1
    return views


class SimArm:
    """A simulated arm for an embodiment (any: the Panda gets its real kinematics).

    :param embodiment: an ``EmbodimentConfig`` (ranges, speeds, cameras, control rate).
    :param time_constant_s: the joints' first-order response time constant.
    :param image_scale: rendered size relative to each camera's resolution.
    :param prompt: put into every observation when given.
    """

    def __init__(
        self,
        embodiment: Any,
        *,
        time_constant_s: float = 0.08,
        image_scale: float = DEFAULT_IMAGE_SCALE,
        frequency_hz: float | None = None,
        prompt: str | None = None,
        initial: np.ndarray | None = None,
    ) -> None:
        self.embodiment = embodiment
        ranges = np.asarray(embodiment.action_ranges, dtype=np.float64)
        self.lower, self.upper = ranges[:, 0], ranges[:, 1]
        self.dim = int(embodiment.action_dim)
        self.frequency_hz = float(frequency_hz or embodiment.control.frequency_hz)
        self.dt = 1.0 / self.frequency_hz
        self.time_constant_s = time_constant_s
        velocity = embodiment.constraints.max_joint_velocity
        self.max_velocity = (
            np.full(self.dim, np.inf) if velocity is None else np.asarray(velocity, np.float64)
        )
        home = np.asarray(embodiment.normalization.mean_action, dtype=np.float64)[: self.dim]
        start = home if initial is None else np.asarray(initial, dtype=np.float64)
        self.q = np.clip(start, self.lower, self.upper)
        self.target = self.q.copy()
        self.steps = 0
        self.clipped = 0  # commanded targets outside the joint ranges
        self.prompt = prompt
        self.image_scale = image_scale
        self.cameras = [
            (
                c.name,
                max(8, round(c.resolution[0] * image_scale)),
                max(8, round(c.resolution[1] * image_scale)),
            )
            for c in embodiment.cameras
        ]
        self._views = _views([name for name, _, _ in self.cameras])
        gripper = embodiment.gripper
        self.gripper_idx = None if gripper is None else int(gripper.component_idx)

    # -- the robot interface ----------------------------------------------------------------

    def act(self, action: Any) -> None:
        """Command joint targets for one control tick and advance the simulation by it."""
        command = np.asarray(action, dtype=np.float64).reshape(-1)[: self.dim]
        if command.shape[0] != self.dim or not np.isfinite(command).all():
            raise ValueError(f"expected {self.dim} finite joint targets, got {command.tolist()}")
        clipped = np.clip(command, self.lower, self.upper)
        if not np.array_equal(clipped, command):
            self.clipped += 1
        self.target = clipped
        self.step()

    def step(self) -> None:
        """One tick of the first-order, speed-limited response toward the target."""
        alpha = 1.0 - np.exp(-self.dt / self.time_constant_s)
        move = alpha * (self.target - self.q)
        limit = self.max_velocity * self.dt
        self.q = np.clip(self.q + np.clip(move, -limit, limit), self.lower, self.upper)
        self.steps += 1

    def state(self) -> np.ndarray:
        """The proprioceptive state: joint positions, padded or cut to the embodiment's
        ``state_dim``."""
        size = int(self.embodiment.state_dim)
        out = np.zeros(size, dtype=np.float32)
        out[: min(size, self.dim)] = self.q[:size]
        return out

    def render(self) -> dict[str, np.ndarray]:
        """One uint8 RGB image per camera."""
        points, hand = arm_points(self.embodiment.name, self.q)
        opening = None
        if self.gripper_idx is not None:
            lo, hi = self.lower[self.gripper_idx], self.upper[self.gripper_idx]
            opening = 0.04 * float((self.q[self.gripper_idx] - lo) / ((hi - lo) or 1.0))
        images = {}
        for name, width, height in self.cameras:
            view = self._views[name]
            if "wrist" in name.lower():
                view = View(view.axes, points[-1], view.span)
            images[name] = render_arm(points, opening, hand, view, width, height)
        return images

    def observe(self) -> dict[str, Any]:
        observation: dict[str, Any] = {"state": self.state(), "images": self.render()}
        if self.prompt is not None:
            observation["prompt"] = self.prompt
        return observation

    def tracking_error(self) -> float:
        """Largest distance between a joint and its target (robot units)."""
        return float(np.max(np.abs(self.target - self.q)))

    # -- persistence (the shell examples keep the arm in a file) ----------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "embodiment": self.embodiment.name,
            "q": self.q.tolist(),
            "target": self.target.tolist(),
            "steps": self.steps,
            "clipped": self.clipped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], embodiment: Any, **kwargs: Any) -> SimArm:
        arm = cls(embodiment, initial=np.asarray(data["q"], dtype=np.float64), **kwargs)
        arm.target = np.clip(np.asarray(data["target"], dtype=np.float64), arm.lower, arm.upper)
        arm.steps = int(data.get("steps", 0))
        arm.clipped = int(data.get("clipped", 0))
        return arm
