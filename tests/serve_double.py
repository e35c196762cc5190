"""Test helpers for the serve tests: a policy double with the runtime's ``Policy`` interface,
an ASGI lifespan driver for ``httpx.ASGITransport`` (which does not run lifespan), and request
builders. What a wedge author needs as well (the lifespan driver, the output type) comes from
the public harness, :mod:`reflex_core.plugin.testing`.

The double is deterministic where the server must not mix things up: each row's actions depend
on that row's state and noise, so a swapped, dropped or re-run row shows. It can be slowed down
or held at a gate to put requests in flight on purpose.

Loaded by path (``load_serve_double()`` in each test module) because tests are imported with
``--import-mode=importlib``; ``python tests/serve_double.py ARGS`` also runs a server on it under
Hypercorn for the subprocess tests.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import io
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

import attrs
import numpy as np

from reflex_core.errors import ValidationError
from reflex_core.plugin.testing import FakePolicyOutput, batch_noise, double_info, serve_lifespan
from reflex_core.wire.types import Observation


@attrs.define(eq=False)
class DoublePolicy:
    """Implements the runtime's Policy interface (slot, info, dims, validate, infer, warmup).

    ``actions[b, t, d] = tanh(state_b @ W)[d] + 0.01 * t + noise[b, t, d]``.
    """

    slot: str = "default"
    state_dim: int = 8
    action_dim: int = 8
    chunk_size: int = 10
    max_action_dim: int = 32
    camera_names: tuple[str, ...] = ("front",)
    feature_dim: int = 16
    infer_delay_s: float = 0.0
    warmup_delay_s: float = 0.0
    warmup_error: Exception | None = None
    infer_error: Exception | None = None
    gate: threading.Event | None = None
    calls: list[int] = attrs.field(factory=list)
    warmed: bool = False
    in_infer: threading.Event = attrs.field(factory=threading.Event)

    @property
    def info(self) -> dict[str, Any]:
        return double_info(self, family="pi05", mode="double", model_version="double01")

    def validate(self, observation: Observation) -> None:
        if observation.state.shape[0] != self.state_dim:
            raise ValidationError(
                f"state has {observation.state.shape[0]} values, the policy takes {self.state_dim}",
                slug="state-length-mismatch",
                field="state",
            )
        for name in observation.images:
            if name not in self.camera_names:
                raise ValidationError(
                    f"unknown camera {name!r}", slug="unknown-camera", field=f"images.{name}"
                )

    def _weights(self) -> np.ndarray:
        return np.random.default_rng(7).standard_normal((self.state_dim, self.action_dim)) / 3

    def infer(
        self, observations: Sequence[Observation], noise: np.ndarray | None = None
    ) -> FakePolicyOutput:
        self.in_infer.set()
        try:
            if self.gate is not None:
                self.gate.wait(timeout=30)
            if self.infer_delay_s:
                time.sleep(self.infer_delay_s)
            if self.infer_error is not None:
                raise self.infer_error
            started = time.perf_counter()
            batch = len(observations)
            self.calls.append(batch)
            noise = batch_noise(noise, batch, (self.chunk_size, self.max_action_dim))
            assert noise.shape == (batch, self.chunk_size, self.max_action_dim)
            states = np.stack([o.state for o in observations]).astype(np.float64)
            base = np.tanh(states @ self._weights())  # (B, D)
            steps = 0.01 * np.arange(self.chunk_size)[None, :, None]
            actions = base[:, None, :] + steps + noise[:, :, : self.action_dim]
            features = np.repeat(states.mean(axis=1, keepdims=True), self.feature_dim, axis=1)
            ms = (time.perf_counter() - started) * 1e3
            return FakePolicyOutput(
                actions=actions.astype(np.float32),
                features=features.astype(np.float32),
                timings={
                    "preprocess_ms": 0.0,
                    "prefix_ms": 0.0,
                    "expert_ms": ms,
                    "total_ms": ms,
                    "steps": 1,
                },
            )
        finally:
            self.in_infer.clear()

    def expected(self, state: Sequence[float], noise: np.ndarray) -> np.ndarray:
        """What ``infer`` returns for one observation with this noise (T, D)."""
        obs = Observation(state=np.asarray(state, dtype=np.float32))
        return self.infer_pure([obs], noise[None])[0]

    def infer_pure(self, observations: Sequence[Observation], noise: np.ndarray) -> np.ndarray:
        states = np.stack([o.state for o in observations]).astype(np.float64)
        base = np.tanh(states @ self._weights())
        steps = 0.01 * np.arange(self.chunk_size)[None, :, None]
        return (base[:, None, :] + steps + noise[:, :, : self.action_dim]).astype(np.float32)

    def warmup(self) -> None:
        if self.warmup_delay_s:
            time.sleep(self.warmup_delay_s)
        if self.warmup_error is not None:
            raise self.warmup_error
        self.warmed = True


def observation(state_dim: int = 8, **extra: Any) -> dict[str, Any]:
    """A valid JSON observation for the default double."""
    body: dict[str, Any] = {"state": [0.1 * i for i in range(state_dim)], "prompt": "pick"}
    body.update(extra)
    return body


def png_b64(height: int = 4, width: int = 4) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (width, height), (10, 200, 30)).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


@contextlib.asynccontextmanager
async def lifespan(app: Any, *, wait_ready: bool = True) -> AsyncIterator[Any]:
    """Run ``app``'s ASGI lifespan (startup ... shutdown) around the block and yield its
    ReflexServer; ``httpx.ASGITransport`` sends only HTTP scopes."""
    async with serve_lifespan(app, timeout_s=10, wait_ready=wait_ready) as server:
        yield server


def main(argv: Sequence[str] | None = None) -> int:
    """Serve a double under the real Hypercorn runner (for subprocess tests)."""
    from reflex_core.serve.app import ReflexServer
    from reflex_core.serve.config import ServeConfig
    from reflex_core.serve.hypercorn_runner import run
    from reflex_core.serve.middleware import install_request_id_logging

    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--infer-delay-s", type=float, default=0.0)
    parser.add_argument("--warmup-delay-s", type=float, default=0.0)
    parser.add_argument("--fail-warmup", action="store_true")
    parser.add_argument("--graceful-timeout-s", type=float, default=30.0)
    args = parser.parse_args(argv)
    import logging

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    install_request_id_logging()
    policy = DoublePolicy(
        infer_delay_s=args.infer_delay_s,
        warmup_delay_s=args.warmup_delay_s,
        warmup_error=RuntimeError("warm-up failed on purpose") if args.fail_warmup else None,
    )
    config = ServeConfig(port=args.port, graceful_timeout_s=args.graceful_timeout_s)
    return run(ReflexServer({"default": policy}, options=config))


if __name__ == "__main__":
    sys.exit(main())
