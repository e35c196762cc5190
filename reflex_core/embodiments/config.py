"""The typed, validated view of one embodiment config, and ``--embodiment`` resolution."""

from __future__ import annotations

import copy
import functools
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import numpy as np

from reflex_core.embodiments.presets import (
    preset_names,
    presets_dir,
    read_json_file,
    read_preset,
)
from reflex_core.embodiments.validate import format_errors, validate_embodiment_config
from reflex_core.errors import ConfigError
from reflex_core.plugin.kit.chunks import JOINT_KINDS, JOINT_POSITION

if TYPE_CHECKING:
    from reflex_core.plugin.registry import Registry

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


@attrs.frozen
class Kinematics:
    """The URDF chain to the end effector (``kinematics`` in the document).

    :ivar urdf: the resolved file. :ivar base_link: / :ivar ee_link: the chain's ends.
    """

    urdf: Path
    base_link: str
    ee_link: str


def _resolve_urdf(text: str, base_dir: Path | None) -> Path:
    """An absolute path as is; a relative one next to the embodiment file, else among the
    shipped kinematics (the presets directory), else relative to the working directory."""
    path = Path(text)
    if path.is_absolute():
        return path
    candidates = [base_dir / path] if base_dir is not None else []
    try:
        candidates.append(presets_dir() / path)
    except ConfigError:
        pass
    candidates.append(Path.cwd() / path)
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(
        f"kinematics.urdf {text!r} not found (looked in: "
        + ", ".join(str(c.parent) for c in candidates)
        + ")",
        slug="embodiment-invalid",
        field="kinematics.urdf",
        details={
            "issues": [
                {
                    "slug": "kinematics-urdf-not-found",
                    "severity": "error",
                    "field": "kinematics.urdf",
                    "message": f"{text!r} not found",
                }
            ]
        },
    )


@functools.cache
def _chain(urdf: Path, base_link: str, ee_link: str, joint_names: tuple[str, ...]) -> Any:
    from reflex_core.embodiments.kinematics import KinematicChain

    return KinematicChain.from_urdf(urdf, base_link, ee_link, joint_names)


@attrs.frozen(eq=False)
class EmbodimentConfig:
    """One robot, validated: build it with :meth:`load_preset`, :meth:`from_file` or
    :meth:`from_dict` (never directly: those run both validation layers).

    :ivar name: the preset / registered name, or the document's ``embodiment`` value.
    :ivar joint_names: one per action dimension, gripper included; ``action_<i>`` when the
        document has none (the field is optional in schema version 1).
    :ivar action_ranges: ``(action_dim, 2)`` hard limits ``[min, max]`` in robot units.
    :ivar action_kind: what an action means (``action_space.kind``; ``joint_position``, the
        meaning of a document without it, ``joint_delta``, ``joint_velocity``, ``ee_pose``,
        ``ee_delta``, ``ee_velocity``); see :mod:`reflex_core.plugin.kit.chunks`.
    :ivar position_unit_m: metres per action unit of an ee kind's position dims (1 unless the
        policy was trained on scaled displacements).
    :ivar kinematics: the URDF chain to the end effector, or None.
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
    action_kind: str = JOINT_POSITION
    kinematics: Kinematics | None = None
    position_unit_m: float = 1.0

    @property
    def camera_names(self) -> list[str]:
        return [camera.name for camera in self.cameras]

    def kinematic_chain(self) -> Any:
        """The :class:`~reflex_core.embodiments.kinematics.KinematicChain` to the end effector, or None
        without a ``kinematics`` block (parsed once per process).

        :raises ConfigError: ``kinematics-invalid`` when the URDF does not give a chain whose
            moving joints are action dimensions.
        """
        if self.kinematics is None:
            return None
        k = self.kinematics
        return _chain(k.urdf, k.base_link, k.ee_link, tuple(self.joint_names))

    @property
    def joint_space(self) -> bool:
        """True when actions are joint-space (``joint_*`` kinds)."""
        return self.action_kind in JOINT_KINDS

    # -- constructors -------------------------------------------------------------------------

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        *,
        name: str | None = None,
        source: str | None = None,
        base_dir: str | Path | None = None,
    ) -> EmbodimentConfig:
        """Validate ``data`` and build the config.

        :param base_dir: where a relative ``kinematics.urdf`` is looked up first (the
            document's own directory).
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
        return cls._build(
            raw, name=name, source=source, base_dir=None if base_dir is None else Path(base_dir)
        )

    @classmethod
    def from_file(cls, path: str | Path) -> EmbodimentConfig:
        """Load and validate a JSON file (``--custom-embodiment-config PATH``)."""
        return cls.from_dict(read_json_file(path), source=str(path), base_dir=Path(path).parent)

    @classmethod
    def load_preset(cls, name: str) -> EmbodimentConfig:
        """Load a preset shipped with reflex-core (``franka``, ``so100``, ``ur5``)."""
        return cls.from_dict(
            read_preset(name), name=name, source=f"preset {name}", base_dir=presets_dir()
        )

    @classmethod
    def _build(
        cls,
        raw: dict[str, Any],
        *,
        name: str | None,
        source: str | None,
        base_dir: Path | None = None,
    ) -> EmbodimentConfig:
        action_space = raw["action_space"]
        kinematics = raw.get("kinematics")
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
            action_kind=str(action_space.get("kind", JOINT_POSITION)),
            position_unit_m=float(action_space.get("position_unit_m", 1.0)),
            kinematics=None
            if kinematics is None
            else Kinematics(
                urdf=_resolve_urdf(kinematics["urdf"], base_dir),
                base_link=kinematics["base_link"],
                ee_link=kinematics["ee_link"],
            ),
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
