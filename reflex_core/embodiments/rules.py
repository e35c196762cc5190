"""Layer 2 of validation: rules JSON Schema cannot express (lengths that must agree, indices
that must be in bounds, values that must be finite).

Each rule reads the document defensively: it runs on whatever parts have the right type, so a
schema violation in one section does not hide a rule violation in another. A rule that lacks
what it needs (say ``action_space.dim`` is a string) stays silent; the schema layer has already
reported that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

from reflex_core.embodiments.issues import EmbodimentIssue

Rule = Callable[[dict[str, Any]], Iterator[EmbodimentIssue]]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _section(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _list(section: dict[str, Any], key: str) -> list[Any] | None:
    value = section.get(key)
    return value if isinstance(value, list) else None


def _action_dim(doc: dict[str, Any]) -> int | None:
    dim = _section(doc, "action_space").get("dim")
    return dim if _is_int(dim) else None


def _error(slug: str, field: str, message: str) -> EmbodimentIssue:
    return EmbodimentIssue(slug, "error", field, message)


def action_ranges(doc: dict[str, Any]) -> Iterator[EmbodimentIssue]:
    dim = _action_dim(doc)
    ranges = _list(_section(doc, "action_space"), "ranges")
    if ranges is None:
        return
    if dim is not None and len(ranges) != dim:
        yield _error(
            "action-ranges-length-mismatch",
            "action_space.ranges",
            f"has {len(ranges)} [min, max] entries, action_space.dim is {dim}",
        )
    for i, pair in enumerate(ranges):
        if isinstance(pair, list) and len(pair) == 2 and all(map(_is_number, pair)):
            lo, hi = pair
            if lo >= hi:  # NaN compares False: left to non-finite-number
                yield _error(
                    "action-range-inverted",
                    f"action_space.ranges[{i}]",
                    f"min {lo} must be below max {hi}",
                )


def normalization_lengths(doc: dict[str, Any]) -> Iterator[EmbodimentIssue]:
    dim = _action_dim(doc)
    norm = _section(doc, "normalization")
    for key, slug in (
        ("mean_action", "norm-mean-action-length-mismatch"),
        ("std_action", "norm-std-action-length-mismatch"),
    ):
        values = _list(norm, key)
        if dim is not None and values is not None and len(values) != dim:
            yield _error(
                slug,
                f"normalization.{key}",
                f"has {len(values)} values, action_space.dim is {dim}",
            )
    mean_state = _list(norm, "mean_state")
    std_state = _list(norm, "std_state")
    if mean_state is not None and std_state is not None and len(mean_state) != len(std_state):
        yield _error(
            "norm-state-length-mismatch",
            "normalization.std_state",
            f"has {len(std_state)} values, normalization.mean_state has {len(mean_state)}",
        )


def mean_action_within_ranges(doc: dict[str, Any]) -> Iterator[EmbodimentIssue]:
    # A mean outside its own hard limits usually means two unit systems got mixed (stats in
    # degrees, limits in radians): loadable, but worth a look.
    ranges = _list(_section(doc, "action_space"), "ranges")
    means = _list(_section(doc, "normalization"), "mean_action")
    if ranges is None or means is None:
        return
    for i, (pair, mean) in enumerate(zip(ranges, means, strict=False)):
        if not (isinstance(pair, list) and len(pair) == 2 and all(map(_is_number, pair))):
            continue
        if _is_number(mean) and pair[0] < pair[1] and not pair[0] <= mean <= pair[1]:
            yield EmbodimentIssue(
                "norm-mean-action-outside-range",
                "warning",
                f"normalization.mean_action[{i}]",
                f"mean {mean} lies outside action_space.ranges[{i}] = {pair} "
                "(stats and limits in different units?)",
            )


def gripper_index(doc: dict[str, Any]) -> Iterator[EmbodimentIssue]:
    dim = _action_dim(doc)
    idx = _section(doc, "gripper").get("component_idx")
    if dim is not None and _is_int(idx) and idx >= dim:
        yield _error(
            "gripper-idx-out-of-range",
            "gripper.component_idx",
            f"{idx} is not an action dimension (0 to {dim - 1})",
        )


def camera_names(doc: dict[str, Any]) -> Iterator[EmbodimentIssue]:
    cameras = doc.get("cameras")
    if not isinstance(cameras, list):
        return
    seen: dict[str, int] = {}
    for i, camera in enumerate(cameras):
        name = camera.get("name") if isinstance(camera, dict) else None
        if not isinstance(name, str):
            continue
        if name in seen:
            yield _error(
                "duplicate-camera-name",
                f"cameras[{i}].name",
                f"camera name {name!r} is already used by cameras[{seen[name]}]",
            )
        else:
            seen[name] = i


def rtc_horizon(doc: dict[str, Any]) -> Iterator[EmbodimentIssue]:
    control = _section(doc, "control")
    horizon = control.get("rtc_execution_horizon")
    chunk = control.get("chunk_size")
    if _is_int(horizon) and _is_int(chunk) and horizon > chunk:
        yield _error(
            "rtc-horizon-exceeds-chunk",
            "control.rtc_execution_horizon",
            f"{horizon} actions cannot be executed from a chunk of {chunk}",
        )


def per_dimension_lists(doc: dict[str, Any]) -> Iterator[EmbodimentIssue]:
    dim = _action_dim(doc)
    if dim is None:
        return
    names = doc.get("joint_names")
    if isinstance(names, list) and len(names) != dim:
        yield _error(
            "joint-names-length-mismatch",
            "joint_names",
            f"has {len(names)} names, action_space.dim is {dim}",
        )
    velocities = _list(_section(doc, "constraints"), "max_joint_velocity")
    if velocities is not None and len(velocities) != dim:
        yield _error(
            "max-joint-velocity-length-mismatch",
            "constraints.max_joint_velocity",
            f"has {len(velocities)} limits, action_space.dim is {dim}",
        )


def ee_position_dims(doc: dict[str, Any]) -> Iterator[EmbodimentIssue]:
    # An end-effector action's dims 0-2 are its position part (the ee speed limit reads them).
    kind = _section(doc, "action_space").get("kind")
    if not (isinstance(kind, str) and kind.startswith("ee_")):
        return
    dim = _action_dim(doc)
    if dim is not None and dim < 3:
        yield _error(
            "ee-action-too-short",
            "action_space.dim",
            f"an {kind} action needs dims 0-2 for the position, action_space.dim is {dim}",
        )
    idx = _section(doc, "gripper").get("component_idx")
    if _is_int(idx) and idx < 3:
        yield _error(
            "ee-gripper-in-position",
            "gripper.component_idx",
            f"{idx} is one of dims 0-2, the position part of an {kind} action",
        )


def _numbers(value: Any, field: str) -> Iterator[tuple[str, float]]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _numbers(item, key if field == "(root)" else f"{field}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _numbers(item, f"{field}[{i}]")
    elif isinstance(value, float):
        yield field, value


def finite_numbers(doc: dict[str, Any]) -> Iterator[EmbodimentIssue]:
    # Python's json module accepts NaN and Infinity, and NaN passes every schema bound.
    for field, value in _numbers(doc, "(root)"):
        if not math.isfinite(value):
            yield _error("non-finite-number", field, f"{value} is not a finite number")


RULES: tuple[Rule, ...] = (
    finite_numbers,
    action_ranges,
    normalization_lengths,
    mean_action_within_ranges,
    gripper_index,
    camera_names,
    rtc_horizon,
    per_dimension_lists,
    ee_position_dims,
)


def rule_issues(doc: Any) -> list[EmbodimentIssue]:
    """Every cross-field finding in ``doc`` (errors and warnings), in rule order."""
    if not isinstance(doc, dict):
        return []
    return [issue for rule in RULES for issue in rule(doc)]
