"""reflex-aloha: installed through its entry point; the ALOHA embodiment against the ViperX model
gym-aloha ships; the adapter against gym-aloha's own env (same placement, same physics for the
same actions); the action/state mapping joint by joint; success as gym-aloha scores it (no
scripted policy ships with gym-aloha, so the cube is put in a gripper); a diverged simulation as
a failed episode; an episode end to end through ``reflex eval`` against a served tiny model."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from reflex_aloha import TASKS
from reflex_aloha.embodiment import aloha
from reflex_aloha.env import AlohaEnv

from reflex_core.embodiments import load_embodiment
from reflex_core.eval import testing
from reflex_core.eval.env import EnvFailure
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.testing import installed_plugin


def test_entry_point_registers_the_env_and_the_aloha_embodiment() -> None:
    pm = installed_plugin("aloha", "reflex-aloha", "reflex_aloha")
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
    first, other = testing.check_seeded_start(env, env.object_poses)
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
    testing.check_holding(env, seed=1, ticks=50, atol=0.02)


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
    testing.check_observe(env, ["top", "left_wrist"], 32, state_dim=14, unknown_camera="cam_high")


def test_bad_actions_and_tasks_are_refused(env: AlohaEnv) -> None:
    testing.check_refuses_bad_actions(env, 14)
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
    testing.check_recovers(env, seed=5)


def test_expert_is_refused_up_front() -> None:
    """gym-aloha ships no scripted policy: ``--expert`` says so before starting any server."""
    testing.check_no_expert("aloha/transfer_cube")


def test_the_tiny_checkpoint_is_labelled_for_aloha(tmp_path: Path) -> None:
    """The random-weight tiny model's lerobot files name ALOHA's camera, dims and stats."""
    from reflex_aloha.tiny import write_tiny_checkpoint

    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    labels = testing.check_tiny_checkpoint(checkpoint, aloha(), ["top"])
    assert labels["state_shape"] == [14] and labels["action_shape"] == [14]
    np.testing.assert_allclose(labels["stats"]["action.max"][[6, 13]], [1.0, 1.0])


@pytest.mark.slow
def test_an_episode_runs_end_to_end_against_a_served_tiny_model(tmp_path: Path) -> None:
    """``reflex eval --artifact`` with the random-weight tiny pi0.5 exported for ALOHA: the server
    is started with ``--embodiment aloha``, the policy's camera is rendered and sent, chunks
    come back and are executed, and a random policy never transfers the cube."""
    from reflex_aloha.tiny import write_tiny_checkpoint

    config, episodes = testing.tiny_model_episodes(
        tmp_path, write_tiny_checkpoint, "aloha", "aloha/transfer_cube", 60
    )
    assert config["state_dim"] == 14 and config["action_dim"] == 14
    for record in episodes:
        # 60 ticks, or ended early by a simulation the random targets blew up
        assert record["steps"] == 60 or record["stop_reason"] == "env_failure", record
