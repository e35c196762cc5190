"""``@connect(url, embodiment=...)``: turn a robot class or a step function into a robot that
runs from a Reflex server.

The usual case, a class with ``observe()`` and ``act(action)``::

    @connect("http://127.0.0.1:8000", embodiment="franka", prompt="pick up the cube")
    class Arm:
        def observe(self) -> dict: ...          # {"state": ..., "images": {...}}
        def act(self, action) -> None: ...      # one (D,) target per control tick
        def safe_stop(self, reason, message):   # optional: called once on failure
            ...

    report = Arm().run(max_steps=300)

Or a function ``step(action) -> observation`` (called with ``None`` first)::

    @connect("http://127.0.0.1:8000", embodiment="franka")
    def step(action):
        if action is not None:
            send_targets(action)
        return {"state": read_joints(), "images": {"front": grab()}}

    report = step.run(max_steps=300)

Either way ``run`` opens an :class:`~reflex_core.robot.sdk.ActionStream`, runs the
:class:`~reflex_core.robot.control.loop.ControlLoop` at the embodiment's rate and horizon, and returns
its :class:`~reflex_core.robot.control.loop.LoopReport`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import attrs

from reflex_core.errors import ConfigError
from reflex_core.robot.control.clock import Clock
from reflex_core.robot.control.loop import ControlLoop, LoopReport, StreamChunkSource
from reflex_core.robot.control.merge import DEFAULT_MERGE, MergeFunction, merge_function
from reflex_core.robot.control.robot import FunctionRobot, StepFunction

T = TypeVar("T")


@attrs.frozen
class Connection:
    """The settings ``@connect`` captured; :meth:`run_robot` runs one session with them."""

    url: str
    embodiment: Any
    api_key: str | None = None
    prompt: str | None = None
    episode_id: str | None = None
    merge: str | MergeFunction = DEFAULT_MERGE
    frequency_hz: float | None = None
    execution_horizon: int | None = None
    request_timeout_s: float | None = 10.0
    transport: str = "auto"
    clock: Clock | None = None
    stream_options: dict[str, Any] = attrs.field(factory=dict)

    def run_robot(self, robot: Any, max_steps: int | None = None, **overrides: Any) -> LoopReport:
        from reflex_core.robot.sdk import ActionStream
        from reflex_core.robot.sdk.sansio import resolve_embodiment

        settings = attrs.evolve(self, **overrides) if overrides else self
        embodiment = resolve_embodiment(settings.embodiment)
        stream = ActionStream(
            settings.url,
            api_key=settings.api_key,
            prompt=settings.prompt,
            embodiment=embodiment,
            episode_id=settings.episode_id,
            transport=settings.transport,
            **settings.stream_options,
        )
        with stream:
            loop = ControlLoop.for_embodiment(
                robot,
                StreamChunkSource(stream, timeout_s=settings.request_timeout_s),
                embodiment,
                frequency_hz=settings.frequency_hz,
                execution_horizon=settings.execution_horizon,
                merge=settings.merge,
                clock=settings.clock,
            )
            return loop.run(max_steps)


class ConnectedStep:
    """A step function with a ``run`` method; calling it still calls the function."""

    def __init__(self, step: StepFunction, connection: Connection) -> None:
        functools.update_wrapper(self, step)
        self.step = step
        self.reflex = connection

    def __call__(self, action: Any) -> Any:
        return self.step(action)

    def run(self, max_steps: int | None = None, **overrides: Any) -> LoopReport:
        """Drive the function from the server for ``max_steps`` control ticks."""
        return self.reflex.run_robot(FunctionRobot(self.step), max_steps, **overrides)


def connect(
    url: str,
    *,
    embodiment: Any,
    api_key: str | None = None,
    prompt: str | None = None,
    episode_id: str | None = None,
    merge: str | MergeFunction = DEFAULT_MERGE,
    frequency_hz: float | None = None,
    execution_horizon: int | None = None,
    request_timeout_s: float | None = 10.0,
    transport: str = "auto",
    clock: Clock | None = None,
    **stream_options: Any,
) -> Callable[[T], T]:
    """Decorate a robot class (adds ``run(max_steps=None, **overrides)``) or a step function
    (returns a :class:`ConnectedStep`). See the module docstring.

    :param embodiment: a preset name, a JSON path or an ``EmbodimentConfig``: its control rate,
        execution horizon and state length are used (``frequency_hz`` / ``execution_horizon``
        override the first two).
    :param merge: ``latest_only``, ``weighted_average`` (default), ``average``,
        ``conservative`` or a callable ``(old, new) -> action``.
    :param stream_options: passed to :class:`~reflex_core.robot.sdk.ActionStream`.
    """
    merge_function(merge)  # an unknown name fails at decoration time, not mid-run
    connection = Connection(
        url=url,
        embodiment=embodiment,
        api_key=api_key,
        prompt=prompt,
        episode_id=episode_id,
        merge=merge,
        frequency_hz=frequency_hz,
        execution_horizon=execution_horizon,
        request_timeout_s=request_timeout_s,
        transport=transport,
        clock=clock,
        stream_options=dict(stream_options),
    )

    def decorate(target: Any) -> Any:
        if isinstance(target, type):
            missing = [m for m in ("observe", "act") if not callable(getattr(target, m, None))]
            if missing:
                raise ConfigError(
                    f"@connect: class {target.__name__} needs {' and '.join(missing)}()",
                    slug="connect-not-a-robot",
                )
            if "run" in vars(target):
                raise ConfigError(
                    f"@connect adds {target.__name__}.run(), which the class already defines",
                    slug="connect-name-clash",
                )

            def run(self: Any, max_steps: int | None = None, **overrides: Any) -> LoopReport:
                """Drive this robot from the server for ``max_steps`` control ticks."""
                return connection.run_robot(self, max_steps, **overrides)

            target.run = run
            target.reflex = connection
            return target
        if callable(target):
            return ConnectedStep(target, connection)
        raise ConfigError(
            f"@connect decorates a robot class or a step function, not {type(target).__name__}",
            slug="connect-not-a-robot",
        )

    return decorate
