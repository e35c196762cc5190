"""The guard inside the real server: through the ASGI app (httpx.ASGITransport), with the core's
runtime-shaped policy double standing in for the ORT runtime and the franka preset as the
embodiment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import reflex_actionguard

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.errors import ConfigError
from reflex_core.plugin.kit.jsonl import read_jsonl
from reflex_core.plugin.testing import (
    FakeBatchPolicy,
    FakePolicyOutput,
    FakeRuntimePolicy,
    asgi_client,
    serve_lifespan,
    wedge_server,
)

pytestmark = pytest.mark.anyio
# Inside the franka limits; the double's actions land around tanh(state @ W) + noise.
STATE = [0.0, 0.1, 0.2, -1.5, 0.3, 1.5, 0.1, 0.02]
CHUNK = 10


def franka_shaped(policy_cls: type[FakeRuntimePolicy] = FakeRuntimePolicy) -> FakeRuntimePolicy:
    """The double with the franka preset's state and action widths."""
    return policy_cls(
        math=FakeBatchPolicy(state_dim=8, action_dim=8, chunk_size=CHUNK, max_action_dim=32)
    )


class NanPolicy(FakeRuntimePolicy):
    """The double, returning a NaN in every chunk."""

    def infer(self, observations: Any, noise: Any = None) -> FakePolicyOutput:
        output = super().infer(observations, noise)
        output.actions[:, 2, 3] = np.nan
        return output


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def make_app(sections: dict[str, Any], policy: Any = None, embodiment: Any = "franka") -> Any:
    return wedge_server(
        {"actionguard": reflex_actionguard},
        {"default": policy or franka_shaped()},
        sections=sections,
        embodiment=EmbodimentConfig.load_preset(embodiment) if embodiment else None,
    ).app


def client_for(app: Any, token: str | None = None) -> httpx.AsyncClient:
    return asgi_client(app, headers={"Authorization": f"Bearer {token}"} if token else {})


async def test_act_goes_through_the_guard_and_the_audit_log(tmp_path: Path) -> None:
    log = tmp_path / "guard.jsonl"
    app = make_app({"actionguard": {"guard": "clamp", "guard-audit-log": str(log)}})
    async with serve_lifespan(app), client_for(app) as client:
        r = await client.post(
            "/act", json={"state": STATE, "episode_id": "ep"}, headers={"X-Request-ID": "r-1"}
        )
        assert r.status_code == 200, r.text
        body = r.json()
        guard = body["metadata"]["guard"]
        assert guard["verdict"] in ("pass", "clamped")
        actions = np.asarray(body["actions"])
        franka = EmbodimentConfig.load_preset("franka")
        assert (actions >= franka.action_ranges[:, 0] - 1e-6).all()
        assert (actions <= franka.action_ranges[:, 1] + 1e-6).all()
        health = (await client.get("/health")).json()
        assert health["wedges"] == ["actionguard"]
        assert health["wedge_health"]["guard"]["state"] == "armed"
        metrics = (await client.get("/metrics")).text
        assert f'reflex_guard_decisions_total{{verdict="{guard["verdict"]}"}} 1.0' in metrics
        assert "reflex_guard_tripped 0.0" in metrics
    (record,) = read_jsonl(log).records
    assert record["request_id"] == "r-1" and record["episode_id"] == "ep"
    assert record["policy"] == "default" and record["verdict"] == guard["verdict"]


async def test_a_nan_chunk_never_leaves_and_the_guard_trips(tmp_path: Path) -> None:
    app = make_app(
        {"actionguard": {"guard": "clamp", "guard-trip-after": 2}}, franka_shaped(NanPolicy)
    )
    async with serve_lifespan(app), client_for(app) as client:
        for _ in range(2):
            r = await client.post("/act", json={"state": STATE})
            assert r.status_code == 200
            assert np.isfinite(np.asarray(r.json()["actions"])).all()
            assert r.json()["metadata"]["guard"]["verdict"] == "rejected"
            np.testing.assert_allclose(r.json()["actions"], np.tile(STATE, (CHUNK, 1)), rtol=1e-6)
        r = await client.post("/act", json={"state": STATE})
        assert r.status_code == 503 and r.json()["error"] == "guard-tripped"
        health = await client.get("/health")
        assert health.status_code == 503 and health.json()["status"] == "degraded"
        status = (await client.get("/guard/status")).json()
        assert status["state"] == "tripped"
        assert status["last_violations"][-1]["violations"][0]["kind"] == "non-finite"
        reset = await client.post("/guard/reset")
        assert reset.status_code == 200 and reset.json()["was_tripped"] is True
        assert (await client.get("/health")).json()["status"] == "ready"
        r = await client.post("/act", json={"state": STATE})
        assert r.status_code == 200 and r.json()["metadata"]["guard"]["verdict"] == "rejected"


async def test_guard_routes_sit_behind_auth() -> None:
    app = make_app({"actionguard": {"guard": "reject"}, "serve": {"api-key": "s3cret"}})
    async with serve_lifespan(app):
        async with client_for(app) as anonymous:
            assert (await anonymous.get("/guard/status")).status_code == 401
            assert (await anonymous.post("/guard/reset")).status_code == 401
            assert (await anonymous.get("/health")).status_code == 200  # open, as designed
        async with client_for(app, "s3cret") as client:
            assert (await client.get("/guard/status")).json()["mode"] == "reject"


async def test_guard_without_an_embodiment_refuses_to_start() -> None:
    app = make_app({"actionguard": {"guard": "clamp"}}, embodiment=None)
    async with serve_lifespan(app, wait_ready=False) as server, client_for(app) as client:
        with pytest.raises(ConfigError):
            await server.wait_ready()
        health = await client.get("/health")
        assert health.status_code == 503
        assert health.json()["error"]["error"] == "guard-needs-embodiment"
