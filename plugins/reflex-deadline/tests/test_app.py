"""The deadline wedge inside the real server (ASGI app + the core's policy double, whose
inference blocks a worker thread like ONNX Runtime does)."""

from __future__ import annotations

import importlib.util
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import reflex_deadline

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.plugins import make_plugin_manager
from reflex_core.serve.app import create_app
from reflex_core.serve.config import resolve_serve_options

REPO = Path(__file__).resolve().parents[3]
pytestmark = pytest.mark.anyio
STATE = [0.0, 0.1, 0.2, -1.5, 0.3, 1.5, 0.1, 0.02]


def load_serve_double() -> Any:
    name = "reflex_tests_serve_double"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, REPO / "tests" / "serve_double.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


sd = load_serve_double()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_deadline_through_the_app() -> None:
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"deadline": reflex_deadline})
    sections = {"deadline": {"deadline-ms": 100, "deadline-fallback": "tail"}}
    policy = sd.DoublePolicy()
    app = create_app(
        {"default": policy},
        embodiment=EmbodimentConfig.load_preset("franka"),
        registry=pm.registry,
        options=resolve_serve_options({}, sections, pm.registry),
    )
    async with (
        sd.lifespan(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://reflex", timeout=10
        ) as client,
    ):
        fast = await client.post("/act", json={"state": STATE, "episode_id": "ep"})
        assert fast.status_code == 200
        assert fast.json()["metadata"]["fallback"]["used"] is False
        first = np.asarray(fast.json()["actions"])

        policy.infer_delay_s = 1.0
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
        policy.infer_delay_s = 0.0
