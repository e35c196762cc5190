"""Which slot an episode belongs to: a stable hash, so a robot never switches policy mid-episode.

Python's ``hash()`` is salted per process (``PYTHONHASHSEED``), so two server processes, or one
restarted mid-episode, would disagree; SHA-256 of the episode id does not.
"""

from __future__ import annotations

import hashlib
import random

import attrs

BUCKETS = 10_000  # percent with two decimals: a split of 12.5 means what it says


def episode_percentile(episode_id: str) -> float:
    """A stable position in ``[0, 100)`` for an episode id."""
    digest = hashlib.sha256(episode_id.encode("utf-8")).digest()
    return (int.from_bytes(digest[:8], "big") % BUCKETS) * 100.0 / BUCKETS


@attrs.frozen
class Assignment:
    """The slot the split gives a request, before health is considered.

    :ivar sticky: decided by the episode id (False: no episode id, drawn per request).
    :ivar percentile: the episode's stable position in ``[0, 100)``, when sticky.
    """

    slot: str
    sticky: bool
    percentile: float | None = None


class SplitAssigner:
    """``percentile < split`` goes to B; requests without an episode id are drawn at random."""

    def __init__(self, split_percent: float, rng: random.Random | None = None) -> None:
        self.split = split_percent
        self._rng = rng or random.Random()

    def assign(self, episode_id: str | None) -> Assignment:
        if episode_id:
            pct = episode_percentile(episode_id)
            return Assignment("b" if pct < self.split else "a", True, pct)
        pct = self._rng.random() * 100.0
        return Assignment("b" if pct < self.split else "a", False)
