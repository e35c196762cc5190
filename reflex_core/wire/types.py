"""The wire types (DESIGN §5): one observation shape and one action-chunk shape for every transport.

These are the parsed, validated forms. Parsing from JSON / msgpack dicts, with a stable slug for
every rejection, lives in :mod:`reflex_core.wire.parse`.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np


@attrs.frozen(eq=False)
class Observation:
    """One snapshot of the robot's world, as the server sees it after parsing.

    :ivar state: proprioception, float32 1-D, in the robot's units (not normalized).
    :ivar images: camera name -> uint8 HWC RGB array (decoded from JPEG/PNG/raw on the edge).
    :ivar prompt: the task instruction (``instruction`` and ``task`` are accepted aliases).
    :ivar seq: caller's sequence number, echoed in the chunk.
    :ivar capture_time_ns: wall-clock capture time; the server's timings are keyed to it.
    :ivar request_id: idempotency key.
    :ivar max_gpu_seconds: per-request compute cap (the deadline wedge enforces it).
    :ivar episode_id: the robot episode this belongs to (sticky routing, chunk continuity).
    """

    state: np.ndarray
    images: dict[str, np.ndarray] = attrs.field(factory=dict)
    prompt: str | None = None
    seq: int | None = None
    capture_time_ns: int | None = None
    request_id: str | None = None
    max_gpu_seconds: float | None = None
    episode_id: str | None = None


@attrs.frozen(eq=False)
class ActionChunk:
    """Consecutive action targets the robot should apply, one row per control step."""

    actions: np.ndarray  # (T, D) float32, robot units
    seq: int | None = None
    metadata: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": "action_chunk",
            "seq": self.seq,
            "actions": np.asarray(self.actions, dtype=np.float64).tolist(),
            "metadata": self.metadata,
        }


@attrs.frozen
class SafeStop:
    """Sent to a robot's safe-stop command when the connector hits an unrecoverable error."""

    reason: str
    message: str
    session_id: str

    def to_dict(self) -> dict[str, Any]:
        return {"reason": self.reason, "message": self.message, "session_id": self.session_id}
