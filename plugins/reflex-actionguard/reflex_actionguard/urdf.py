"""Joint limits from a URDF, matched to action dimensions by joint name.

Only the ``<joint>`` elements matter here: their ``type``, ``<limit lower upper velocity>`` and
``<mimic joint multiplier offset>``. Parsed with :mod:`xml.etree.ElementTree` (the standard
library; a URDF is a local file the operator chose, not untrusted network input).

* ``revolute`` / ``prismatic``: position limits ``[lower, upper]`` and a velocity limit.
* ``continuous``: no position limit (it spins freely), velocity limit only.
* a mimic joint (``q = multiplier * q_mimicked + offset``): its limits are the mimicked joint's,
  mapped through that relation (bounds swapped for a negative multiplier, velocity scaled by
  ``|multiplier|``); chains of mimics are followed.
* ``fixed``, ``floating``, ``planar`` have no single position to command: naming one as an
  action joint is an error.
"""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path

import attrs

from reflex_core.errors import ConfigError

ACTUATED_TYPES = ("revolute", "prismatic", "continuous")


@attrs.frozen
class UrdfJoint:
    """One joint as written in the URDF (before mimic resolution)."""

    name: str
    type: str
    lower: float | None
    upper: float | None
    velocity: float | None
    mimic_of: str | None = None
    multiplier: float = 1.0
    offset: float = 0.0


@attrs.frozen
class JointLimit:
    """Resolved limits of one joint: ``-inf``/``inf`` where the URDF sets none."""

    name: str
    lower: float
    upper: float
    max_velocity: float
    note: str  # how the limit was obtained, for /guard/status


def _float(element: ET.Element, attribute: str, joint: str, path: Path) -> float | None:
    raw = element.get(attribute)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(
            f"URDF {path}: joint {joint!r} has a non-numeric {element.tag} {attribute}={raw!r}",
            slug="guard-urdf-invalid",
        ) from None
    if math.isnan(value):
        raise ConfigError(
            f"URDF {path}: joint {joint!r} has {element.tag} {attribute}=NaN",
            slug="guard-urdf-invalid",
        )
    return value


