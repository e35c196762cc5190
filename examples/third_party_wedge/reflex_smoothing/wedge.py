"""The smoothing wedge's handler."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from reflex_core.plugin import ActRequest, ActResult, Handler
from reflex_core.plugin.kit.chunks import LastChunkMemory


def smooth(actions: np.ndarray, alpha: float, start: np.ndarray | None) -> np.ndarray:
    """``y[t] = alpha * a[t] + (1 - alpha) * y[t-1]`` with ``y[-1] = start`` (or ``a[0]``)."""
    chunk = np.asarray(actions, dtype=np.float64)
    out = np.empty_like(chunk)
    previous = chunk[0] if start is None else np.asarray(start, dtype=np.float64)
    for t, action in enumerate(chunk):
        previous = alpha * action + (1.0 - alpha) * previous
        out[t] = previous
    return out.astype(np.float32)


class SmoothingWedge:
    """``(config, next, ctx) -> handler``: an instance is the handler."""

    def __init__(self, config: Any, next: Handler, ctx: Any) -> None:
        self.alpha = float(config.smooth_alpha)
        self.next = next
        embodiment = ctx.embodiment
        hz = config.smooth_control_hz
        if hz is None and embodiment is not None:
            hz = float(embodiment.control.frequency_hz)
        self.frequency_hz = hz
        self.memory = LastChunkMemory()
        self.smoothed = 0
        ctx.health["smoothing"] = lambda: {"alpha": self.alpha, "chunks": self.smoothed}

    def _start(self, request: ActRequest, width: int) -> tuple[np.ndarray | None, str]:
        """Where the robot is as this chunk begins: the episode's last chunk, time-shifted;
        else the measured state; else nothing (the chunk starts from its own first action)."""
        if request.episode_id is not None and self.frequency_hz is not None:
            stored = self.memory.get(request.episode_id)
            if stored is not None and stored.actions.shape[1] == width:
                return stored.current_action(time.monotonic_ns(), self.frequency_hz), "previous"
        state = np.asarray(request.observation.state, dtype=np.float64)
        if state.size >= width and np.isfinite(state[:width]).all():
            return state[:width], "state"
        return None, "none"

    async def __call__(self, request: ActRequest) -> ActResult:
        result = await self.next(request)
        actions = np.asarray(result.actions, dtype=np.float32)
        if actions.ndim != 2 or not np.isfinite(actions).all():
            return result  # the guard outside deals with broken chunks
        start, source = self._start(request, actions.shape[1])
        smoothed = smooth(actions, self.alpha, start)
        if request.episode_id is not None:
            self.memory.put(request.episode_id, smoothed)
        self.smoothed += 1
        note = {
            "alpha": self.alpha,
            "start": source,
            "max_change": float(np.max(np.abs(smoothed - actions))),
        }
        return ActResult(
            actions=smoothed,
            metadata={**result.metadata, "smoothing": note},
            features=result.features,
        )
