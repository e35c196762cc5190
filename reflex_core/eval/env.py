"""The env adapter interface, and ``--env NAME/TASK`` resolution against the registry.

An env adapter (what an :class:`~reflex_core.plugin.registry.EnvSpec`'s ``make`` returns) is the
simulated robot of one task. It speaks its embodiment's language: ``observe()`` returns the
joint/proprioceptive ``state`` (length ``embodiment.state_dim``), camera renders named like the
embodiment's cameras, and the task prompt; ``act(action)`` applies one action in the
embodiment's units and advances the simulation by one control tick. When the simulation cannot
go on because of what the robot was commanded, ``act``/``hold`` raise :class:`EnvFailure`: the
episode ends there as a failure of the policy, not as an error of the harness.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from reflex_core.errors import ConfigError


class EnvFailure(Exception):
    """The simulated episode cannot go on because of the robot's commands, e.g. the physics
    diverged under a jump in joint targets that the simulated actuators follow with no speed
    limit. The episode ends unsuccessful with ``failure`` in its record (``error`` stays for
    failures of the harness: the server, the connection, a bug)."""


class EnvAdapter(Protocol):
    """One simulated task, stepped one control tick at a time.

    :ivar frequency_hz: the control rate the simulation steps at (one ``act`` = ``1/frequency_hz``
        simulated seconds); usually the embodiment's ``control.frequency_hz``.
    :ivar prompt: the task's language instruction.
    :ivar camera_names: the cameras ``observe`` can render.
    """

    frequency_hz: float
    prompt: str
    camera_names: Sequence[str]

    def reset(self, seed: int) -> None:
        """Start an episode; the seed fixes the task's randomization (object and goal poses)."""

    def observe(self, cameras: Sequence[str] = ()) -> Mapping[str, Any]:
        """``{"state": (state_dim,) float32, "images": {camera: (H, W, 3) uint8}, "prompt"}``,
        rendering only ``cameras``."""

    def act(self, action: np.ndarray) -> None:
        """Apply one action and advance one control tick.

        :raises EnvFailure: the simulation cannot go on (see :class:`EnvFailure`)."""

    def hold(self) -> None:
        """Advance one control tick without a new command (the robot holds; physics goes on).

        :raises EnvFailure: as ``act``."""

    @property
    def success(self) -> bool:
        """Has the task been achieved (at any tick so far)?"""

    @property
    def reward(self) -> float:
        """The reward of the last tick (0 when the simulator defines none)."""

    def render_frame(self, size: int) -> np.ndarray:
        """An (size, size, 3) uint8 view of the scene for the video."""

    def close(self) -> None:
        """Release the simulator."""


def finite_command(action: Any, dim: int, what: str = "joint targets") -> np.ndarray:
    """``action`` as a float64 vector of ``dim`` finite values, the check every adapter's ``act``
    starts with.

    :raises ValueError: ``expected {dim} finite {what}, got ...``.
    """
    command = np.asarray(action, dtype=np.float64).reshape(-1)
    if command.shape[0] != dim or not np.isfinite(command).all():
        raise ValueError(f"expected {dim} finite {what}, got {command}")
    return command


