"""Fixtures: a franka-like embodiment, a scripted policy, and the guard composed around it."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import reflex_actionguard

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.plugin import ActRequest, ActResult, WedgeContext, WedgeSpec
from reflex_core.plugin.testing import enable, plugin_wedge

JOINTS = [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1"]
LOWER = np.array([-2.8, -1.7, -2.8, -3.0, -2.8, -0.01, -2.8, 0.0])
UPPER = np.array([2.8, 1.7, 2.8, -0.07, 2.8, 3.7, 2.8, 0.04])
MAX_VEL = np.array([2.0, 2.0, 2.0, 2.0, 2.5, 2.5, 2.5, 0.2])  # per second
HZ = 10.0  # so one step may move max_vel / 10
CHUNK = 5
PANDA_KINEMATICS = {
    "urdf": "kinematics/franka_panda.urdf",
    "base_link": "panda_link0",
    "ee_link": "panda_hand_tcp",
}
HOME = np.array([0.0, 0.0, 0.0, -1.5, 0.0, 1.5, 0.0, 0.02, 9.9], dtype=np.float32)  # state_dim 9


def franka_like_dict(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "embodiment": "custom",
        "joint_names": JOINTS,
        "action_space": {
            "type": "continuous",
            "dim": 8,
            "ranges": np.stack([LOWER, UPPER], axis=1).tolist(),
        },
        "normalization": {
            "mean_action": ((LOWER + UPPER) / 2).tolist(),
            "std_action": [1.0] * 8,
            "mean_state": [0.0] * 9,
            "std_state": [1.0] * 9,
        },
        "gripper": {"component_idx": 7, "close_threshold": 0.5, "inverted": False},
        "cameras": [{"name": "front", "resolution": [64, 64], "fps": 30, "color_space": "rgb8"}],
        "control": {"frequency_hz": HZ, "chunk_size": CHUNK, "rtc_execution_horizon": 2},
        "constraints": {
            # loose: the end-effector tests set their own; these joint tests stay about joints
            "max_ee_velocity": 10.0,
            "max_gripper_velocity": float(MAX_VEL[7]),
            "collision_check": False,
            "max_joint_velocity": MAX_VEL.tolist(),
        },
        # the Panda's kinematics shipped with reflex-core (embodiments/kinematics/)
        "kinematics": PANDA_KINEMATICS,
    }
    doc.update(overrides)
    return doc


@pytest.fixture
def embodiment() -> EmbodimentConfig:
    return EmbodimentConfig.from_dict(franka_like_dict(), source="test franka-like")


class ScriptedPolicy:
    """A BatchHandler that answers with chunks from a script: a fixed (T, D) array, or a
    callable of the request. Records the requests it saw."""

    def __init__(self, chunk: np.ndarray | Callable[[ActRequest], np.ndarray] | None = None):
        self.chunk = chunk if chunk is not None else np.tile(HOME[:8], (CHUNK, 1))
        self.seen: list[ActRequest] = []

    async def __call__(self, requests: Sequence[ActRequest]) -> list[ActResult]:
        results = []
        for r in requests:
            self.seen.append(r)
            chunk = self.chunk(r) if callable(self.chunk) else self.chunk
            results.append(
                ActResult(
                    actions=np.array(chunk, dtype=np.float32),
                    metadata={"policy": r.policy, "model": "scripted"},
                )
            )
        return results


@pytest.fixture
def guard_spec() -> WedgeSpec:
    return plugin_wedge(reflex_actionguard)


@pytest.fixture
def build_guard(
    guard_spec: WedgeSpec, wedge_chain: Any, _state_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[Any, WedgeContext]]:
    """``build_guard(values, policy, embodiment=...)`` -> (handler, ctx). Each guard gets its
    own state directory (``$REFLEX_STATE_DIR``, where its audit log goes by default): a test
    may build several, and one audit log has one writer."""
    built = itertools.count()

    def build(
        values: dict[str, Any],
        policy: Any,
        *,
        embodiment: Any = None,
        policies: dict[str, Any] | None = None,
    ) -> tuple[Any, WedgeContext]:
        monkeypatch.setenv("REFLEX_STATE_DIR", str(_state_dir / f"guard-{next(built)}"))
        chain = wedge_chain(
            policy, enable(guard_spec, values), policies=policies, embodiment=embodiment
        )
        assert chain.names == ["actionguard"]
        return chain.handler, chain.ctx

    return build


@pytest.fixture
def run() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    return asyncio.run


@pytest.fixture(autouse=True)
def _state_dir(reflex_state_dir: Path) -> Path:
    """The guard's audit log is on by default under the state directory: keep every test's
    in its own directory, never the user's."""
    return reflex_state_dir
