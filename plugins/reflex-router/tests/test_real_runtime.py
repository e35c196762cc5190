"""The router in the real server around the real ONNX runtime (tiny-pi05 from ``reflex
export``): slot B loaded through ``ctx.load_policy`` -> ``load_policy``, shadow mode comparing
two copies of the same model (same noise, so the difference is zero)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import reflex_router

from reflex_core.plugin.kit.jsonl import read_jsonl
from reflex_core.plugin.testing import asgi_client, runtime_server, serve_lifespan
from reflex_core.serve import ReflexServer

pytestmark = pytest.mark.slow


def _server(artifact: Path, **cli: Any) -> ReflexServer:
    return runtime_server({"router": reflex_router}, artifact, embodiment="franka", cli=cli)


def test_shadow_of_the_same_model_records_zero_difference(
    tmp_path: Path, reflex_export: Any
) -> None:
    artifact = reflex_export("tiny-pi05", embodiment="franka")
    log_path = tmp_path / "shadow.jsonl"
    server = _server(artifact, policy_b=str(artifact), shadow=True, shadow_log=str(log_path))

    async def main() -> list[httpx.Response]:
        async with serve_lifespan(server.app) as running:
            policy = running.policies["default"]
            async with asgi_client(server.app) as client:
                return [
                    await client.post(
                        "/act",
                        json={
                            "state": np.linspace(-0.3, 0.3, policy.state_dim).tolist(),
                            "prompt": "pick up the cube",
                            "episode_id": f"ep-{i}",
                        },
                    )
                    for i in range(3)
                ]

    responses = asyncio.run(main())
    assert all(r.status_code == 200 for r in responses), responses[0].text
    assert set(server.policies) == {"default", "b"}
    records = read_jsonl(log_path).records
    assert len(records) == 3
    for rec, response in zip(records, responses, strict=True):
        np.testing.assert_allclose(rec["actions_a"], response.json()["actions"], atol=1e-6)
        assert rec["l2"] < 1e-5 and rec["max_abs"] < 1e-5
        assert rec["model_version_a"] == rec["model_version_b"] is not None
        assert len(rec["features"]) == server.policies["default"].artifact.feature_dim
