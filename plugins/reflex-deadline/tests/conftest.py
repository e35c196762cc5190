"""Fixtures: a slow policy double (it blocks a worker thread, like an ORT call) and the
deadline wedge composed around it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reflex_deadline

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.plugin import ActRequest, ActResult, WedgeContext, WedgeSpec
from reflex_core.plugin.testing import FakePolicyInfo, enable, plugin_wedge

D, T = 8, 50  # the franka preset: 8 action dims, 50-step chunks at 15 Hz


class SlowPolicy:
    """A BatchHandler whose inference blocks a thread for ``delay_s`` (not cancellable, like an
    ONNX Runtime call). Row ``t`` of a chunk is ``state[:D] + 0.01 * (t + 1) + offset``."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.offset = 0.0
        self.error: BaseException | None = None
        self.started: list[ActRequest] = []
        self.finished: list[float] = []  # monotonic time each call completed
        self.lock = threading.Lock()

    def chunk_for(self, request: ActRequest, offset: float | None = None) -> np.ndarray:
        base = np.asarray(request.observation.state[:D], dtype=np.float32)
        steps = 0.01 * np.arange(1, T + 1, dtype=np.float32)[:, None]
        return base[None, :] + steps + (self.offset if offset is None else offset)

    def _blocking(
        self, requests: Sequence[ActRequest], delay: float, offset: float
    ) -> list[np.ndarray]:
        time.sleep(delay)
        with self.lock:
            self.finished.append(time.monotonic())
        return [self.chunk_for(r, offset) for r in requests]

    async def __call__(self, requests: Sequence[ActRequest]) -> list[ActResult]:
        self.started.extend(requests)
        if self.error is not None:
            raise self.error
        loop = asyncio.get_running_loop()
        chunks = await loop.run_in_executor(
            None, self._blocking, requests, self.delay_s, self.offset
        )
        return [
            ActResult(actions=c, metadata={"policy": r.policy, "model": "slow"})
            for c, r in zip(chunks, requests, strict=True)
        ]


@pytest.fixture
def franka() -> EmbodimentConfig:
    return EmbodimentConfig.load_preset("franka")


@pytest.fixture
def deadline_spec() -> WedgeSpec:
    return plugin_wedge(reflex_deadline)


@pytest.fixture
def build_deadline(
    deadline_spec: WedgeSpec, wedge_chain: Any
) -> Callable[..., tuple[Any, WedgeContext]]:
    def build(
        values: dict[str, Any], policy: Any, *, embodiment: Any = None, extra: Sequence[Any] = ()
    ) -> tuple[Any, WedgeContext]:
        chain = wedge_chain(
            policy,
            enable(deadline_spec, values),
            *extra,
            policies={"default": FakePolicyInfo("default", {}, chunk_size=T, action_dim=D)},
            embodiment=embodiment,
        )
        return chain.handler, chain.ctx

    return build


@pytest.fixture(autouse=True)
def _state_dir(reflex_state_dir: Path) -> Path:
    """The guard's audit log is on by default under the state directory: keep every test's
    in its own directory, never the user's."""
    return reflex_state_dir
