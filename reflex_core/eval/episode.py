"""One episode of a simulated task against a policy server -> one JSON record.

The episode runs through the robot-side stack unchanged: an
:class:`~reflex_core.robot.sdk.ActionStream` (WebSocket ``/ws``, HTTP fallback), a
:class:`~reflex_core.robot.control.StreamChunkSource` and the
:class:`~reflex_core.robot.control.ControlLoop` with the embodiment's rate, execution horizon and
chunk merge. Only the clock differs (:mod:`reflex_core.eval.simtime`): simulated, with each
chunk landing on the tick its measured latency says.

A tick without an action to execute (waiting for the first chunk, or starved) still advances the
simulation (``hold``): time does not stop for a robot waiting on its policy.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from reflex_core.eval.env import EnvFailure, env_embodiment, resolve_env, split_env_name
from reflex_core.eval.simtime import SimClock, SimTimeChunkSource


@attrs.define
class EpisodeConfig:
    """How episodes run (the client side of an evaluation; serve flags live on the server).

    :ivar env: ``NAME/TASK`` (``metaworld/reach-v3``).
    :ivar max_steps: episode length in control ticks (default: the env's ``max_steps``).
    :ivar image_size: side of the camera renders sent to the policy (only the cameras the
        served policy declares are rendered).
    :ivar merge: chunk overlap merge (see :mod:`reflex_core.robot.control.merge`).
    :ivar execution_horizon: ticks between requests (default: the embodiment's).
    :ivar stop_on_success: end the episode at the first successful tick.
    :ivar video_dir: write one video per episode there.
    :ivar video_every: one video frame every N ticks (default: about 20 frames per second of
        simulated time).
    """

    env: str
    max_steps: int | None = None
    image_size: int = 64
    merge: str = "weighted_average"
    execution_horizon: int | None = None
    stop_on_success: bool = True
    request_timeout_s: float = 30.0
    transport: str = "auto"
    api_key: str | None = None
    video_dir: Path | None = None
    video_format: str = "gif"
    video_every: int | None = None
    video_size: int = 192


class _EpisodeRobot:
    """The env adapter as the control loop's robot, plus the episode's bookkeeping."""

    def __init__(self, env: Any, cameras: Sequence[str], stop_on_success: bool) -> None:
        self.env = env
        self.cameras = list(cameras)
        self.stop_on_success = stop_on_success
        self.loop: Any = None
        self.acted = False
        self.total_reward = 0.0
        self.success_tick: int | None = None
        self.video: Any = None
        self.video_every = 1
        self.video_size = 192
        self.safe_stop_reason: str | None = None
        self.failure: str | None = None  # EnvFailure: the episode ended as the policy's failure

    def _fail(self, exc: EnvFailure) -> None:
        self.failure = str(exc) or type(exc).__name__
        self.loop.stop()

    # the robot interface -------------------------------------------------------------------

    def observe(self) -> Mapping[str, Any]:
        return self.env.observe(self.cameras)

    def act(self, action: np.ndarray) -> None:
        self.acted = True
        if self.failure is not None:
            return
        try:
            self.env.act(np.asarray(action, dtype=np.float32))
        except EnvFailure as exc:
            self._fail(exc)

    def safe_stop(self, reason: str, message: str) -> None:
        self.safe_stop_reason = reason

    # loop callbacks --------------------------------------------------------------------------

    def on_chunk(self, chunk: Mapping[str, Any]) -> None:
        if self.video is None:
            return
        metadata = chunk.get("metadata") or {}
        fallback = metadata.get("fallback")
        used = isinstance(fallback, Mapping) and bool(fallback.get("used"))
        self.video.chunk(self.loop.report.steps, used)

    def on_step(self, tick: int, report: Any) -> None:
        executed = tick - 1  # the tick that just ran
        if not self.acted and self.failure is None:
            try:
                self.env.hold()
            except EnvFailure as exc:
                self._fail(exc)
        self.acted = False
        if self.failure is not None:
            return  # the simulation is gone: no reward, success or frame from it
        self.total_reward += float(self.env.reward)
        if self.success_tick is None and self.env.success:
            self.success_tick = executed
        if self.video is not None and executed % self.video_every == 0:
            self.video.frame(
                self.env.render_frame(self.video_size),
                executed,
                self.env.frequency_hz,
                self.success_tick is not None,
            )
        if self.stop_on_success and self.success_tick is not None:
            self.loop.stop()


def _stats(values: Sequence[float]) -> dict[str, float | None]:
    if not values:
        return {"p50": None, "p99": None, "mean": None, "max": None}
    array = np.asarray(values, dtype=np.float64)
    return {
        "p50": float(np.percentile(array, 50)),
        "p99": float(np.percentile(array, 99)),
        "mean": float(array.mean()),
        "max": float(array.max()),
    }


class EpisodeRunner:
    """Runs episodes of one env task; keeps the simulator between episodes.

    :param config: the :class:`EpisodeConfig`.
    :param registry: the plugin registry (default: a plugin manager with every installed plugin,
        what a Ray worker builds for itself).
    """

    def __init__(self, config: EpisodeConfig, registry: Any = None) -> None:
        if registry is None:
            from reflex_core.plugin.manager import make_plugin_manager

            registry = make_plugin_manager().registry
        self.config = config
        self.spec, self.task = resolve_env(registry, config.env)
        self.embodiment = env_embodiment(registry, self.spec)
        self._env: Any = None

    @property
    def env(self) -> Any:
        if self._env is None:
            self._env = self.spec.make(self.task, seed=0, image_size=self.config.image_size)
        return self._env

    def close(self) -> None:
        if self._env is not None:
            self._env.close()
            self._env = None

    def run(
        self,
        server_url: str,
        *,
        index: int,
        seed: int,
        cameras: Sequence[str] = (),
        point: Mapping[str, Any] | None = None,
        worker: str | None = None,
    ) -> dict[str, Any]:
        """One episode; never raises for a failure inside it (the record says ``error``)."""
        from reflex_core.robot.control import ControlLoop, StreamChunkSource
        from reflex_core.robot.sdk import ActionStream

        config = self.config
        env = self.env
        env.reset(seed)
        max_steps = config.max_steps or self.spec.max_steps
        wanted = [c for c in cameras if c in env.camera_names]
        robot = _EpisodeRobot(env, wanted, config.stop_on_success)
        name, _ = split_env_name(config.env)
        label = f"{name}-{self.task}-{index:04d}-seed{seed}"
        if point:  # sweep points share seeds: keep their videos apart
            label += "-" + "-".join(f"{k}={v}" for k, v in sorted(point.items()))
        if config.video_dir is not None:
            from reflex_core.eval.video import VideoRecorder

            every = config.video_every or max(1, round(env.frequency_hz / 20))
            robot.video = VideoRecorder(
                path=Path(config.video_dir) / f"{label}.{config.video_format}",
                fps=env.frequency_hz / every,
                total_ticks=max_steps,
            )
            robot.video_every = every
            robot.video_size = config.video_size
        clock = SimClock()
        started = time.monotonic()
        cpu_started = time.process_time()
        error: str | None = None
        stream = ActionStream(
            server_url,
            embodiment=self.embodiment,
            prompt=env.prompt,
            episode_id=f"eval-{label}-{uuid.uuid4().hex[:6]}",
            transport=config.transport,
            api_key=config.api_key,
        )
        loop: Any = None
        try:
            with stream:
                source = SimTimeChunkSource(
                    StreamChunkSource(stream, timeout_s=config.request_timeout_s), clock
                )
                loop = ControlLoop.for_embodiment(
                    robot,
                    source,
                    self.embodiment,
                    frequency_hz=env.frequency_hz,
                    execution_horizon=config.execution_horizon,
                    merge=config.merge,
                    clock=clock,
                    on_chunk=robot.on_chunk,
                    on_step=robot.on_step,
                )
                robot.loop = loop
                loop.run(max_steps)
        except Exception as exc:  # the record carries it; the evaluation goes on
            error = f"{type(exc).__name__}: {exc}"
        wall = time.monotonic() - started
        # this process's CPU over the episode (simulation, renders, encoding, the SDK's threads):
        # what an episode costs the machine apart from the server, however loaded the box is
        cpu = time.process_time() - cpu_started
        video_path = robot.video.write() if robot.video is not None else None
        report = loop.report if loop is not None else None
        verdicts = dict(report.guard_verdicts) if report is not None else {}
        stop_reason = report.stop_reason if report is not None else None
        return {
            "type": "episode",
            "env": name,
            "task": self.task,
            "episode": index,
            "seed": seed,
            "point": dict(point or {}),
            "success": robot.success_tick is not None and error is None,
            "success_tick": robot.success_tick,
            "steps": report.steps if report is not None else 0,
            "sim_time_s": (report.steps if report is not None else 0) / env.frequency_hz,
            "return": robot.total_reward,
            "wall_s": wall,
            "cpu_s": cpu,
            "latency_ms": _stats(report.latency_ms if report else []),
            "latency_ticks": _stats(report.latency_ticks if report else []),
            "requests": report.requests_sent if report else 0,
            "chunks": report.chunks_received if report else 0,
            "actions_executed": report.actions_executed if report else 0,
            "starved_ticks": report.starved_ticks if report else 0,
            "stale_dropped": report.actions_stale_dropped if report else 0,
            "merged": report.actions_merged if report else 0,
            "guard": {
                "clamped": int(verdicts.get("clamped", 0)),
                "rejected": int(verdicts.get("rejected", 0)),
                "passed": int(verdicts.get("pass", 0)),
            },
            "fallbacks": report.fallbacks if report else 0,
            "stop_reason": "env_failure" if robot.failure is not None else stop_reason,
            "failure": robot.failure,
            "error": error,
            "server": server_url,
            "worker": worker,
            "video": str(video_path) if video_path is not None else None,
        }
