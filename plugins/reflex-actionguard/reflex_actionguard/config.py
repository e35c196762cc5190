"""The guard's settings: ``reflex serve`` flags and the ``[actionguard]`` config-file table.

Config-file form: a ``[actionguard]`` table keyed by the flag without its dashes::

    [actionguard]
    guard = "clamp"
    guard-urdf = "panda.urdf"
    guard-audit-log = "/var/log/reflex/guard.jsonl"
    guard-trip-after = 5
"""

from __future__ import annotations

import attrs

from reflex_core.plugin import (
    comma_list,
    count,
    positive_float,
    setting,
)

MODES = ("clamp", "reject")


@attrs.frozen
class GuardConfig:
    """Each field is a ``reflex serve`` flag and a key of the ``[actionguard]`` table."""

    guard: str | None = setting(
        "enable ActionGuard: clamp chunks into the joint limits, or reject them (hold position)",
        choices=MODES,
        metavar="clamp|reject",
    )
    guard_urdf: str | None = setting(
        "take joint position/velocity limits from this URDF, matched to actions by joint name",
        metavar="PATH",
    )
    guard_joint_names: list[str] | None = setting(
        "action joint names, comma-separated, for a URDF without an embodiment",
        type=comma_list,
        metavar="J1,J2,...",
    )
    guard_control_hz: float | None = setting(
        "control rate for velocity checks (default: the embodiment's control.frequency_hz)",
        type=positive_float,
    )
    guard_audit_log: str | None = setting(
        "append every guard decision to this JSONL file, fsynced before the chunk is returned "
        "(default: $REFLEX_STATE_DIR/guard/audit.jsonl, the state directory being "
        "$XDG_STATE_HOME/reflex or ~/.local/state/reflex without it)",
        metavar="PATH",
    )
    guard_no_audit_log: bool = setting(
        "do not write the audit log (it is on by default with the guard)",
        is_flag=True,
    )
    guard_audit_max_bytes: int = count(
        "rotate the audit log when it would grow past this size", default=64 * 1024 * 1024
    )
    guard_trip_after: int = count(
        "refuse every /act (503 guard-tripped) after N consecutive violating chunks until "
        "POST /guard/reset; 0 never trips",
        default=5,
        allow_zero=True,
    )

    @property
    def enabled(self) -> bool:
        return self.guard is not None
