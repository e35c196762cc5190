"""The A2C2 head in the real server around the real ONNX runtime (tiny-pi05 from ``reflex
export``): the head is checked against the artifact's feature width and corrects with the
runtime's pooled ``features``."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import reflex_a2c2

from reflex_core.errors import ConfigError
from reflex_core.plugin.testing import asgi_client, runtime_server, serve_lifespan
from reflex_core.serve import ReflexServer

from .conftest import random_head

pytestmark = pytest.mark.slow


def _head(path: Path, feature_dim: int, action_dim: int) -> Path:
    """A linear head with a small bias, for the artifact's widths."""
    head = random_head(
        feature_dim, action_dim, hidden=(), weight_scale=0.1, bias=0.01, y_scale=0.01
    )
    return head.save(path)


def _server(artifact: Path, **cli: Any) -> ReflexServer:
    return runtime_server({"a2c2": reflex_a2c2}, artifact, cli=cli)


async def _act(server: ReflexServer, body: dict[str, Any]) -> httpx.Response:
    async with serve_lifespan(server.app):
        async with asgi_client(server.app) as client:
            return await client.post("/act", json=body)


def test_head_corrects_real_chunks_with_runtime_features(
    tmp_path: Path, reflex_export: Any
) -> None:
    artifact = reflex_export("tiny-pi05", embodiment="franka")
    config = json.loads((artifact / "reflex_config.json").read_text())
    head = _head(tmp_path / "head.npz", config["feature_dim"], config["action_dim"])
    body = {
        "state": np.linspace(-0.3, 0.3, config["state_dim"]).tolist(),
        "prompt": "pick up the cube",
        "noise_seed": 3,
        "capture_time_ns": time.time_ns() - 80_000_000,
    }
    corrected = asyncio.run(_act(_server(artifact, a2c2_head=str(head)), body))
    plain = asyncio.run(_act(_server(artifact), body))
    assert corrected.status_code == 200, corrected.text
    note = corrected.json()["metadata"]["correction"]
    assert note["applied"] is True and note["latency_ms"] >= 80.0
    diff = np.asarray(corrected.json()["actions"]) - np.asarray(plain.json()["actions"])
    assert 0 < np.linalg.norm(diff, axis=1).max() <= 1.0

    wrong = _head(tmp_path / "wrong.npz", config["feature_dim"] + 1, config["action_dim"])
    with pytest.raises(ConfigError) as info:
        asyncio.run(_act(_server(artifact, a2c2_head=str(wrong)), body))
    assert info.value.slug == "a2c2-head-mismatch"


def test_reflex_serve_with_router_batching_and_a2c2(tmp_path: Path, reflex_export: Any) -> None:
    """The command a user runs: ``reflex serve`` under Hypercorn with the three wedges on."""
    import sys

    from reflex_core.plugin.testing import server_process

    artifact = reflex_export("tiny-pi05", embodiment="franka")
    config = json.loads((artifact / "reflex_config.json").read_text())
    head = _head(tmp_path / "head.npz", config["feature_dim"], config["action_dim"])
    argv = [
        sys.executable, "-m", "reflex_core.cli", "serve", str(artifact),
        "--embodiment", "franka", "--policy-b", str(artifact), "--split", "50",
        "--max-batch", "4", "--batch-timeout-ms", "100", "--a2c2-head", str(head),
    ]  # fmt: skip
    plugins = "router,batching,a2c2"
    with server_process(argv, log_path=tmp_path / "serve.log", load_plugins=plugins) as base:

        async def clients() -> list[httpx.Response]:
            async with httpx.AsyncClient(base_url=base, timeout=60) as client:
                bodies = [
                    {
                        "state": np.linspace(-0.2, 0.2, config["state_dim"]).tolist(),
                        "prompt": "stack the blocks",
                        "episode_id": f"episode-{i}",
                        "capture_time_ns": time.time_ns() - 30_000_000,
                    }
                    for i in range(8)
                ]
                return list(await asyncio.gather(*(client.post("/act", json=b) for b in bodies)))

        responses = asyncio.run(clients())
        health = httpx.get(base + "/health", timeout=5).json()
    assert all(r.status_code == 200 for r in responses), responses[0].text
    assert health["wedges"] == ["router", "batching", "a2c2"]
    slots = [r.json()["metadata"]["policy_slot"] for r in responses]
    for r in responses:
        meta = r.json()["metadata"]
        assert meta["correction"]["applied"] is True
        assert meta["correction"]["latency_ms"] >= 30.0
        assert 1 <= meta["batch"]["size"] <= 4
        assert meta["router"]["sticky"] is True
    assert set(slots) <= {"a", "b"}
