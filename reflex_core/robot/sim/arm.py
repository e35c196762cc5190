"""``SimArm``: a Franka Panda simulated by MuJoCo, behind the control loop's robot interface.

The model is ``assets/panda.xml`` (shipped with reflex-core): the Panda's kinematics, joint limits
and finger travel, position servos on every joint, a table and a block; MuJoCo steps the physics
and renders the cameras (``MUJOCO_GL=egl`` headless, set by default).

* joint targets are clipped into the embodiment's action ranges (counted in ``clipped``), and
  the servo setpoint moves toward the target no faster than the embodiment's
  ``max_joint_velocity`` (the Panda's own rate limits);
* one ``act`` advances the simulation by one control tick (``1 / frequency_hz``);
* ``observe()`` returns the joint state and one render per embodiment camera (``front`` and
  ``wrist`` are cameras of the model).

It can be saved to a JSON-able dict and restored (the shell examples keep it in a file between
commands). Needs ``mujoco`` (``reflex-core[sim]``).
"""

from __future__ import annotations

import atexit
import os
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from reflex_core.errors import ConfigError

# MuJoCo picks its GL platform when it is first imported: headless EGL unless told otherwise.
os.environ.setdefault("MUJOCO_GL", "egl")

MODEL_PATH = Path(__file__).with_name("assets") / "panda.xml"
DEFAULT_IMAGE_SCALE = 0.25  # a 640x480 camera renders at 160x120: ship small images
PANDA_JOINTS = tuple(f"panda_joint{i}" for i in range(1, 8)) + ("panda_finger_joint1",)

# Arms whose renderers are still open: closed before the interpreter tears EGL down (a GL
# context freed after MuJoCo's own exit hook terminated the display fails noisily). The hook is
# registered after MuJoCo's GL module is imported, so it runs first (atexit is last in, first out).
_LIVE: weakref.WeakSet[SimArm] = weakref.WeakSet()
_HOOKED = False


def _close_all() -> None:
    for arm in list(_LIVE):
        arm.close()


def _hook_exit() -> None:
    global _HOOKED
    if not _HOOKED:
        atexit.register(_close_all)
        _HOOKED = True


def load_model() -> Any:
    """The Panda scene as a ``mujoco.MjModel``."""
    try:
        import mujoco
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise ConfigError(
            "the simulated arm runs on MuJoCo: pip install 'reflex-core[sim]'",
            slug="sim-unavailable",
        ) from exc
    return mujoco.MjModel.from_xml_path(str(MODEL_PATH))


