"""The gripper semantics of an embodiment, applied to actions on their way out of the server.

The gripper dimension's value ``v`` (robot units) becomes ``f = (v - lo) / (hi - lo)`` over its
action range ``[lo, hi]``. Not inverted: closed iff ``f >= close_threshold``; the output is
``hi`` when closed, ``lo`` when open. Inverted (low values close): closed iff
``f <= 1 - close_threshold``; the output is ``lo`` when closed, ``hi`` when open. A NaN stays NaN
so the safety layer downstream sees it instead of a made-up gripper command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from reflex_core.embodiments.config import EmbodimentConfig


def gripper_closed(values: np.ndarray, embodiment: EmbodimentConfig) -> np.ndarray:
    """Boolean mask: which gripper values (robot units) command a closed gripper."""
    gripper = embodiment.gripper
    if gripper is None:
        raise ValueError(f"embodiment {embodiment.name!r} has no gripper")
    lo, hi = embodiment.action_ranges[gripper.component_idx]
    fraction = (np.asarray(values, dtype=np.float64) - lo) / (hi - lo)
    if gripper.inverted:
        return fraction <= 1.0 - gripper.close_threshold
    return fraction >= gripper.close_threshold


def apply_gripper(actions: np.ndarray, embodiment: EmbodimentConfig) -> np.ndarray:
    """Snap the gripper dimension of ``actions`` (``(..., action_dim)``, robot units) to its
    open or closed command; other dimensions are untouched. Returns a new array of the same
    dtype; without a gripper, ``actions`` unchanged."""
    gripper = embodiment.gripper
    if gripper is None:
        return actions
    idx = gripper.component_idx
    out = np.array(actions, copy=True)
    values = out[..., idx]
    lo, hi = embodiment.action_ranges[idx]
    closed_value, open_value = (lo, hi) if gripper.inverted else (hi, lo)
    snapped = np.where(gripper_closed(values, embodiment), closed_value, open_value)
    out[..., idx] = np.where(np.isnan(values), values, snapped)
    return out
