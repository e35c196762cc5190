"""A simulated robot for demos, examples and tests: a Franka Panda in MuJoCo.

>>> from reflex_core.embodiments import EmbodimentConfig
>>> from reflex_core.robot.sim import SimArm
>>> with SimArm(EmbodimentConfig.load_preset("franka")) as arm:
...     observation = arm.observe()      # {"state": (8,), "images": {"wrist": ..., "front": ...}}
...     arm.act(observation["state"])    # hold position for one control tick
"""

from reflex_core.robot.sim.arm import MODEL_PATH, PANDA_JOINTS, SimArm, load_model

__all__ = ["MODEL_PATH", "PANDA_JOINTS", "SimArm", "load_model"]