class RenderedEnv:
    """What the MuJoCo env adapters share: the observation (state, prompt, camera renders at
    ``image_size``, unknown cameras refused), the video frame, closing the renderers, the
    episode's ``success`` (sticky: once achieved it stays) and last ``reward``.

    A subclass sets ``label`` (for messages), ``video_camera`` and ``camera_names``, calls
    ``RenderedEnv.__init__`` (or sets ``task``, ``prompt``, ``image_size`` and ``_renderers``
    itself), and implements ``state()``, ``_render(camera, size)`` (:meth:`_render_mujoco`
    renders a MuJoCo scene) and ``_close_sim()``. Its ``reset`` calls :meth:`_start_episode`;
    its steps call :meth:`_scored`.
    """

    label: str
    camera_names: Sequence[str]
    video_camera: str
    task: str
    prompt: str
    image_size: int
    _renderers: dict[int, Any]
    _success = False
    _reward = 0.0

    def __init__(self, task: str, prompt: str, image_size: int) -> None:
        """``task`` and its language instruction; ``image_size``: the side of a camera render
        (0: no renders)."""
        self.task = task
        self.prompt = prompt
        self.image_size = int(image_size)
        self._renderers = {}  # size -> renderer

    @property
    def success(self) -> bool:
        return self._success

    @property
    def reward(self) -> float:
        return self._reward

    def _start_episode(self) -> None:
        self._success = False
        self._reward = 0.0

    def _scored(self, reward: float, success: bool) -> None:
        """One tick's reward and whether the task is achieved now; a success stays."""
        self._reward = float(reward)
        self._success = self._success or bool(success)

    def _render_mujoco(
        self, model: Any, data: Any, camera: str, size: int, scene_option: Any = None
    ) -> np.ndarray:
        """A ``size`` x ``size`` render of ``camera`` with MuJoCo's own renderer (one per size,
        kept in ``_renderers``), shadows, reflections and skybox off: what makes a frame cheap
        on a CPU."""
        import mujoco

        renderer = self._renderers.get(size)
        if renderer is None:
            renderer = self._renderers[size] = mujoco.Renderer(model, size, size)
        renderer.update_scene(data, camera=camera, scene_option=scene_option)
        for flag in (mujoco.mjtRndFlag.mjRND_SHADOW, mujoco.mjtRndFlag.mjRND_REFLECTION,
                     mujoco.mjtRndFlag.mjRND_SKYBOX):  # fmt: skip
            renderer.scene.flags[flag] = False
        return np.ascontiguousarray(renderer.render())

    def state(self) -> np.ndarray:
        raise NotImplementedError

    def _render(self, camera: str, size: int) -> np.ndarray:
        raise NotImplementedError

    def _close_sim(self) -> None:
        raise NotImplementedError

    def observe(self, cameras: Sequence[str] = ()) -> dict[str, Any]:
        unknown = [c for c in cameras if c not in self.camera_names]
        if unknown:
            raise ValueError(
                f"{self.label} has no camera {unknown}; cameras: {', '.join(self.camera_names)}"
            )
        images = {c: self._render(c, self.image_size) for c in cameras if self.image_size > 0}
        observation: dict[str, Any] = {"state": self.state(), "prompt": self.prompt}
        if images:
            observation["images"] = images
        return observation

    def render_frame(self, size: int) -> np.ndarray:
        return self._render(self.video_camera, size)

    def __enter__(self) -> RenderedEnv:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        for renderer in self._renderers.values():
            renderer.close()
        self._renderers.clear()
        self._close_sim()


def split_env_name(text: str) -> tuple[str, str | None]:
    """``metaworld/reach-v3`` -> (``metaworld``, ``reach-v3``); ``metaworld`` -> (name, None)."""
    name, _, task = text.partition("/")
    return name.strip(), (task.strip() or None)


def resolve_env(registry: Any, text: str) -> tuple[Any, str]:
    """The registered :class:`~reflex_core.plugin.registry.EnvSpec` and the task ``text`` names.

    :raises ConfigError: ``env-unknown`` / ``env-task-unknown`` listing what is registered.
    """
    name, task = split_env_name(text)
    spec = registry.envs.get(name)
    if spec is None:
        known = sorted(registry.envs)
        listed = ", ".join(known) or "(none: install an env plugin, e.g. reflex-metaworld)"
        raise ConfigError(
            f"unknown env {name!r}; registered envs: {listed}",
            slug="env-unknown",
            field="env",
            details={"known": known},
        )
    task = task or spec.default_task
    if task is None:
        raise ConfigError(
            f"env {name!r} needs a task: --env {name}/TASK", slug="env-task-unknown", field="env"
        )
    if spec.tasks and task not in spec.tasks:
        raise ConfigError(
            f"env {name!r} has no task {task!r}; tasks: {', '.join(spec.tasks)}",
            slug="env-task-unknown",
            field="env",
            details={"known": list(spec.tasks)},
        )
    return spec, task


def env_embodiment(registry: Any, spec: Any) -> Any:
    """The :class:`~reflex_core.embodiments.EmbodimentConfig` an env speaks."""
    from reflex_core.embodiments import load_embodiment

    return load_embodiment(name=spec.embodiment, registry=registry)
