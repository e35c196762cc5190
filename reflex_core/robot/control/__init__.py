"""Running a robot from action chunks: the control loop, chunk merging and ``@connect``.

>>> from reflex_core.robot.control import connect
>>> @connect("http://127.0.0.1:8000", embodiment="franka", prompt="pick up the cube")
... class Arm:
...     def observe(self): ...
...     def act(self, action): ...
>>> Arm().run(max_steps=300)

See :mod:`reflex_core.robot.control.loop` for what happens each tick, and
:mod:`reflex_core.robot.control.merge` for the merge functions.
"""

from reflex_core.robot.control.action_queue import ActionQueue, Integration
from reflex_core.robot.control.clock import Clock, FakeClock, MonotonicClock
from reflex_core.robot.control.decorator import ConnectedStep, Connection, connect
from reflex_core.robot.control.loop import (
    ChunkSource,
    ControlLoop,
    LoopReport,
    Robot,
    StreamChunkSource,
    failure_reason,
    stream_fields,
)
from reflex_core.robot.control.merge import MERGE_FUNCTIONS, merge_function
from reflex_core.robot.control.robot import FunctionRobot

__all__ = [
    "MERGE_FUNCTIONS",
    "ActionQueue",
    "ChunkSource",
    "Clock",
    "ConnectedStep",
    "Connection",
    "ControlLoop",
    "FakeClock",
    "FunctionRobot",
    "Integration",
    "LoopReport",
    "MonotonicClock",
    "Robot",
    "StreamChunkSource",
    "connect",
    "failure_reason",
    "merge_function",
    "stream_fields",
]
