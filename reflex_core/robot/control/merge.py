"""How the overlap of an old and a new action chunk is merged, per control tick.

When a new chunk arrives, the old one still holds actions for the coming ticks. For each tick
both cover, the action executed is ``merge(old, new)``; ticks only the new chunk covers take
the new action. The functions are LeRobot's robot-client choices:

==================  ===========================  ==========================================
name                result                       when to use it
==================  ===========================  ==========================================
``latest_only``     new                          the newest observation is all that counts
``weighted_average`` 0.3 old + 0.7 new (default) smooth switch, leaning on the newer plan
``average``         0.5 old + 0.5 new            equal trust
``conservative``    0.7 old + 0.3 new            damp jumps between chunks
==================  ===========================  ==========================================
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from reflex_core.errors import ConfigError

MergeFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]


def latest_only(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    return new


def weighted_average(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    return 0.3 * old + 0.7 * new


def average(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    return 0.5 * old + 0.5 * new


def conservative(old: np.ndarray, new: np.ndarray) -> np.ndarray:
    return 0.7 * old + 0.3 * new


MERGE_FUNCTIONS: dict[str, MergeFunction] = {
    "latest_only": latest_only,
    "weighted_average": weighted_average,
    "average": average,
    "conservative": conservative,
}
DEFAULT_MERGE = "weighted_average"


def merge_function(merge: str | MergeFunction) -> MergeFunction:
    """A merge function by name (see the table above), or a callable ``(old, new) -> action``."""
    if callable(merge):
        return merge
    try:
        return MERGE_FUNCTIONS[merge]
    except KeyError:
        raise ConfigError(
            f"unknown chunk merge {merge!r}; choose from {', '.join(MERGE_FUNCTIONS)}",
            slug="invalid-merge",
            field="merge",
        ) from None
