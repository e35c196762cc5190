"""reflex-metaworld: Meta-World's MuJoCo Sawyer tasks as a ``reflex eval`` environment.

Registers the env ``metaworld`` (``reflex eval --env metaworld/reach-v3``; every v3 task, goal
observable) and two embodiments: ``sawyer-metaworld`` (what the env speaks: hand deltas +
gripper effort, a 21-value state, an 80 Hz control rate) and ``sawyer`` (the arm in joint space,
Rethink's joint names and limits). Meta-World's scripted expert for each task is the env's
``expert``: ``reflex eval serve-expert --env metaworld/TASK`` serves it behind the wire protocol
to check the harness. Nothing imports metaworld or mujoco until an env is made.
"""

from __future__ import annotations

from reflex_core.plugin import EmbodimentSource, EnvSpec, registers
from reflex_metaworld import embodiment
from reflex_metaworld.env import expert, make

__version__ = "0.1.0"

# Meta-World v3 tasks (metaworld 3.1.1's ALL_V3_ENVIRONMENTS), listed here so that registering
# the env does not import the simulator; a test checks the list against the installed package.
TASKS = (
    "assembly-v3", "basketball-v3", "bin-picking-v3", "box-close-v3",
    "button-press-topdown-v3", "button-press-topdown-wall-v3", "button-press-v3",
    "button-press-wall-v3", "coffee-button-v3", "coffee-pull-v3", "coffee-push-v3",
    "dial-turn-v3", "disassemble-v3", "door-close-v3", "door-lock-v3", "door-open-v3",
    "door-unlock-v3", "hand-insert-v3", "drawer-close-v3", "drawer-open-v3",
    "faucet-open-v3", "faucet-close-v3", "hammer-v3", "handle-press-side-v3",
    "handle-press-v3", "handle-pull-side-v3", "handle-pull-v3", "lever-pull-v3",
    "pick-place-wall-v3", "pick-out-of-hole-v3", "pick-place-v3", "plate-slide-v3",
    "plate-slide-side-v3", "plate-slide-back-v3", "plate-slide-back-side-v3",
    "peg-insert-side-v3", "peg-unplug-side-v3", "soccer-v3", "stick-push-v3",
    "stick-pull-v3", "push-v3", "push-wall-v3", "push-back-v3", "reach-v3",
    "reach-wall-v3", "shelf-place-v3", "sweep-into-v3", "sweep-v3", "window-open-v3",
    "window-close-v3",
)  # fmt: skip


reflex_register_embodiments = registers(
    EmbodimentSource(
        name="sawyer-metaworld",
        load=embodiment.sawyer_metaworld,
        description="Sawyer as Meta-World drives it: hand deltas + gripper effort, 80 Hz",
    ),
    EmbodimentSource(
        name="sawyer",
        load=embodiment.sawyer,
        description="Rethink Sawyer, 7 joints + finger (URDF names and limits)",
    ),
)


reflex_register_envs = registers(
    EnvSpec(
        name="metaworld",
        make=make,
        embodiment="sawyer-metaworld",
        tasks=TASKS,
        default_task="reach-v3",
        expert=expert,
        max_steps=500,
        description="Meta-World v3 (MuJoCo Sawyer), goal observable; scripted experts",
    ),
)
