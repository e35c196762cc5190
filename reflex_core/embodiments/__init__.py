"""Per-robot embodiment configs: action space, normalization stats, gripper, cameras, control
loop and constraints, validated by a JSON Schema plus cross-field rules.

>>> from reflex_core.embodiments import EmbodimentConfig, load_embodiment
>>> cfg = EmbodimentConfig.load_preset("franka")
>>> cfg.action_dim, cfg.joint_names[0]
(8, 'panda_joint1')

See docs/embodiments.md for the fields, the error slugs and how to add a robot.
"""

from reflex_core.embodiments.config import (
    Camera,
    Constraints,
    Control,
    EmbodimentConfig,
    Gripper,
    Kinematics,
    Normalization,
    known_embodiments,
    load_embodiment,
)
from reflex_core.embodiments.gripper import apply_gripper, gripper_closed
from reflex_core.embodiments.issues import EmbodimentIssue
from reflex_core.embodiments.presets import preset_names, presets_dir
from reflex_core.embodiments.validate import format_errors, validate_embodiment_config

__all__ = [
    "Camera",
    "Constraints",
    "Control",
    "EmbodimentConfig",
    "EmbodimentIssue",
    "Gripper",
    "Kinematics",
    "Normalization",
    "apply_gripper",
    "format_errors",
    "gripper_closed",
    "known_embodiments",
    "load_embodiment",
    "preset_names",
    "presets_dir",
    "validate_embodiment_config",
]
