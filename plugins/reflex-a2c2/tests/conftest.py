"""Shared by the A2C2 tests: random correction heads, and synthetic training data with a known
delay model."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from reflex_a2c2 import MLPHead, input_width

Records = list[dict[str, Any]]


def random_head(
    feature_dim: int = 8, action_dim: int = 3, *, hidden: tuple[int, ...] = (16,),
    weight_scale: float = 0.3, bias: float = 0.0, y_scale: float = 0.05, seed: int = 0,
) -> MLPHead:  # fmt: skip
    """A head with random weights (``hidden`` layer widths; none: linear) whose corrections
    are small (``y_scale``) and norm-limited to 1. The defaults fit ``FakeBatchPolicy``'s
    features (8) and actions (3)."""
    rng = np.random.default_rng(seed)
    width = input_width(feature_dim, action_dim)
    sizes = [width, *hidden, action_dim]
    return MLPHead(
        weights=[
            (rng.standard_normal((a, b)) * weight_scale).astype(np.float32)
            for a, b in zip(sizes[:-1], sizes[1:], strict=True)
        ],
        biases=[np.full(b, bias, np.float32) for b in sizes[1:]],
        x_mean=np.zeros(width, np.float32),
        x_std=np.ones(width, np.float32),
        y_scale=np.full(action_dim, y_scale, np.float32),
        feature_dim=feature_dim,
        action_dim=action_dim,
        suggested_max_norm=1.0,
    )


def delayed_chunks(
    n: int, seed: int, *, feature_dim: int = 8, action_dim: int = 3, chunk: int = 16,
    dt: float = 0.02, max_latency_ms: float = 200.0,
) -> Records:  # fmt: skip
    """Chunks of a smooth trajectory that depends on the observation's features, and what the
    robot executes under a latency d: the trajectory d later (the base chunk shifted by d/dt
    steps) plus an observation-dependent drift growing with d."""
    proj = np.random.default_rng(1234)  # the world: fixed across seeds
    u, w, p, g = (proj.standard_normal((feature_dim, action_dim)) for _ in range(4))
    c = 0.3 * proj.standard_normal((feature_dim, action_dim))
    rng = np.random.default_rng(seed)
    records = []
    for _ in range(n):
        f = rng.standard_normal(feature_dim)
        amp = 0.5 + 0.3 * np.tanh(f @ u / 3)
        omega = 2 * np.pi * (0.5 + 0.25 * np.tanh(f @ w / 3))
        phase, offset = f @ p, f @ c
        latency_ms = rng.uniform(0.0, max_latency_ms)
        t = np.arange(chunk) * dt
        base = amp * np.sin(omega * t[:, None] + phase) + offset
        later = amp * np.sin(omega * (t[:, None] + latency_ms / 1000.0) + phase) + offset
        executed = later + 0.05 * np.tanh(f @ g) * latency_ms / 100
        records.append(
            {
                "features": f.tolist(),
                "base_actions": base.tolist(),
                "executed_actions": executed.tolist(),
                "latency_ms": latency_ms,
            }
        )
    return records


@pytest.fixture
def make_delayed_chunks() -> Callable[..., Records]:
    return delayed_chunks
