"""``reflex serve`` options of the guard and the config class they structure into.

Config-file form: a ``[actionguard]`` table keyed by the flag without its dashes::

    [actionguard]
    guard = "clamp"
    guard-urdf = "panda.urdf"
    guard-audit-log = "/var/log/reflex/guard.jsonl"
    guard-trip-after = 5
"""

from __future__ import annotations

import attrs
from attrs.validators import in_, optional

from reflex_core.options import Option, comma_list, non_negative_int, positive_float, positive_int
from reflex_core.validators import non_negative, positive

MODES = ("clamp", "reject")


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
        type=comma_list,
        metavar="J1,J2,...",
    ),
    Option(
        "--guard-control-hz",
        "control rate for velocity checks (default: the embodiment's control.frequency_hz)",
        type=positive_float,
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
        type=positive_int,
        default=64 * 1024 * 1024,
        metavar="BYTES",
    ),
    Option(
        "--guard-trip-after",
        "refuse every /act (503 guard-tripped) after N consecutive violating chunks until "
        "POST /guard/reset; 0 never trips (default 5)",
        type=non_negative_int,
        default=5,
        metavar="N",
    ),
)


@attrs.frozen
class GuardConfig:
    """Field names are the options' ``dest`` names."""

    guard: str | None = attrs.field(default=None, validator=optional(in_(MODES)))
    guard_urdf: str | None = None
    guard_joint_names: list[str] | None = None
    guard_control_hz: float | None = attrs.field(default=None, validator=optional(positive))
    guard_audit_log: str | None = None
    guard_audit_max_bytes: int = attrs.field(default=64 * 1024 * 1024, validator=positive)
    guard_trip_after: int = attrs.field(default=5, validator=non_negative)

    @property
    def enabled(self) -> bool:
        return self.guard is not None
