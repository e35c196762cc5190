"""The simulated arm: a MuJoCo Franka Panda behind the robot interface (limits, speed-limited
servo setpoint, physics tracking, MuJoCo's renders, persistence)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import numpy as np
import pytest

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.errors import ConfigError
from reflex_core.robot.sim import PANDA_JOINTS, SimArm, load_model

FRANKA = EmbodimentConfig.load_preset("franka")


@pytest.fixture
def arm() -> Iterator[SimArm]:
    with SimArm(FRANKA, prompt="pick") as sim:
        yield sim


def test_the_model_is_the_panda_with_its_joint_limits() -> None:
    model = load_model()
    for name, (low, high) in zip(PANDA_JOINTS, FRANKA.action_ranges, strict=True):
        joint = model.joint(name)
        np.testing.assert_allclose(joint.range, [low, high], atol=1e-4)
        assert model.actuator(name).trnid[0] == joint.id
    assert {model.camera(i).name for i in range(model.ncam)} >= set(FRANKA.camera_names)


def test_starts_at_home_and_observes_state_and_every_camera(arm: SimArm) -> None:
    observation = arm.observe()
    np.testing.assert_allclose(observation["state"], FRANKA.normalization.mean_action, atol=1e-5)
    assert observation["state"].dtype == np.float32 and observation["prompt"] == "pick"
    assert set(observation["images"]) == {"wrist", "front"}
    for image in observation["images"].values():
        assert image.shape == (120, 160, 3) and image.dtype == np.uint8  # 640x480 at 1/4
        assert image.std() > 5  # a scene, not a blank frame


def test_targets_are_clipped_into_the_joint_ranges(arm: SimArm) -> None:
    for _ in range(120):
        arm.act(FRANKA.action_ranges[:, 1] + 1.0)
    assert arm.clipped == 120
    assert np.all(arm.q <= FRANKA.action_ranges[:, 1] + 1e-3)
    np.testing.assert_allclose(arm.target, FRANKA.action_ranges[:, 1])


def test_the_setpoint_moves_within_the_velocity_limit_and_the_physics_tracks_it(
    arm: SimArm,
) -> None:
    start = arm.q.copy()
    target = start.copy()
    target[1] += 1.0  # 1 rad: more than one tick allows at 2.175 rad/s and 15 Hz
    arm.act(target)
    step = FRANKA.constraints.max_joint_velocity[1] / 15
    assert arm.setpoint[1] - start[1] == pytest.approx(step)
    assert 0 < arm.q[1] - start[1] <= step + 1e-3
    assert arm.tracking_error() > 0.5
    for _ in range(30):
        arm.act(target)
    assert arm.tracking_error() < 0.03
    assert abs(arm.q[0] - start[0]) < 0.01  # the other joints held


def test_bad_commands_are_refused(arm: SimArm) -> None:
    with pytest.raises(ValueError):
        arm.act([0.0] * 3)
    with pytest.raises(ValueError):
        arm.act([float("nan")] * 8)


def test_images_follow_the_pose(arm: SimArm) -> None:
    before = arm.render()
    target = arm.q.copy()
    target[0] += 0.8
    target[3] += 0.8
    for _ in range(30):
        arm.act(target)
    after = arm.render()
    for name in before:
        assert np.mean(before[name] != after[name]) > 0.002, name


def test_round_trips_through_json(arm: SimArm) -> None:
    target = arm.q.copy()
    target[2] += 0.3
    for _ in range(3):
        arm.act(target)
    saved = json.loads(json.dumps(arm.to_dict()))
    with SimArm.from_dict(saved, FRANKA) as restored:
        np.testing.assert_allclose(restored.q, arm.q, atol=1e-9)
        np.testing.assert_array_equal(restored.target, arm.target)
        np.testing.assert_array_equal(restored.setpoint, arm.setpoint)
        assert restored.steps == arm.steps == 3


@pytest.mark.parametrize("name", ["so100", "ur5"])
def test_other_robots_are_refused_by_name(name: str) -> None:
    with pytest.raises(ConfigError, match="Franka Panda"):
        SimArm(EmbodimentConfig.load_preset(name))