def parse_urdf_joints(path: str | Path) -> dict[str, UrdfJoint]:
    """Every ``<joint>`` of a URDF file by name.

    :raises ConfigError: ``guard-urdf-missing`` (no such file), ``guard-urdf-invalid``
        (not XML, not a ``<robot>``, a joint without a name or with a malformed limit).
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"URDF file {path} does not exist", slug="guard-urdf-missing")
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError as exc:
        raise ConfigError(
            f"URDF {path} is not valid XML: {exc}", slug="guard-urdf-invalid"
        ) from exc
    if root.tag != "robot":
        raise ConfigError(
            f"URDF {path}: the root element is <{root.tag}>, expected <robot>",
            slug="guard-urdf-invalid",
        )
    joints: dict[str, UrdfJoint] = {}
    for element in root.iter("joint"):
        name = element.get("name")
        joint_type = element.get("type")
        if not name or not joint_type:
            raise ConfigError(
                f"URDF {path}: a <joint> without a name or type", slug="guard-urdf-invalid"
            )
        if name in joints:
            raise ConfigError(
                f"URDF {path}: joint {name!r} is defined twice", slug="guard-urdf-invalid"
            )
        limit = element.find("limit")
        mimic = element.find("mimic")
        lower = upper = velocity = None
        if limit is not None:
            # URDF: lower/upper default to 0 when a <limit> is present without them.
            lower = _float(limit, "lower", name, path)
            upper = _float(limit, "upper", name, path)
            velocity = _float(limit, "velocity", name, path)
            if joint_type in ("revolute", "prismatic"):
                lower = 0.0 if lower is None else lower
                upper = 0.0 if upper is None else upper
        multiplier, offset, mimic_of = 1.0, 0.0, None
        if mimic is not None:
            mimic_of = mimic.get("joint")
            if not mimic_of:
                raise ConfigError(
                    f"URDF {path}: joint {name!r} has a <mimic> without a joint",
                    slug="guard-urdf-invalid",
                )
            multiplier = _float(mimic, "multiplier", name, path)
            offset = _float(mimic, "offset", name, path)
            multiplier = 1.0 if multiplier is None else multiplier
            offset = 0.0 if offset is None else offset
        joints[name] = UrdfJoint(
            name=name,
            type=joint_type,
            lower=lower,
            upper=upper,
            velocity=velocity,
            mimic_of=mimic_of,
            multiplier=multiplier,
            offset=offset,
        )
    return joints


def _own_limit(joint: UrdfJoint, path: Path) -> JointLimit:
    if joint.type not in ACTUATED_TYPES:
        raise ConfigError(
            f"URDF {path}: joint {joint.name!r} is {joint.type}, which cannot be an action "
            f"dimension (only {', '.join(ACTUATED_TYPES)} joints can)",
            slug="guard-urdf-joint-type",
        )
    if joint.velocity is not None and not joint.velocity > 0:
        raise ConfigError(
            f"URDF {path}: joint {joint.name!r} has velocity limit {joint.velocity}; "
            "a limit must be > 0 (leave the attribute out for none)",
            slug="guard-urdf-invalid",
        )
    velocity = math.inf if joint.velocity is None else joint.velocity
    if joint.type == "continuous":
        return JointLimit(joint.name, -math.inf, math.inf, velocity, "urdf continuous")
    if joint.lower is None or joint.upper is None:
        raise ConfigError(
            f"URDF {path}: {joint.type} joint {joint.name!r} has no <limit> element",
            slug="guard-urdf-invalid",
        )
    if joint.lower > joint.upper:
        raise ConfigError(
            f"URDF {path}: joint {joint.name!r} has lower {joint.lower} > upper {joint.upper}",
            slug="guard-urdf-invalid",
        )
    return JointLimit(joint.name, joint.lower, joint.upper, velocity, f"urdf {joint.type}")


def resolve_limit(joints: dict[str, UrdfJoint], name: str, path: Path) -> JointLimit:
    """The limits of joint ``name``, following mimic relations to the joint that drives it."""
    chain = [name]
    multiplier, offset = 1.0, 0.0
    joint = joints[name]
    while joint.mimic_of is not None:
        source = joint.mimic_of
        if source not in joints:
            raise ConfigError(
                f"URDF {path}: joint {joint.name!r} mimics {source!r}, which does not exist",
                slug="guard-urdf-invalid",
            )
        if source in chain:
            raise ConfigError(
                f"URDF {path}: mimic cycle {' -> '.join([*chain, source])}",
                slug="guard-urdf-invalid",
            )
        # q_joint = m * q_source + o, composed along the chain
        offset = multiplier * joint.offset + offset
        multiplier = multiplier * joint.multiplier
        chain.append(source)
        joint = joints[source]
    base = _own_limit(joint, path)
    if len(chain) == 1:
        return base
    lo, hi = multiplier * base.lower + offset, multiplier * base.upper + offset
    if multiplier == 0:  # a mimic pinned at its offset
        lo = hi = offset
    elif multiplier < 0:
        lo, hi = hi, lo
    velocity = abs(multiplier) * base.max_velocity if multiplier != 0 else 0.0
    return JointLimit(
        name,
        lo,
        hi,
        velocity,
        f"urdf mimic of {chain[-1]!r} (x{multiplier:g} {'+' if offset >= 0 else '-'} {abs(offset):g})",
    )


def limits_for_joints(path: str | Path, joint_names: Sequence[str]) -> list[JointLimit]:
    """Limits for each action dimension, in order, matched by joint name.

    :raises ConfigError: ``guard-urdf-unmatched-joints`` naming every action joint the URDF does
        not define (and listing the actuated joints it does), plus the parse errors above.
    """
    path = Path(path)
    joints = parse_urdf_joints(path)
    missing = [name for name in joint_names if name not in joints]
    if missing:
        actuated = sorted(j.name for j in joints.values() if j.type in ACTUATED_TYPES)
        raise ConfigError(
            f"URDF {path} has no joint named {', '.join(repr(m) for m in missing)}; "
            f"its movable joints are: {', '.join(actuated) or 'none'}",
            slug="guard-urdf-unmatched-joints",
            details={"unmatched": missing, "urdf_joints": actuated},
        )
    return [resolve_limit(joints, name, path) for name in joint_names]
