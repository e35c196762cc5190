"""reflex-aloha: installed through its entry point; the ALOHA embodiment against the ViperX model
gym-aloha ships; the adapter against gym-aloha's own env (same placement, same physics for the
same actions); the action/state mapping joint by joint; success as gym-aloha scores it (no
scripted policy ships with gym-aloha, so the cube is put in a gripper); a diverged simulation as
a failed episode; an episode end to end through ``reflex eval`` against a served tiny model."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from importlib import metadata
from pathlib import Path

import numpy as np
import pytest
from reflex_aloha import TASKS
from reflex_aloha.env import AlohaEnv

from reflex_core.embodiments import load_embodiment
from reflex_core.eval.env import EnvFailure
from reflex_core.plugin.manager import make_plugin_manager

REFLEX = str(Path(sys.executable).with_name("reflex"))


def test_entry_point_registers_the_env_and_the_aloha_embodiment() -> None:
    (ep,) = [e for e in metadata.entry_points(group="reflex.plugins") if e.name == "aloha"]
    assert ep.value == "reflex_aloha" and ep.dist is not None
    assert ep.dist.name == "reflex-aloha"
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "aloha"})
    assert pm.load_failures == []
    spec = pm.registry.envs["aloha"]
    assert pm.registry.owner("envs", "aloha") == "aloha"
    assert spec.tasks == TASKS == ("transfer_cube", "insertion") and spec.expert is None
    emb = load_embodiment(name=spec.embodiment, registry=pm.registry)
    assert (emb.state_dim, emb.action_dim, emb.control.frequency_hz) == (14, 14, 50.0)
    assert emb.action_kind == "joint_position" and emb.gripper is None
    assert emb.joint_names[:7] == [
        "left_waist", "left_shoulder", "left_elbow", "left_forearm_roll", "left_wrist_angle",
        "left_wrist_rotate", "left_gripper",
    ]  # fmt: skip
    assert emb.joint_names[7:] == [n.replace("left_", "right_") for n in emb.joint_names[:7]]


@pytest.fixture
def env() -> Iterator[AlohaEnv]:
    with AlohaEnv("transfer_cube", image_size=32) as adapter:
        yield adapter


def _mjcf_joint(name: str) -> str:
    side, _, joint = name.partition("_")
    return f"vx300s_{side}/{joint}"


def test_the_joint_limits_are_the_vx300s_model_s(env: AlohaEnv) -> None:
    """Every arm dimension's range is its MuJoCo joint's range and its actuator's ctrlrange
    (gym-aloha's MJCF repeats Interbotix's vx300s limits); the gripper range [0, 1] covers the
    fingers' travel once normalized."""
    from gym_aloha.constants import normalize_puppet_gripper_position

    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "aloha"})
    emb = load_embodiment(name="aloha", registry=pm.registry)
    model = env.physics.model.ptr
    import mujoco

    for name, (low, high) in zip(emb.joint_names, emb.action_ranges, strict=True):
        if name.endswith("_gripper"):
            finger = model.joint(_mjcf_joint(name.replace("gripper", "left_finger")))
            opening = normalize_puppet_gripper_position(np.asarray(finger.range))
            assert low <= opening[0] and opening[1] <= high, name
            continue
        joint = model.joint(_mjcf_joint(name))
        np.testing.assert_allclose(joint.range, [low, high], atol=1e-5, err_msg=name)
        actuator = next(
            i for i in range(model.nu) if model.actuator_trnid[i, 0] == joint.id
        )  # the position servo driving this joint
        assert model.actuator_trntype[actuator] == mujoco.mjtTrn.mjTRN_JOINT
        np.testing.assert_allclose(model.actuator_ctrlrange[actuator], [low, high], atol=1e-5)


