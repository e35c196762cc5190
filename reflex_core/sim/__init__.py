"""A simulated robot for demos, examples and tests (NumPy only).

>>> from reflex_core.embodiments import EmbodimentConfig
>>> from reflex_core.sim import SimArm
>>> arm = SimArm(EmbodimentConfig.load_preset("franka"))
>>> observation = arm.observe()          # {"state": (8,), "images": {"wrist": ..., "front": ...}}
>>> arm.act(observation["state"])        # hold position for one control tick
"""

from reflex_core.sim.arm import SimArm
from reflex_core.sim.kinematics import arm_points
from reflex_core.sim.render import View, render_arm

__all__ = ["SimArm", "View", "arm_points", "render_arm"]
