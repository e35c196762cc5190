"""The batching wedge in the real server around the real ONNX runtime, on a tiny-pi05 exported
with ``reflex export``: a batched call returns every caller exactly what it would get alone."""

from __future__ import annotations

import asyncio
import base64
import io
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import reflex_batching

from reflex_core.plugin.testing import asgi_client, runtime_server, serve_lifespan
from reflex_core.serve import ReflexServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifact(reflex_export: Any) -> Path:
    return reflex_export("tiny-pi05", embodiment="franka")


def _png(seed: int, size: int = 32) -> str:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _server(artifact: Path, **cli: Any) -> ReflexServer:
    return runtime_server({"batching": reflex_batching}, artifact, embodiment="franka", cli=cli)


def test_batched_equals_unbatched_on_tiny_pi05(artifact: Path) -> None:
    batched = _server(artifact, max_batch=6, batch_timeout_ms=2000.0)
    unbatched = _server(artifact)

    async def main() -> tuple[list[httpx.Response], list[httpx.Response]]:
        async with serve_lifespan(batched.app) as server:
            policy = server.policies["default"]
            rng = np.random.default_rng(0)
            bodies = [
                {
                    "state": rng.uniform(-0.5, 0.5, policy.state_dim).round(4).tolist(),
                    "images": {policy.camera_names[0]: _png(i)},
                    "prompt": ["pick up the cube", "open the drawer"][i % 2],
                    "noise_seed": 100 + i,
                }
                for i in range(6)
            ]
            async with asgi_client(batched.app) as client:
                together = list(
                    await asyncio.gather(*(client.post("/act", json=b) for b in bodies))
                )
        async with serve_lifespan(unbatched.app):
            async with asgi_client(unbatched.app) as client:
                alone = [await client.post("/act", json=b) for b in bodies]
        return together, alone

    together, alone = asyncio.run(main())
    assert all(r.status_code == 200 for r in [*together, *alone]), together[0].text
    for t, a in zip(together, alone, strict=True):
        assert t.json()["metadata"]["batch"]["size"] == 6
        assert t.json()["metadata"]["timings"]["batch_size"] == 6
        assert a.json()["metadata"]["timings"]["batch_size"] == 1
        np.testing.assert_allclose(t.json()["actions"], a.json()["actions"], atol=1e-5, rtol=0)
    assert not np.allclose(together[0].json()["actions"], together[1].json()["actions"])