def test_placement_and_physics_are_gym_aloha_s(env: AlohaEnv) -> None:
    """Same seed -> same start as gym-aloha's AlohaEnv; same actions -> the same simulation."""
    from gym_aloha.env import AlohaEnv as GymAloha

    reference = GymAloha("transfer_cube", obs_type="pixels_agent_pos")
    quality = reference._env.physics.model.ptr.vis.quality
    quality.offsamples, quality.shadowsize = 0, 0  # its renders cost seconds otherwise
    obs, _ = reference.reset(seed=7)
    env.reset(7)
    np.testing.assert_allclose(env.state(), obs["agent_pos"], atol=1e-6)
    np.testing.assert_array_equal(env.physics.data.qpos, reference._env.physics.data.qpos)
    rng = np.random.default_rng(0)
    for tick in range(6):
        action = env.state() + rng.normal(0.0, 0.05, 14).astype(np.float32)
        action[[6, 13]] = 1.0 if tick < 3 else 0.0  # open, then close both grippers
        obs, reward, *_ = reference.step(action.astype(np.float64))
        env.act(action)
        assert env.reward == reward
    np.testing.assert_allclose(env.state(), obs["agent_pos"], atol=1e-6)
    np.testing.assert_array_equal(env.physics.data.qpos, reference._env.physics.data.qpos)


def test_a_seed_fixes_the_placement(env: AlohaEnv) -> None:
    env.reset(3)
    first = env.object_poses()
    env.reset(4)
    other = env.object_poses()
    env.reset(3)
    np.testing.assert_array_equal(env.object_poses(), first)
    assert not np.array_equal(first[:3], other[:3])  # the cube moved


def test_each_action_dimension_drives_its_own_joint(env: AlohaEnv) -> None:
    """Command one dimension at a time away from the start pose: that dimension of the state
    follows it, the others stay (left/right and the gripper slots are not swapped)."""
    env.reset(0)
    home = env.state()
    targets = {1: -0.6, 9: -0.6, 4: 0.2, 12: 0.2, 6: 0.9, 13: 0.9}
    for dim, target in targets.items():
        env.reset(0)
        command = home.copy()
        command[dim] = target
        for _ in range(60):
            env.act(command)
        moved = np.abs(env.state() - home)
        assert abs(env.state()[dim] - target) < 0.05, (dim, env.state()[dim])
        others = np.delete(moved, dim)
        assert others.max() < 0.1 * abs(target - home[dim]), (dim, moved)


def test_holding_keeps_the_pose_and_does_not_succeed(env: AlohaEnv) -> None:
    env.reset(1)
    home = env.state()
    for _ in range(50):
        env.hold()
    np.testing.assert_allclose(env.state(), home, atol=0.02)
    assert not env.success and env.reward == 0.0


def _put_cube_in_gripper(env: AlohaEnv, side: str) -> None:
    """Place the cube between ``side``'s fingers (centre of the two finger pads), in the air."""
    model, data = env.physics.model.ptr, env.physics.data.ptr
    pads = []
    for finger in ("left", "right"):
        geom = model.geom(f"vx300s_{side}/10_{finger}_gripper_finger").id
        local_centre = model.geom_aabb[geom][:3]
        pads.append(data.geom_xpos[geom] + data.geom_xmat[geom].reshape(3, 3) @ local_centre)
    env.physics.named.data.qpos["red_box_joint"] = [*((pads[0] + pads[1]) / 2), 1, 0, 0, 0]
    env.physics.forward()


def test_success_is_the_cube_in_the_left_gripper_off_the_table(env: AlohaEnv) -> None:
    """gym-aloha's success, through the adapter: the cube held by the left gripper in the air
    scores the task's top reward (4) and the episode counts as a success, which stays once the
    cube is dropped; the same cube held by the right gripper scores 2 (lifted) and is no
    success."""
    for side, reward in (("right", 2.0), ("left", 4.0)):
        env.reset(0)
        _put_cube_in_gripper(env, side)
        grip = env.state()
        grip[[6, 13]] = 0.0  # close both grippers on it
        for _ in range(5):
            env.act(grip)
        assert env.reward == reward, side
        assert env.success is (side == "left")
    grip[6] = 1.0  # open the left gripper: the cube falls, the reward goes, the success stays
    for _ in range(40):
        env.act(grip)
    assert env.reward < 4.0 and env.success


def test_observe_renders_only_the_cameras_asked_for(env: AlohaEnv) -> None:
    env.reset(0)
    observation = env.observe()
    assert "images" not in observation and observation["state"].shape == (14,)
    images = env.observe(["top", "left_wrist"])["images"]
    assert set(images) == {"top", "left_wrist"}
    assert images["top"].shape == (32, 32, 3) and images["top"].dtype == np.uint8
    assert images["top"].std() > 5
    with pytest.raises(ValueError, match="no camera"):
        env.observe(["cam_high"])


