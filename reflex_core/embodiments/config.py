"""The typed, validated view of one embodiment config, and ``--embodiment`` resolution."""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from reflex_core.embodiments.presets import preset_names, read_json_file, read_preset
from reflex_core.embodiments.validate import format_errors, validate_embodiment_config
from reflex_core.errors import ConfigError

if TYPE_CHECKING:
    from reflex_core.registry import Registry

log = logging.getLogger(__name__)


def _vector(values: Any) -> np.ndarray:
    # float64 keeps the limits exactly as written; read-only so a frozen config stays frozen.
    array = np.array(values, dtype=np.float64)
    array.setflags(write=False)
    return array


@attrs.frozen(eq=False)
class Normalization:
    """Stats that map normalized model values back to robot units: ``x = mean + std * y``."""

    mean_action: np.ndarray
    std_action: np.ndarray
    mean_state: np.ndarray
    std_state: np.ndarray


@attrs.frozen
class Gripper:
    """Which action dimension is the gripper and how to read it (see :mod:`.gripper`)."""

    component_idx: int
    close_threshold: float
    inverted: bool


@attrs.frozen
class Camera:
    """A camera stream the policy expects. ``resolution`` is ``(width, height)``."""

    name: str
    resolution: tuple[int, int]
    fps: float
    color_space: str


@attrs.frozen
class Control:
    """The robot's control loop: one action per tick at ``frequency_hz``."""

    frequency_hz: float
    chunk_size: int
    rtc_execution_horizon: int


@attrs.frozen(eq=False)
class Constraints:
    """Speed limits. ``max_joint_velocity`` is per action dimension, in its units per second."""

    max_ee_velocity: float
    max_gripper_velocity: float
    collision_check: bool
    max_joint_velocity: np.ndarray | None


@attrs.frozen(eq=False)
class EmbodimentConfig:
    """One robot, validated: build it with :meth:`load_preset`, :meth:`from_file` or
    :meth:`from_dict` (never directly: those run both validation layers).

    :ivar name: the preset / registered name, or the document's ``embodiment`` value.
    :ivar joint_names: one per action dimension, gripper included; ``action_<i>`` when the
        document has none (the field is optional in schema version 1).
    :ivar action_ranges: ``(action_dim, 2)`` hard limits ``[min, max]`` in robot units.
    :ivar raw: the validated document (a private copy; :meth:`to_dict` returns another).
    :ivar source: where it came from (``preset franka``, a file path), for messages and /health.
    """

    name: str
    schema_version: int
    action_dim: int
    state_dim: int
    joint_names: list[str]
    action_ranges: np.ndarray
    normalization: Normalization
    gripper: Gripper | None
    cameras: list[Camera]
    control: Control
    constraints: Constraints
    raw: dict[str, Any]
    source: str | None = None

    @property
    def camera_names(self) -> list[str]:
        return [camera.name for camera in self.cameras]

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls, data: Mapping[str, Any], *, name: str | None = None, source: str | None = None
    ) -> EmbodimentConfig:
        """Validate ``data`` and build the config.

        :raises ConfigError: slug ``embodiment-invalid``; ``details["issues"]`` lists every
            error and warning as ``{slug, severity, field, message}``.
        """
        raw = copy.deepcopy(dict(data)) if isinstance(data, Mapping) else data
        ok, issues = validate_embodiment_config(raw)
        label = source or (f"embodiment {name!r}" if name else "embodiment config")
        if not ok:
            errors = [i for i in issues if i.severity == "error"]
            raise ConfigError(
                f"{label} is invalid ({len(errors)} error{'s' if len(errors) != 1 else ''}):\n"
                + format_errors(issues),
                slug="embodiment-invalid",
                field="embodiment",
                details={"issues": [attrs.asdict(i) for i in issues], "source": label},
            )
        for issue in issues:
            log.warning("%s: %s", label, issue)
        return cls._build(raw, name=name, source=source)

    @classmethod
    def from_file(cls, path: str | Path) -> EmbodimentConfig:
        """Load and validate a JSON file (``--custom-embodiment-config PATH``)."""
        return cls.from_dict(read_json_file(path), source=str(path))

    @classmethod
    def load_preset(cls, name: str) -> EmbodimentConfig:
        """Load a preset shipped with reflex-core (``franka``, ``so100``, ``ur5``)."""
        return cls.from_dict(read_preset(name), name=name, source=f"preset {name}")

    @classmethod
    def _build(
        cls, raw: dict[str, Any], *, name: str | None, source: str | None
    ) -> EmbodimentConfig:
        action_space = raw["action_space"]
        dim = int(action_space["dim"])
        norm = raw["normalization"]
        gripper = raw.get("gripper")
        constraints = raw["constraints"]
        max_joint_velocity = constraints.get("max_joint_velocity")
        control = raw["control"]
        return cls(
            name=name or raw["embodiment"],
            schema_version=int(raw["schema_version"]),
            action_dim=dim,
            state_dim=len(norm["mean_state"]),
            joint_names=list(raw.get("joint_names") or [f"action_{i}" for i in range(dim)]),
            action_ranges=_vector(action_space["ranges"]),
            normalization=Normalization(
                mean_action=_vector(norm["mean_action"]),
                std_action=_vector(norm["std_action"]),
                mean_state=_vector(norm["mean_state"]),
                std_state=_vector(norm["std_state"]),
            ),
            gripper=None
            if gripper is None
            else Gripper(
                component_idx=int(gripper["component_idx"]),
                close_threshold=float(gripper["close_threshold"]),
                inverted=bool(gripper["inverted"]),
            ),
            cameras=[
                Camera(
                    name=c["name"],
                    resolution=(int(c["resolution"][0]), int(c["resolution"][1])),
                    fps=float(c["fps"]),
                    color_space=c["color_space"],
                )
                for c in raw["cameras"]
            ],
            control=Control(
                frequency_hz=float(control["frequency_hz"]),
                chunk_size=int(control["chunk_size"]),
                rtc_execution_horizon=int(control["rtc_execution_horizon"]),
            ),
            constraints=Constraints(
                max_ee_velocity=float(constraints["max_ee_velocity"]),
                max_gripper_velocity=float(constraints["max_gripper_velocity"]),
                collision_check=bool(constraints["collision_check"]),
                max_joint_velocity=None
                if max_joint_velocity is None
                else _vector(max_joint_velocity),
            ),
            raw=raw,
            source=source,
        )

    # -- output -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """The config document (a copy), as it would be written to JSON."""
        return copy.deepcopy(self.raw)


