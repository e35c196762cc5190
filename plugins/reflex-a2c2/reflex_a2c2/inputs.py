"""What the correction head sees for each action of a chunk (the same at training and serving).

Per action ``k`` of a ``(T, D)`` chunk, one row of ``F + 3*D + 2`` values:

=================  =====  ==========================================================
features           F      pooled prefix features of the observation (``ActResult.features``)
base action        D      ``a_k``, the policy's action at position k
chunk velocity     D      ``(a_{k+1} - a_{k-1}) / 2`` (one-sided at the ends): per control step
latency motion     D      chunk velocity * latency in seconds: the displacement the chunk's own
                          motion predicts over the delay (a shift the head only has to scale)
position           1      ``k / (T - 1)`` (0 for a one-step chunk)
latency            1      measured latency in seconds
=================  =====  ==========================================================

The A2C2 paper's head sees the latest observation, the base action and its position in the
chunk; the velocity terms are ours: with a delay the right action is mostly the base chunk
shifted in time, which the head can only express when it sees how the chunk moves.
"""

from __future__ import annotations

import numpy as np

EXTRA_COLUMNS = 2  # position, latency


def input_width(feature_dim: int, action_dim: int) -> int:
    return feature_dim + 3 * action_dim + EXTRA_COLUMNS


def chunk_velocity(actions: np.ndarray) -> np.ndarray:
    """Per-step velocity along the chunk, (T, D); zeros for a one-step chunk."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.shape[0] < 2:
        return np.zeros_like(actions)
    return np.gradient(actions, axis=0).astype(np.float32)


def build_inputs(features: np.ndarray, actions: np.ndarray, latency_ms: float) -> np.ndarray:
    """Head input rows for one chunk: (T, F + 3D + 2) float32."""
    actions = np.asarray(actions, dtype=np.float32)
    if actions.ndim != 2:
        raise ValueError(f"actions must be (T, D), got shape {actions.shape}")
    features = np.asarray(features, dtype=np.float32).reshape(-1)
    t = actions.shape[0]
    latency_s = np.float32(latency_ms / 1000.0)
    velocity = chunk_velocity(actions)
    position = (
        np.arange(t, dtype=np.float32) / np.float32(t - 1) if t > 1 else np.zeros(1, np.float32)
    )
    return np.concatenate(
        [
            np.broadcast_to(features, (t, features.shape[0])),
            actions,
            velocity,
            velocity * latency_s,
            position[:, None],
            np.full((t, 1), latency_s, dtype=np.float32),
        ],
        axis=1,
    ).astype(np.float32)
