"""The deadline wedge inside the real server (ASGI app + the core's runtime-shaped policy
double, whose inference blocks a worker thread like ONNX Runtime does)."""

from __future__ import annotations

import time

import numpy as np
import pytest
import reflex_deadline

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.plugin.testing import (
    FakeBatchPolicy,
    FakeRuntimePolicy,
    asgi_client,
    serve_lifespan,
    wedge_server,
)

pytestmark = pytest.mark.anyio
STATE = [0.0, 0.1, 0.2, -1.5, 0.3, 1.5, 0.1, 0.02]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_deadline_through_the_app() -> None:
    sections = {"deadline": {"deadline-ms": 100, "deadline-fallback": "tail"}}
    policy = FakeRuntimePolicy(math=FakeBatchPolicy(state_dim=8, action_dim=8, max_action_dim=32))
    app = wedge_server(
        {"deadline": reflex_deadline},
        {"default": policy},
        sections=sections,
        embodiment=EmbodimentConfig.load_preset("franka"),
    ).app
    async with serve_lifespan(app), asgi_client(app, timeout=10) as client:
        fast = await client.post("/act", json={"state": STATE, "episode_id": "ep"})
        assert fast.status_code == 200
        assert fast.json()["metadata"]["fallback"]["used"] is False
        first = np.asarray(fast.json()["actions"])

        policy.fixed_s = 1.0
        started = time.monotonic()
        late = await client.post("/act", json={"state": STATE, "episode_id": "ep"})
        elapsed = time.monotonic() - started
        assert late.status_code == 200
        meta = late.json()["metadata"]["fallback"]
        assert (meta["used"], meta["strategy"], meta["reason"]) == (True, "tail", "deadline")
        assert elapsed < 0.6
        tail = np.asarray(late.json()["actions"])
        assert tail.shape == first.shape
        np.testing.assert_allclose(tail[-1], first[-1], rtol=1e-6)  # padded with its last action
        metrics = (await client.get("/metrics")).text
        assert 'reflex_deadline_fallbacks_total{strategy="tail"} 1.0' in metrics
        assert "reflex_deadline_background_inferences 1.0" in metrics
        config = (await client.get("/config")).json()
        assert config["wedges"]["enabled"] == ["deadline"]
        policy.fixed_s = 0.0