def test_bad_actions_and_tasks_are_refused(env: AlohaEnv) -> None:
    env.reset(0)
    with pytest.raises(ValueError):
        env.act(np.zeros(7))
    with pytest.raises(ValueError):
        env.act(np.full(14, np.nan))
    with pytest.raises(ValueError, match="transfer_cube"):
        AlohaEnv("end_effector_insertion")


def test_a_diverged_simulation_is_an_env_failure_and_the_next_episode_runs(
    env: AlohaEnv,
) -> None:
    """A jump across the wrist rolls' whole range in one tick blows dm-control's physics up;
    the adapter says so as an EnvFailure, and a reset brings the simulation back."""
    env.reset(5)
    jump = env.state()
    jump[[3, 5, 10, 12]] = [3.1, -3.1, -3.1, 3.1]
    with pytest.raises(EnvFailure, match="diverged"):
        for _ in range(100):
            env.act(jump)
            jump[[3, 5, 10, 12]] *= -1
    env.reset(5)
    for _ in range(5):
        env.hold()
    assert np.isfinite(env.state()).all()


def test_expert_is_refused_up_front() -> None:
    """gym-aloha ships no scripted policy: ``--expert`` says so before starting any server."""
    result = subprocess.run(
        [REFLEX, "eval", "--expert", "--env", "aloha/transfer_cube", "--episodes", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode != 0
    assert "[env-no-expert]" in result.stderr and "starting" not in result.stderr


def test_the_tiny_checkpoint_is_labelled_for_aloha(tmp_path: Path) -> None:
    """The random-weight tiny model's lerobot files name ALOHA's camera, dims and stats."""
    from reflex_aloha.embodiment import aloha
    from reflex_aloha.tiny import write_tiny_checkpoint

    from reflex_core.eval.tiny import tiny_checkpoint_labels

    labels = tiny_checkpoint_labels(write_tiny_checkpoint(tmp_path / "ckpt"))
    assert labels["images"] == ["observation.images.top"]
    assert labels["state_shape"] == [14] and labels["action_shape"] == [14]
    assert all(f.endswith(".top") for f in labels["processor_images"])
    norm, stats = aloha()["normalization"], labels["stats"]
    np.testing.assert_allclose(stats["observation.state.mean"], norm["mean_state"], rtol=1e-6)
    np.testing.assert_allclose(stats["action.std"], norm["std_action"], rtol=1e-6)
    np.testing.assert_allclose(stats["action.max"][[6, 13]], [1.0, 1.0])


@pytest.mark.slow
def test_an_episode_runs_end_to_end_against_a_served_tiny_model(tmp_path: Path) -> None:
    """``reflex eval --artifact`` with the random-weight tiny pi0.5 exported for ALOHA: the server
    is started with ``--embodiment aloha``, the policy's camera is rendered and sent, chunks
    come back and are executed, and a random policy never transfers the cube."""
    from reflex_aloha.tiny import write_tiny_checkpoint

    env_vars = {**os.environ, "OMP_NUM_THREADS": "1"}
    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    artifact = tmp_path / "artifact"
    export = subprocess.run(
        [REFLEX, "export", str(checkpoint), "--embodiment", "aloha", "-o", str(artifact),
         "--parity-cases", "1", "-q"],
        capture_output=True, text=True, timeout=600, env=env_vars,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    health_cameras = json.loads((artifact / "reflex_config.json").read_text())
    assert health_cameras["state_dim"] == 14 and health_cameras["action_dim"] == 14
    out = tmp_path / "results.jsonl"
    result = subprocess.run(
        [REFLEX, "eval", "--artifact", str(artifact), "--env", "aloha/transfer_cube",
         "--episodes", "2", "--max-steps", "60", "--seed", "5", "--out", str(out),
         "--no-progress"],
        capture_output=True, text=True, timeout=600, env=env_vars,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    episodes = [r for r in lines if r["type"] == "episode"]
    (summary,) = [r for r in lines if r["type"] == "summary"]
    assert [r["seed"] for r in episodes] == [5, 6]
    for record in episodes:
        assert record["error"] is None, record
        assert record["chunks"] >= 1 and record["actions_executed"] >= 1, record
        assert record["latency_ms"]["p50"] > 0
        # 60 ticks, or ended early by a simulation the random targets blew up
        assert record["steps"] == 60 or record["stop_reason"] == "env_failure", record
    assert summary["successes"] == 0 and summary["errors"] == 0, summary
    assert "reflex eval: aloha/transfer_cube" in result.stdout
