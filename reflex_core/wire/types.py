"""The wire types (DESIGN §5): one observation shape and one action-chunk shape for every transport.

These are the parsed, validated forms. Parsing from JSON / msgpack dicts, with a stable slug for
every rejection, lives in :mod:`reflex_core.wire.parse`.
"""

from __future__ import annotations

from typing import Any

import attrs
import numpy as np

from reflex_core.errors import ValidationError

_F32_MAX = float(np.finfo(np.float32).max)


def finite_state(values: Any) -> np.ndarray:
    """``state`` as float32, refused with ``non-finite-state`` (422) when a value is NaN, an
    infinity or beyond float32's range. The one check of this condition: the wire parser and a
    library caller building an :class:`Observation` both go through it."""
    try:
        wide = np.asarray(values, dtype=np.float64)
    except OverflowError as exc:  # an integer literal beyond float range
        raise ValidationError(
            "state holds a value beyond float range", slug="non-finite-state", field="state"
        ) from exc
    bad = ~np.isfinite(wide) | (np.abs(wide) > _F32_MAX)
    if bad.any():
        index = int(np.flatnonzero(bad)[0])
        raise ValidationError(
            f"state[{index}] = {float(wide.reshape(-1)[index])!r} is not a finite float32",
            slug="non-finite-state",
            field=f"state[{index}]",
        )
    return wide.astype(np.float32)


@attrs.frozen(eq=False)
class Observation:
    """One snapshot of the robot's world, as the server sees it after parsing.

    Building one checks what holds for every observation whatever the policy: the state is
    finite float32 (:func:`finite_state`). What depends on the policy (the state's length, the
    camera names) is the policy's check (``Policy.validate``).

    :ivar state: proprioception, float32, in the robot's units (not normalized).
    :ivar images: camera name -> uint8 HWC RGB array (decoded from JPEG/PNG/raw on the edge).
    :ivar prompt: the task instruction (``instruction`` and ``task`` are accepted aliases).
    :ivar seq: caller's sequence number, echoed in the chunk.
    :ivar capture_time_ns: wall-clock capture time; the server's timings are keyed to it.
    :ivar request_id: idempotency key.
    :ivar max_gpu_seconds: per-request compute cap (the deadline wedge enforces it).
    :ivar episode_id: the robot episode this belongs to (sticky routing, chunk continuity).
    """

    state: np.ndarray = attrs.field(converter=finite_state)
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
