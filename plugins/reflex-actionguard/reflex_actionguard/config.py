"""``reflex serve`` options of the guard and the config class they structure into.

Config-file form: a ``[actionguard]`` table keyed by the flag without its dashes::

    [actionguard]
    guard = "clamp"
    guard-urdf = "panda.urdf"
    guard-audit-log = "/var/log/reflex/guard.jsonl"
    guard-trip-after = 5
"""

from __future__ import annotations

from typing import Any

import attrs

from reflex_core.options import Option

MODES = ("clamp", "reject")


def _positive_int(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(f"must be >= 1, got {number}")
    return number


def _non_negative_int(value: Any) -> int:
    number = int(value)
    if number < 0:
        raise ValueError(f"must be >= 0, got {number}")
    return number


def _positive_float(value: Any) -> float:
    number = float(value)
    if not number > 0:
        raise ValueError(f"must be > 0, got {number}")
    return number


def _joint_names(value: Any) -> list[str]:
    """``a,b,c`` on the command line, a list in the config file."""
    names = value if isinstance(value, list) else str(value).split(",")
    cleaned = [str(n).strip() for n in names if str(n).strip()]
    if not cleaned:
        raise ValueError("expected comma-separated joint names")
    return cleaned


OPTIONS: tuple[Option, ...] = (
    Option(
        "--guard",
        "enable ActionGuard: clamp chunks into the joint limits, or reject them (hold position)",
        choices=MODES,
        metavar="clamp|reject",
    ),
    Option(
        "--guard-urdf",
        "take joint position/velocity limits from this URDF, matched to actions by joint name",
        metavar="PATH",
    ),
    Option(
        "--guard-joint-names",
        "action joint names, comma-separated, for a URDF without an embodiment",
        type=_joint_names,
        metavar="J1,J2,...",
    ),
    Option(
        "--guard-control-hz",
        "control rate for velocity checks (default: the embodiment's control.frequency_hz)",
        type=_positive_float,
        metavar="HZ",
    ),
    Option(
        "--guard-audit-log",
        "append every guard decision to this JSONL file (fsynced before the chunk is returned)",
        metavar="PATH",
    ),
    Option(
        "--guard-audit-max-bytes",
        "rotate the audit log when it would grow past this size (default 64 MiB)",
        type=_positive_int,
        default=64 * 1024 * 1024,
        metavar="BYTES",
    ),
    Option(
        "--guard-trip-after",
        "refuse every /act (503 guard-tripped) after N consecutive violating chunks until "
        "POST /guard/reset; 0 never trips (default 5)",
        type=_non_negative_int,
        default=5,
        metavar="N",
    ),
)


def _mode(instance: Any, attribute: Any, value: str | None) -> None:
    if value is not None and value not in MODES:
        raise ValueError(f"guard must be one of {', '.join(MODES)}, got {value!r}")


def _at_least(minimum: int) -> Any:
    def check(instance: Any, attribute: Any, value: int) -> None:
        if value < minimum:
            raise ValueError(f"{attribute.name} must be >= {minimum}, got {value}")

    return check


def _positive_or_none(instance: Any, attribute: Any, value: float | None) -> None:
    if value is not None and not value > 0:
        raise ValueError(f"{attribute.name} must be > 0, got {value}")


@attrs.frozen
class GuardConfig:
    """Field names are the options' ``dest`` names."""

    guard: str | None = attrs.field(default=None, validator=_mode)
    guard_urdf: str | None = None
    guard_joint_names: list[str] | None = None
    guard_control_hz: float | None = attrs.field(default=None, validator=_positive_or_none)
    guard_audit_log: str | None = None
    guard_audit_max_bytes: int = attrs.field(default=64 * 1024 * 1024, validator=_at_least(1))
    guard_trip_after: int = attrs.field(default=5, validator=_at_least(0))

    @property
    def enabled(self) -> bool:
        return self.guard is not None
