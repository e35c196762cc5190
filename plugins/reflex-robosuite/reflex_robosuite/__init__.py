"""reflex-robosuite: robosuite's single-arm Panda tasks (MuJoCo) as a ``reflex eval`` environment.

Registers the env ``robosuite`` (``reflex eval --env robosuite/Lift``; also ``Stack``,
``PickPlaceCan``, ``Door``) and the embodiment ``panda-robosuite``: the Franka Panda's 7 joints
as absolute position targets (robosuite's ``JOINT_POSITION`` controller, absolute input) and
the opening of one finger, at robosuite's 20 Hz. robosuite ships no scripted policy, so the env
has no ``expert``. Nothing imports robosuite or mujoco until an env is made.
"""

from __future__ import annotations

from reflex_core.plugin import EmbodimentSource, EnvSpec, registers
from reflex_robosuite import embodiment
from reflex_robosuite.env import HORIZON, TASKS, make

__version__ = "0.1.0"


reflex_register_embodiments = registers(
    EmbodimentSource(
        name="panda-robosuite",
        load=embodiment.panda_robosuite,
        description="Franka Panda in robosuite: 7 absolute joint targets + finger, 20 Hz",
    ),
)


reflex_register_envs = registers(
    EnvSpec(
        name="robosuite",
        make=make,
        embodiment="panda-robosuite",
        tasks=TASKS,
        default_task="Lift",
        expert=None,
        # robosuite's default horizon of each task: 1000 ticks, 50 s at 20 Hz
        max_steps=HORIZON,
        description="robosuite 1.5 (MuJoCo Panda, joint positions): Lift, Stack, "
        "PickPlaceCan, Door",
    ),
)
