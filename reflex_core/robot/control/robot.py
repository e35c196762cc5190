"""Adapters that give the control loop its ``observe()`` / ``act(action)`` robot."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from reflex_core.errors import ReflexError

StepFunction = Callable[[np.ndarray | None], Mapping[str, Any]]


class FunctionRobot:
    """A robot made of one function ``step(action) -> observation``.

    ``step`` applies ``action`` (a (D,) float32 array) and returns the observation after it;
    it is called once with ``None`` first, for the initial observation. The loop calls it once
    per executed action and reads the latest observation whenever it requests a chunk.
    """

    def __init__(self, step: StepFunction) -> None:
        self.step = step
        self._latest: Mapping[str, Any] | None = None

    def _checked(self, observation: Any) -> Mapping[str, Any]:
        if not isinstance(observation, Mapping):
            raise ReflexError(
                f"{getattr(self.step, '__name__', 'step')}() must return an observation dict "
                f"(state, images, prompt), got {type(observation).__name__}",
                slug="invalid-observation",
                status=400,
            )
        return observation

    def observe(self) -> Mapping[str, Any]:
        if self._latest is None:
            self._latest = self._checked(self.step(None))
        return self._latest

    def act(self, action: np.ndarray) -> None:
        self._latest = self._checked(self.step(action))