class SimArm:
    """The simulated Franka Panda for an embodiment whose joints are the Panda's.

    :param embodiment: an ``EmbodimentConfig`` naming ``panda_joint1..7`` and
        ``panda_finger_joint1`` (the ``franka`` preset): ranges, speeds, cameras, control rate.
    :param image_scale: rendered size relative to each camera's resolution.
    :param frequency_hz: control rate (default: the embodiment's).
    :param prompt: put into every observation when given.
    :param initial: joint positions to start from (default: the embodiment's mean action).
    """

    def __init__(
        self,
        embodiment: Any,
        *,
        image_scale: float = DEFAULT_IMAGE_SCALE,
        frequency_hz: float | None = None,
        prompt: str | None = None,
        initial: np.ndarray | None = None,
    ) -> None:
        names = list(embodiment.joint_names)
        if sorted(names) != sorted(PANDA_JOINTS):
            raise ConfigError(
                f"the simulated arm is a Franka Panda; embodiment {embodiment.name!r} has joints "
                f"{names} (expected {list(PANDA_JOINTS)})",
                slug="sim-embodiment-unsupported",
                field="embodiment",
            )
        self.embodiment = embodiment
        self.model = load_model()
        import mujoco

        self.data = mujoco.MjData(self.model)
        ranges = np.asarray(embodiment.action_ranges, dtype=np.float64)
        self.lower, self.upper = ranges[:, 0], ranges[:, 1]
        self.dim = int(embodiment.action_dim)
        self.frequency_hz = float(frequency_hz or embodiment.control.frequency_hz)
        self.dt = 1.0 / self.frequency_hz
        self.substeps = max(1, round(self.dt / self.model.opt.timestep))
        velocity = embodiment.constraints.max_joint_velocity
        self.max_velocity = (
            np.full(self.dim, np.inf) if velocity is None else np.asarray(velocity, np.float64)
        )
        # embodiment order -> the model's qpos addresses and actuators
        self._qpos = np.array([self.model.joint(n).qposadr[0] for n in names])
        self._ctrl = np.array([self.model.actuator(n).id for n in names])
        home = np.asarray(embodiment.normalization.mean_action, dtype=np.float64)[: self.dim]
        start = np.clip(home if initial is None else np.asarray(initial, np.float64),
                        self.lower, self.upper)  # fmt: skip
        self._set_joints(start)
        self.target = start.copy()
        self.setpoint = start.copy()
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
        known = {self.model.camera(i).name for i in range(self.model.ncam)}
        missing = [name for name, _, _ in self.cameras if name not in known]
        if missing:
            raise ConfigError(
                f"the simulated Panda has no camera {missing} (it has {sorted(known)})",
                slug="sim-camera-unknown",
            )
        self._renderers: dict[tuple[int, int], Any] = {}
        _LIVE.add(self)

    def _set_joints(self, q: np.ndarray) -> None:
        import mujoco

        self.data.qpos[self._qpos] = q
        finger2 = self.model.joint("panda_finger_joint2").qposadr[0]
        self.data.qpos[finger2] = self.data.qpos[self.model.joint("panda_finger_joint1").qposadr[0]]
        self.data.qvel[:] = 0.0
        self.data.ctrl[self._ctrl] = q
        mujoco.mj_forward(self.model, self.data)

    @property
    def q(self) -> np.ndarray:
        """Joint positions in the embodiment's order (rad, finger opening in m)."""
        return np.asarray(self.data.qpos[self._qpos], dtype=np.float64).copy()

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
        """One control tick: the servo setpoint moves toward the target within the speed limits,
        then the physics runs for the tick."""
        import mujoco

        limit = self.max_velocity * self.dt
        self.setpoint = self.setpoint + np.clip(self.target - self.setpoint, -limit, limit)
        self.data.ctrl[self._ctrl] = self.setpoint
        mujoco.mj_step(self.model, self.data, nstep=self.substeps)
        self.steps += 1

    def state(self) -> np.ndarray:
        """The proprioceptive state: joint positions, padded or cut to ``state_dim``."""
        size = int(self.embodiment.state_dim)
        out = np.zeros(size, dtype=np.float32)
        q = np.clip(self.q, self.lower, self.upper)
        out[: min(size, self.dim)] = q[:size]
        return out

    def render_camera(self, name: str, width: int, height: int) -> np.ndarray:
        """One uint8 RGB (height, width, 3) render of a camera of the model."""
        import mujoco

        renderer = self._renderers.get((width, height))
        if renderer is None:
            renderer = mujoco.Renderer(self.model, height, width)
            _hook_exit()
            self._renderers[(width, height)] = renderer
        renderer.update_scene(self.data, camera=name)
        return renderer.render().copy()

    def render(self) -> dict[str, np.ndarray]:
        """One render per embodiment camera."""
        return {name: self.render_camera(name, w, h) for name, w, h in self.cameras}

    def observe(self) -> dict[str, Any]:
        observation: dict[str, Any] = {"state": self.state(), "images": self.render()}
        if self.prompt is not None:
            observation["prompt"] = self.prompt
        return observation

    def tracking_error(self) -> float:
        """Largest distance between a joint and its target (robot units)."""
        return float(np.max(np.abs(self.target - self.q)))

    def close(self) -> None:
        """Free the renderers' GL contexts (call before the interpreter exits)."""
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()

    def __enter__(self) -> SimArm:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- persistence (the shell examples keep the arm in a file) ----------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "embodiment": self.embodiment.name,
            "q": self.q.tolist(),
            "target": self.target.tolist(),
            "setpoint": self.setpoint.tolist(),
            "steps": self.steps,
            "clipped": self.clipped,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], embodiment: Any, **kwargs: Any) -> SimArm:
        arm = cls(embodiment, initial=np.asarray(data["q"], dtype=np.float64), **kwargs)
        arm.target = np.clip(np.asarray(data["target"], dtype=np.float64), arm.lower, arm.upper)
        arm.setpoint = np.asarray(data.get("setpoint", data["q"]), dtype=np.float64)
        arm.steps = int(data.get("steps", 0))
        arm.clipped = int(data.get("clipped", 0))
        return arm
