"""reflex-robosuite: installed through its entry point without importing robosuite; the
``panda-robosuite`` embodiment against robosuite's Panda model (joint ranges, rate, cameras) and
against the ``franka`` preset and its URDF; the adapter against robosuite's own env (same
placement, same physics for the same commands); the action/state mapping joint by joint and the
finger at robosuite's gripper speed; success as robosuite's ``_check_success()`` scores it, in
every task (no scripted policy ships with robosuite, so the objects are put where success is);
a diverged simulation as a failed episode; ``--expert`` refused; an episode end to end through
``reflex eval`` against a served tiny model."""

from __future__ import annotations

import inspect
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

os.environ.setdefault("MUJOCO_GL", "egl")  # before anything imports mujoco

import numpy as np
import pytest
from reflex_robosuite import TASKS
from reflex_robosuite.embodiment import ARM_LIMITS, FINGER_STEP_M, panda_robosuite
from reflex_robosuite.env import HORIZON, RobosuiteEnv, controller_config

from reflex_core.embodiments import load_embodiment
from reflex_core.eval import testing
from reflex_core.eval.env import EnvFailure
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.testing import installed_plugin


def _embodiment() -> object:
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "robosuite"})
    return load_embodiment(name="panda-robosuite", registry=pm.registry)


def test_entry_point_registers_the_env_and_the_embodiment_without_importing_robosuite() -> None:
    pm = installed_plugin("robosuite", "reflex-robosuite", "reflex_robosuite")
    spec = pm.registry.envs["robosuite"]
    assert pm.registry.owner("envs", "robosuite") == "robosuite"
    assert pm.registry.owner("embodiments", "panda-robosuite") == "robosuite"
    assert spec.tasks == TASKS == ("Lift", "Stack", "PickPlaceCan", "Door")
    assert spec.default_task == "Lift" and spec.expert is None
    assert spec.embodiment == "panda-robosuite" and spec.max_steps == HORIZON == 1000
    # registering (what `reflex plugins` and every command does) never loads the simulator
    code = (
        "import sys; from reflex_core.plugin.manager import make_plugin_manager; "
        "pm = make_plugin_manager(env={'REFLEX_LOAD_PLUGINS': 'robosuite'}); "
        "assert 'robosuite' in pm.registry.envs; "
        "print(sorted(m for m in ('robosuite', 'mujoco', 'numba') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_embodiment_is_the_franka_presets_panda_at_robosuites_rate() -> None:
    """Same joints, limits, action kind, gripper convention and kinematics as the ``franka``
    preset; what differs is robosuite's: 20 Hz, its cameras, its finger speed."""
    emb = _embodiment()
    franka = load_embodiment(name="franka")
    assert (emb.state_dim, emb.action_dim, emb.control.frequency_hz) == (8, 8, 20.0)
    assert emb.action_kind == franka.action_kind == "joint_position"
    assert emb.joint_names == franka.joint_names
    np.testing.assert_array_equal(emb.action_ranges, franka.action_ranges)
    assert emb.gripper == franka.gripper
    assert emb.kinematics == franka.kinematics
    np.testing.assert_array_equal(
        emb.constraints.max_joint_velocity[:7], franka.constraints.max_joint_velocity[:7]
    )
    assert emb.constraints.max_gripper_velocity == pytest.approx(0.08)
    assert [c.name for c in emb.cameras] == ["agentview", "robot0_eye_in_hand"]
    assert emb.kinematic_chain() is not None  # the URDF chain resolves and matches the names


@pytest.fixture(scope="module")
def env() -> Iterator[RobosuiteEnv]:
    with RobosuiteEnv("Lift", image_size=32) as adapter:
        yield adapter


def test_the_embodiment_matches_robosuites_panda_model(env: RobosuiteEnv) -> None:
    """Every arm dimension's range is robosuite's MJCF joint range, the finger's is its slide
    joint's; one tick is 25 of robosuite's 2 ms substeps; the cameras exist in the scene; the
    controller is robosuite's JOINT_POSITION with absolute input."""
    emb = _embodiment()
    model = env.model
    names = [*env.robot.robot_joints, env.gripper.joints[0]]
    assert names[0] == "robot0_joint1" and names[7] == "gripper0_right_finger_joint1"
    for name, (low, high) in zip(names, emb.action_ranges, strict=True):
        np.testing.assert_allclose(model.joint(name).range, [low, high], atol=1e-6, err_msg=name)
    assert env.frequency_hz == emb.control.frequency_hz == 1.0 / env.env.control_timestep
    assert round(env.env.control_timestep / model.opt.timestep) == 25
    assert {c.name for c in emb.cameras} <= set(env.camera_names)
    arm = env.robot.part_controllers["right"]
    assert arm.name == "JOINT_POSITION" and arm.input_type == "absolute"
    assert env.env.action_dim == 8  # 7 joints + robosuite's one gripper command


def test_the_kinematics_block_is_robosuites_panda(env: RobosuiteEnv) -> None:
    """The shipped franka_panda.urdf chain puts the flange where robosuite's Panda has its hand
    body (within 1 mm) and the TCP within 1 cm of robosuite's grip site, in any pose."""
    import mujoco

    chain = _embodiment().kinematic_chain()
    model, data = env.model, env.data
    base = model.body("robot0_link0").id
    rng = np.random.default_rng(0)
    lows, highs = np.array(ARM_LIMITS).T
    saved = data.qpos.copy()
    try:
        for _ in range(5):
            q = np.append(rng.uniform(lows, highs), 0.02)
            data.qpos[env._arm_qpos] = q[:7]
            mujoco.mj_forward(model, data)
            frame, origin = data.xmat[base].reshape(3, 3), data.xpos[base]
            hand = frame.T @ (data.xpos[model.body("robot0_right_hand").id] - origin)
            grip = frame.T @ (data.site_xpos[model.site("gripper0_right_grip_site").id] - origin)
            rotation, tcp = chain.transforms(q)
            flange = tcp[0] - 0.1034 * rotation[0][:, 2]  # panda_hand_tcp is 0.1034 m out
            assert np.linalg.norm(hand - flange) < 1e-3
            assert np.linalg.norm(grip - tcp[0]) < 1e-2
    finally:
        data.qpos[:] = saved
        mujoco.mj_forward(model, data)


def test_the_tasks_and_horizon_are_robosuites() -> None:
    """Every task is a robosuite environment, and ``max_steps`` is each one's own default
    horizon."""
    import robosuite

    for task in TASKS:
        assert task in robosuite.ALL_ENVIRONMENTS, task
        # the first class up the MRO that names it (PickPlaceCan passes **kwargs to PickPlace)
        horizon = next(
            parameters["horizon"].default
            for klass in robosuite.environments.REGISTERED_ENVS[task].__mro__
            if "horizon" in (parameters := inspect.signature(klass.__init__).parameters)
        )
        assert horizon == HORIZON, task


def test_a_seed_fixes_the_placement_and_the_start_pose(env: RobosuiteEnv) -> None:
    """The same seed gives the same cube pose and the same (noisy) start pose of the arm;
    another seed moves both."""
    lift = env.env

    def start() -> tuple[np.ndarray, np.ndarray]:
        return lift.sim.data.body_xpos[lift.cube_body_id].copy(), env.state()

    (cube, pose), (other_cube, other_pose) = testing.check_seeded_start(env, start)
    assert not np.array_equal(cube[:2], other_cube[:2])
    assert not np.array_equal(pose[:7], other_pose[:7])


def test_the_physics_is_robosuites_own(env: RobosuiteEnv) -> None:
    """robosuite's env built the same way, put in the same random state, reset and stepped with
    the same joint targets and robosuite's gripper commands, ends in the same state bit for
    bit: the adapter adds nothing to the simulation but the finger target -> gripper command."""
    import robosuite

    reference = robosuite.make(
        "Lift", robots="Panda", controller_configs=controller_config(), control_freq=20,
        has_renderer=False, has_offscreen_renderer=False, use_camera_obs=False,
        ignore_done=True, hard_reset=False, seed=0,
    )  # fmt: skip
    try:
        env.reset(7)
        reference.rng.bit_generator.state = np.random.default_rng(7).bit_generator.state
        reference.reset()
        np.testing.assert_array_equal(env.data.qpos, reference.sim.data.qpos)
        rng = np.random.default_rng(0)
        home = env.state()
        for tick in range(12):
            action = home + np.append(rng.normal(0.0, 0.05, 7), 0.0).astype(np.float32)
            action[7] = 0.04 if tick < 6 else 0.0  # open, then close
            env._finger_target = float(action[7])
            command = env.gripper_action()  # the gripper command act() sends robosuite
            env.act(action)
            _, reward, _, _ = reference.step(np.append(action[:7].astype(np.float64), command))
            assert env.reward == reward
        np.testing.assert_array_equal(env.data.qpos, reference.sim.data.qpos)
    finally:
        reference.close()


def test_each_joint_follows_its_own_target(env: RobosuiteEnv) -> None:
    """Command one arm dimension at a time away from the start pose: that joint reaches its
    target (robosuite's kp 50 controller: within 0.01 rad in 2 s), the others stay."""
    env.reset(0)
    home = env.state()
    for dim in range(7):
        env.reset(0)
        command = home.copy()
        command[dim] += 0.3 if dim != 3 else -0.3
        for _ in range(40):
            env.act(command)
        state = env.state()
        assert abs(state[dim] - command[dim]) < 0.01, (dim, state[dim], command[dim])
        others = np.delete(np.abs(state[:7] - home[:7]), dim)
        assert others.max() < 0.03, (dim, others)


def test_the_finger_goes_to_its_target_at_robosuites_gripper_speed(env: RobosuiteEnv) -> None:
    """The finger target moves 4 mm per tick toward the commanded opening (robosuite's gripper
    speed), then stays within half a step of it; the measured finger follows."""
    env.reset(0)
    action = env.state()
    start = env.finger_command()
    assert start == pytest.approx(0.02)  # robosuite starts the gripper half open
    action[7] = 0.04
    env.act(action)
    assert env.finger_command() == pytest.approx(start + FINGER_STEP_M)
    for _ in range(20):
        env.act(action)
    assert env.finger_command() == pytest.approx(0.04)
    assert env.state()[7] == pytest.approx(0.04, abs=2e-3)
    action[7] = 0.01  # a target between robosuite's steps: the nearest one, and it stays
    for _ in range(30):
        env.act(action)
    assert abs(env.finger_command() - 0.01) <= FINGER_STEP_M / 2 + 1e-9
    assert env.gripper_action() == 0.0
    assert env.state()[7] == pytest.approx(env.finger_command(), abs=2e-3)
    action[7] = 0.0
    for _ in range(20):
        env.act(action)
    assert env.finger_command() == pytest.approx(0.0) and env.state()[7] < 2e-3


def test_holding_keeps_the_pose_and_does_not_succeed(env: RobosuiteEnv) -> None:
    testing.check_holding(env, seed=1, ticks=40, atol=0.01)


def _place(env: RobosuiteEnv, body: str, position: np.ndarray) -> None:
    """Put a free-jointed body at ``position`` (world, m), upright and at rest."""
    import mujoco

    model, data = env.model, env.data
    joint = model.jnt_bodyid.tolist().index(model.body(body).id)
    address = model.jnt_qposadr[joint]
    data.qpos[address : address + 7] = [*position, 1.0, 0.0, 0.0, 0.0]
    data.qvel[model.jnt_dofadr[joint] : model.jnt_dofadr[joint] + 6] = 0.0
    mujoco.mj_forward(model, data)


def test_success_is_robosuites_check_success_and_stays(env: RobosuiteEnv) -> None:
    """Lift: the cube put 10 cm above the table is a success (robosuite's ``_check_success``:
    4 cm above the table top) with robosuite's sparse reward 1; it stays a success after the
    cube has fallen back, while robosuite's own check says no more."""
    env.reset(2)
    lift = env.env
    cube = lift.sim.model.body_id2name(lift.cube_body_id)
    table_top = lift.model.mujoco_arena.table_offset[2]
    position = lift.sim.data.body_xpos[lift.cube_body_id].copy()
    _place(env, cube, np.array([position[0], position[1], table_top + 0.1]))
    env.hold()
    assert env.success and lift._check_success() and env.reward == 1.0
    for _ in range(20):
        env.hold()
    assert not lift._check_success() and env.reward == 0.0
    assert env.success


def _stack(env: RobosuiteEnv) -> None:
    task = env.env
    bottom = task.sim.data.body_xpos[task.cubeB_body_id].copy()
    above = bottom + [0.0, 0.0, 0.025 + 0.02 + 0.002]  # cubeB's and cubeA's half sizes
    _place(env, task.sim.model.body_id2name(task.cubeA_body_id), above)


def _can_in_bin(env: RobosuiteEnv) -> None:
    task = env.env
    (index,) = [i for i, o in enumerate(task.objects) if o.name == "Can"]
    target = task.target_bin_placements[index] + [0.0, 0.0, 0.05]
    _place(env, task.objects[index].root_body, target)


def _open_door(env: RobosuiteEnv) -> None:
    env.data.qpos[env.env.hinge_qpos_addr] = 0.5


@pytest.mark.parametrize(
    ("task", "put"), [("Stack", _stack), ("PickPlaceCan", _can_in_bin), ("Door", _open_door)]
)
def test_every_task_scores_robosuites_success(task: str, put: object) -> None:
    """The red cube set on the green one (Stack), the can dropped in its bin (PickPlaceCan), the
    door swung 0.5 rad open (Door): the adapter reports success exactly when robosuite's
    ``_check_success()`` does; holding from the start does not."""
    with RobosuiteEnv(task, image_size=0) as adapter:
        adapter.reset(0)
        for _ in range(5):
            adapter.hold()
        assert not adapter.success and not adapter.env._check_success()
        put(adapter)  # type: ignore[operator]
        for _ in range(10):
            adapter.hold()
        assert adapter.env._check_success() and adapter.success, task
        assert adapter.prompt and adapter.observe()["state"].shape == (8,)


def test_observe_renders_only_the_cameras_asked_for(env: RobosuiteEnv) -> None:
    env.reset(0)
    cameras = ["agentview", "robot0_eye_in_hand"]
    testing.check_observe(env, cameras, 32, state_dim=8, unknown_camera="wrist")
    assert env.observe()["prompt"] == "lift the red cube"
    assert env.render_frame(48).shape == (48, 48, 3)


def test_the_renders_are_robosuites_camera_views_upright(env: RobosuiteEnv) -> None:
    """A render is what robosuite's own offscreen renderer shows from that camera (its visual
    meshes, not its collision geoms) turned right side up: robosuite's images are upside down
    (its default ``opengl`` convention). Only shadows and multisampling differ."""
    from robosuite.utils.binding_utils import MjRenderContextOffscreen

    env.reset(0)
    mine = env._render("agentview", 96).astype(int)
    context = MjRenderContextOffscreen(env.env.sim, device_id=-1)
    context.vopt.geomgroup[0], context.vopt.geomgroup[1] = 0, 1  # robosuite's defaults
    theirs = env.env.sim.render(width=96, height=96, camera_name="agentview").astype(int)
    assert np.abs(mine - theirs[::-1]).mean() < 3.0  # measured: 0.5 of 255
    assert np.abs(mine - theirs).mean() > 20.0  # not upside down


def test_bad_actions_and_tasks_are_refused(env: RobosuiteEnv) -> None:
    testing.check_refuses_bad_actions(env, 8)
    with pytest.raises(ValueError, match="Lift"):
        RobosuiteEnv("TwoArmLift")


def test_a_diverged_simulation_is_an_env_failure_and_the_next_episode_runs(
    env: RobosuiteEnv, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A velocity MuJoCo cannot integrate makes it reset the simulation on its own: the adapter
    says so as an EnvFailure, and a reset brings the episode back."""
    monkeypatch.chdir(tmp_path)  # MuJoCo appends its warning to ./MUJOCO_LOG.TXT
    env.reset(5)
    env.data.qvel[env.model.jnt_dofadr[env.model.joint("robot0_joint1").id]] = 1e12
    with pytest.raises(EnvFailure, match="diverged"):
        env.hold()
    testing.check_recovers(env, seed=5)
    assert not env.success


def test_a_missing_robosuite_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "robosuite", None)  # import robosuite now fails
    with pytest.raises(ModuleNotFoundError, match="--no-deps robosuite==1.5.2"):
        RobosuiteEnv("Lift")


def test_expert_is_refused_up_front() -> None:
    """robosuite ships no scripted policy: ``--expert`` says so before starting any server."""
    testing.check_no_expert("robosuite/Lift")


def test_the_tiny_checkpoint_is_labelled_for_the_panda(tmp_path: Path) -> None:
    """The random-weight tiny model's lerobot files name robosuite's camera, dims and stats."""
    from reflex_robosuite.tiny import write_tiny_checkpoint

    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    labels = testing.check_tiny_checkpoint(checkpoint, panda_robosuite(), ["agentview"])
    assert labels["state_shape"] == [8] and labels["action_shape"] == [8]
    np.testing.assert_allclose(labels["stats"]["action.max"][7], 0.04, rtol=1e-6)


@pytest.mark.slow
def test_an_episode_runs_end_to_end_against_a_served_tiny_model(tmp_path: Path) -> None:
    """``reflex eval --artifact`` with the random-weight tiny pi0.5 exported for the Panda: the
    server is started with ``--embodiment panda-robosuite``, the policy's camera is rendered and
    sent, chunks come back and are executed, and a random policy lifts no cube."""
    from reflex_robosuite.tiny import write_tiny_checkpoint

    # --graceful-timeout-s: on SIGTERM the server eval started waits that long (default 30 s)
    # for a connection the finished evaluation leaves open (~20 s measured, whatever the env);
    # how fast the harness stops its server is not what this test checks
    config, episodes = testing.tiny_model_episodes(
        tmp_path, write_tiny_checkpoint, "panda-robosuite", "robosuite/Lift", 40,
        "--graceful-timeout-s", "2",
    )  # fmt: skip
    assert config["state_dim"] == 8 and config["action_dim"] == 8
    for record in episodes:
        assert record["failure"] is None, record
        assert record["steps"] == 40 and record["success"] is False, record
