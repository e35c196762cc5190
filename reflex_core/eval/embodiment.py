"""Blocks of an embodiment document an env plugin writes for the robot its simulator drives.

Most simulated arms are driven by absolute joint-position targets and report the same joints
measured as their state: :func:`joint_position_blocks` writes the part of the document that
follows from the joints alone (``reflex_aloha.embodiment``, ``reflex_robosuite.embodiment``,
``reflex_metaworld.embodiment.sawyer``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def joint_position_blocks(
    joint_names: Sequence[str], ranges: Sequence[Sequence[float]], home: Sequence[float]
) -> dict[str, Any]:
    """The ``joint_names``, ``action_space`` and ``normalization`` blocks of a robot whose
    actions are absolute targets for ``joint_names`` (within ``ranges``, one ``(low, high)``
    each) and whose state is the same joints measured.

    Actions and state share their normalizer: mean ``home`` (the pose episodes start in), std a
    quarter of each joint's range, so that the whole range spans +-2 std.
    """
    ranges = [[float(low), float(high)] for low, high in ranges]
    if not len(joint_names) == len(ranges) == len(home):
        raise ValueError(
            f"{len(joint_names)} joints, {len(ranges)} ranges and {len(home)} home values"
        )
    mean = [float(value) for value in home]
    std = [(high - low) / 4 for low, high in ranges]
    return {
        "joint_names": list(joint_names),
        "action_space": {
            "type": "continuous",
            "kind": "joint_position",
            "dim": len(ranges),
            "ranges": ranges,
        },
        "normalization": {
            "mean_action": mean,
            "std_action": std,
            "mean_state": mean,
            "std_state": std,
        },
    }
