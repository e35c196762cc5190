"""reflex-aloha: gym-aloha's bimanual ViperX tasks (MuJoCo) as a ``reflex eval`` environment.

Registers the env ``aloha`` (``reflex eval --env aloha/transfer_cube``; also ``insertion``) and
the embodiment ``aloha``: two ViperX 300 6DOF arms, 14 absolute joint-position targets (six
joints and a normalized gripper opening per arm) at 50 Hz, the same convention as the real
ALOHA and lerobot's ALOHA datasets. gym-aloha ships no scripted policy (ACT's scripted
transfer/insertion policies live in the ACT repository, not in the package), so the env has no
``expert``. Nothing imports gym-aloha, dm-control or mujoco until an env is made.
"""

from __future__ import annotations

from reflex_aloha import embodiment
from reflex_aloha.env import SCENES, make
from reflex_core.plugin import EmbodimentSource, EnvSpec, registers

__version__ = "0.1.0"

TASKS = tuple(SCENES)


reflex_register_embodiments = registers(
    EmbodimentSource(
        name="aloha",
        load=embodiment.aloha,
        description="ALOHA bimanual ViperX 300: 2 x (6 joints + gripper), 50 Hz",
    ),
)


reflex_register_envs = registers(
    EnvSpec(
        name="aloha",
        make=make,
        embodiment="aloha",
        tasks=TASKS,
        default_task="transfer_cube",
        expert=None,
        # gym-aloha registers its tasks with max_episode_steps=300: 6 s at 50 Hz
        max_steps=300,
        description="gym-aloha (MuJoCo bimanual ViperX): transfer_cube, insertion",
    ),
)
