"""The simulated arm: limits, first-order speed-limited response, rendering, persistence."""

from __future__ import annotations

import json

import numpy as np
import pytest

from reflex_core.embodiments import EmbodimentConfig, preset_names
from reflex_core.sim import SimArm, arm_points
from reflex_core.sim.kinematics import panda_points

FRANKA = EmbodimentConfig.load_preset("franka")


def test_starts_at_home_and_observes_state_and_every_camera() -> None:
    arm = SimArm(FRANKA, prompt="pick")
    observation = arm.observe()
    np.testing.assert_allclose(observation["state"], FRANKA.normalization.mean_action, atol=1e-6)
    assert observation["state"].dtype == np.float32 and observation["prompt"] == "pick"
    assert set(observation["images"]) == {"wrist", "front"}
    for image in observation["images"].values():
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8  # 640x480 at 1/4


def test_targets_are_clipped_into_the_joint_ranges() -> None:
    arm = SimArm(FRANKA)
    for _ in range(200):
        arm.act(FRANKA.action_ranges[:, 1] + 1.0)
    assert arm.clipped == 200
    np.testing.assert_allclose(arm.q, FRANKA.action_ranges[:, 1], atol=1e-3)
    assert np.all(arm.q <= FRANKA.action_ranges[:, 1])


def test_first_order_response_within_the_velocity_limit() -> None:
    arm = SimArm(FRANKA, time_constant_s=0.1)
    start = arm.q.copy()
    target = start.copy()
    target[0] += 0.05  # small: first-order, below the speed limit
    target[1] += 1.0  # large: speed limited
    arm.act(target)
    alpha = 1 - np.exp(-(1 / 15) / 0.1)
    assert arm.q[0] - start[0] == pytest.approx(alpha * 0.05)
    assert arm.q[1] - start[1] == pytest.approx(FRANKA.constraints.max_joint_velocity[1] / 15)
    assert arm.tracking_error() > 0.5
    for _ in range(60):
        arm.act(target)
    assert arm.tracking_error() < 1e-3


def test_bad_commands_are_refused() -> None:
    arm = SimArm(FRANKA)
    with pytest.raises(ValueError):
        arm.act([0.0] * 3)
    with pytest.raises(ValueError):
        arm.act([float("nan")] * 8)


def test_images_follow_the_pose() -> None:
    arm = SimArm(FRANKA)
    before = arm.render()
    target = arm.q.copy()
    target[1] += 1.0
    target[3] += 1.0
    for _ in range(30):
        arm.act(target)
    after = arm.render()
    for name in before:
        assert np.mean(before[name] != after[name]) > 0.002, name


def test_panda_kinematics_reach_matches_the_robot() -> None:
    points, rotation = panda_points(np.zeros(7))
    # all joints at zero: the Panda's flange is at (0.088, 0, 0.926), pointing down; the
    # fingertips are the hand's 0.1034 m further down
    assert points[1][2] == pytest.approx(0.333)
    np.testing.assert_allclose(points[-1], [0.088, 0.0, 0.926 - 0.1034], atol=1e-9)
    np.testing.assert_allclose(rotation @ rotation.T, np.eye(3), atol=1e-9)


@pytest.mark.parametrize("name", preset_names())
def test_every_preset_simulates_and_round_trips_through_json(name: str) -> None:
    embodiment = EmbodimentConfig.load_preset(name)
    arm = SimArm(embodiment)
    arm.act(embodiment.action_ranges.mean(axis=1))
    observation = arm.observe()
    assert observation["state"].shape == (embodiment.state_dim,)
    assert set(observation["images"]) == set(embodiment.camera_names)
    points, _ = arm_points(embodiment.name, arm.q)
    assert np.isfinite(points).all()
    saved = json.loads(json.dumps(arm.to_dict()))
    restored = SimArm.from_dict(saved, embodiment)
    np.testing.assert_array_equal(restored.q, arm.q)
    np.testing.assert_array_equal(restored.target, arm.target)
    assert restored.steps == arm.steps == 1