def load_embodiment(
    name: str | None = None,
    path: str | Path | None = None,
    registry: Registry | None = None,
) -> EmbodimentConfig | None:
    """Resolve ``--embodiment NAME`` or ``--custom-embodiment-config PATH``.

    :param name: a registered embodiment (``registry.embodiments``); without ``registry``, the
        presets shipped with reflex-core.
    :param path: a JSON file.
    :param registry: the plugin registry, so embodiments registered by plugins resolve too.
    :return: the config, or None when neither is given (the server then returns raw actions).
    :raises ConfigError: ``embodiment-unknown`` (message lists the known names),
        ``embodiment-invalid`` (message and ``details["issues"]`` list every issue),
        ``embodiment-file-not-found``, ``embodiment-conflict`` when both are given.
    """
    if name is not None and path is not None:
        raise ConfigError(
            "give --embodiment NAME or --custom-embodiment-config PATH, not both",
            slug="embodiment-conflict",
            field="embodiment",
        )
    if path is not None:
        return EmbodimentConfig.from_file(path)
    if name is None:
        return None
    if registry is None:
        return EmbodimentConfig.load_preset(name)
    source = registry.embodiments.get(name)
    if source is None:
        known = sorted(registry.embodiments)
        raise ConfigError(
            f"unknown embodiment {name!r}; registered embodiments: {', '.join(known) or '(none)'}",
            slug="embodiment-unknown",
            field="embodiment",
            details={"known": known},
        )
    owner = registry.owners.get(("embodiments", name), "?")
    document = source.load()
    return EmbodimentConfig.from_dict(
        document, name=name, source=f"embodiment {name!r} (plugin {owner})"
    )


def known_embodiments(registry: Registry | None = None) -> list[str]:
    """Names ``--embodiment`` accepts."""
    return sorted(registry.embodiments) if registry is not None else preset_names()
