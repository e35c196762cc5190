"""What an action means (``action_space.kind``) and the end-effector speed limit
(``constraints.max_ee_velocity``), as the guard enforces them."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import pytest
from reflex_actionguard.checks import clamp_chunk, inspect_chunk
from reflex_actionguard.limits import limits_from_embodiment

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.errors import ConfigError, Unavailable
from reflex_core.plugin.testing import make_request

from .conftest import CHUNK, HOME, HZ, ScriptedPolicy, franka_like_dict


def embodiment_with(**changes: Any) -> EmbodimentConfig:
    """The franka-like test robot with dotted-path changes (``constraints.max_ee_velocity``)."""
    doc = franka_like_dict()
    for path, value in changes.items():
        *parents, leaf = path.split("__")
        node = doc
        for key in parents:
            node = node[key]
        if value is None and leaf in node:
            del node[leaf]
        else:
            node[leaf] = copy.deepcopy(value)
    return EmbodimentConfig.from_dict(doc)


def tcp_speeds(emb: EmbodimentConfig, start: np.ndarray, chunk: np.ndarray) -> np.ndarray:
    points = emb.kinematic_chain().positions(np.vstack([start[None, :], chunk]))
    return np.linalg.norm(np.diff(points, axis=0), axis=1) * HZ


def swing(per_step: float, start: np.ndarray = HOME[:8]) -> np.ndarray:
    """Joint 1 turning ``per_step`` rad per control step from ``start``."""
    chunk = np.tile(start, (CHUNK, 1)).astype(np.float32)
    chunk[:, 0] = start[0] + per_step * np.arange(1, CHUNK + 1)
    return chunk


# -- the end-effector speed limit ------------------------------------------------------------


def test_the_end_effector_limit_is_enforced_from_the_urdf(build_guard, run) -> None:
    # 0.15 rad/step of joint 1 is 1.5 rad/s, inside its 2.0 rad/s limit, but it swings the TCP
    # (about 0.55 m out at HOME) at ~0.8 m/s: over a 0.5 m/s end-effector limit.
    emb = embodiment_with(constraints__max_ee_velocity=0.5)
    chunk = swing(0.15)
    start = HOME[:8].astype(np.float64)
    assert tcp_speeds(emb, start, chunk).min() > 0.5  # every step is too fast for the TCP
    guard, _ = build_guard({"guard": "reject"}, ScriptedPolicy(chunk), embodiment=emb)
    result = run(guard(make_request(HOME)))
    meta = result.metadata["guard"]
    assert meta["verdict"] == "rejected"
    (violation,) = meta["violations"]
    assert violation["kind"] == "ee-velocity" and violation["joint"] == "panda_hand_tcp"
    assert violation["steps"] == CHUNK and violation["first_step"] == 0
    assert violation["limit"] == 0.5 and violation["worst"] > 0.75

    clamped, _ = build_guard({"guard": "clamp"}, ScriptedPolicy(chunk), embodiment=emb)
    out = run(clamped(make_request(HOME))).actions
    speeds = tcp_speeds(emb, start, out.astype(np.float64))
    assert speeds.max() <= 0.5 * (1 + 1e-4) and speeds.min() > 0.45  # slowed, not stopped
    assert (np.diff(np.concatenate([[0.0], out[:, 0]])) > 0).all()  # still turning the same way


def test_the_end_effector_limit_holds_across_chunk_boundaries(build_guard, run) -> None:
    emb = embodiment_with(constraints__max_ee_velocity=0.5)
    first = np.tile(HOME[:8], (CHUNK, 1)).astype(np.float32)
    second = first.copy()
    second[:, 0] = 0.12  # a jump of joint 1: 1.2 rad/s, fine for the joint, not for the TCP
    chunks = iter([first, second])
    guard, _ = build_guard(
        {"guard": "reject"}, ScriptedPolicy(lambda r: next(chunks)), embodiment=emb
    )
    assert run(guard(make_request(HOME, episode_id="ep")))
    result = run(guard(make_request(HOME, episode_id="ep")))
    (violation,) = result.metadata["guard"]["violations"]
    assert violation["kind"] == "ee-velocity" and violation["first_step"] == 0
    assert violation["steps"] == 1  # only the jump into the chunk


def test_an_end_effector_limit_without_kinematics_is_refused(build_guard) -> None:
    emb = embodiment_with(kinematics=None)
    with pytest.raises(ConfigError) as exc:
        build_guard({"guard": "clamp"}, ScriptedPolicy(), embodiment=emb)
    assert exc.value.slug == "guard-ee-velocity-unenforceable"


def test_end_effector_actions_are_held_to_the_limit_directly(build_guard, run) -> None:
    emb = ee_delta_embodiment(max_ee=1.0)
    chunk = np.zeros((CHUNK, 7), np.float32)
    chunk[:, :3] = [0.12, 0.16, 0.0]  # 0.2 m per step at 10 Hz: 2 m/s
    chunk[:, 6] = 1.0
    guard, _ = build_guard({"guard": "clamp"}, ScriptedPolicy(chunk), embodiment=emb)
    result = run(guard(make_request(np.zeros(8))))
    assert result.metadata["guard"]["verdict"] == "clamped"
    assert {v["kind"] for v in result.metadata["guard"]["violations"]} == {"ee-velocity"}
    out = result.actions
    np.testing.assert_allclose(np.linalg.norm(out[:, :3], axis=1) * HZ, 1.0 * 0.999, rtol=1e-4)
    np.testing.assert_allclose(
        out[:, :3] / np.linalg.norm(out[:, :3], axis=1)[:, None], [[0.6, 0.8, 0]] * CHUNK, atol=1e-6
    )
    np.testing.assert_array_equal(out[:, 6], 1.0)  # the gripper target is not scaled


# -- action kinds --------------------------------------------------------------------------------


def joint_delta_embodiment(**changes: Any) -> EmbodimentConfig:
    """The franka-like test robot commanded in joint steps (at most 0.5 rad a step), with
    further ``embodiment_with`` changes."""
    return embodiment_with(
        action_space__kind="joint_delta",
        action_space__ranges=[[-0.5, 0.5]] * 7 + [[0.0, 0.04]],
        normalization__mean_action=[0.0] * 7 + [0.02],
        **changes,
    )


def test_joint_deltas_are_steps_not_positions(build_guard, run) -> None:
    emb = joint_delta_embodiment()
    calm = np.zeros((CHUNK, 8), np.float32)
    calm[:, 0] = 0.1  # 0.1 rad per step: 1 rad/s, inside 2 rad/s; far from the state as a position
    calm[:, 7] = 0.02
    guard, _ = build_guard({"guard": "reject"}, ScriptedPolicy(calm), embodiment=emb)
    assert run(guard(make_request(HOME))).metadata["guard"]["verdict"] == "pass"

    fast = calm.copy()
    fast[:, 0] = 0.3  # every step is 3 rad/s, though consecutive rows are equal
    guard, _ = build_guard({"guard": "clamp"}, ScriptedPolicy(fast), embodiment=emb)
    result = run(guard(make_request(HOME)))
    (violation,) = result.metadata["guard"]["violations"]
    assert violation["kind"] == "velocity" and violation["steps"] == CHUNK
    assert violation["worst"] == pytest.approx(3.0, rel=1e-5)
    np.testing.assert_allclose(result.actions[:, 0], 0.2, rtol=1e-5)  # 2 rad/s per step


def test_a_rejected_delta_chunk_holds_with_zeros(build_guard, run) -> None:
    emb = joint_delta_embodiment()
    bad = np.zeros((CHUNK, 8), np.float32)
    bad[:, 1] = 0.45  # 4.5 rad/s
    guard, _ = build_guard({"guard": "reject"}, ScriptedPolicy(bad), embodiment=emb)
    state = HOME.copy()
    result = run(guard(make_request(state)))
    assert result.metadata["guard"]["verdict"] == "rejected"
    expected = np.zeros((CHUNK, 8), np.float32)
    expected[:, 7] = state[7]  # the gripper stays where it is
    np.testing.assert_array_equal(result.actions, expected)


def test_joint_velocities_are_held_to_the_joint_limits(build_guard, run) -> None:
    emb = embodiment_with(
        action_space__kind="joint_velocity",
        action_space__ranges=[[-3.0, 3.0]] * 7 + [[0.0, 0.04]],
        normalization__mean_action=[0.0] * 7 + [0.02],
    )
    chunk = np.zeros((CHUNK, 8), np.float32)
    chunk[:, 2] = 2.5  # rad/s, over joint 3's 2.0
    chunk[:, 7] = 0.04
    guard, _ = build_guard({"guard": "clamp"}, ScriptedPolicy(chunk), embodiment=emb)
    result = run(guard(make_request(HOME)))
    (violation,) = result.metadata["guard"]["violations"]
    assert violation["kind"] == "velocity" and violation["worst"] == pytest.approx(2.5)
    np.testing.assert_allclose(result.actions[:, 2], 2.0, rtol=1e-5)
    np.testing.assert_array_equal(result.actions[:, 7], np.float32(0.04))


def ee_delta_embodiment(max_ee: float) -> EmbodimentConfig:
    doc = franka_like_dict()
    doc.pop("kinematics")
    doc["joint_names"] = ["x", "y", "z", "roll", "pitch", "yaw", "gripper"]
    doc["action_space"] = {
        "type": "continuous", "kind": "ee_delta", "dim": 7,
        "ranges": [[-0.5, 0.5]] * 3 + [[-1.0, 1.0]] * 3 + [[-1.0, 1.0]],
    }  # fmt: skip
    doc["normalization"] = {
        "mean_action": [0.0] * 7, "std_action": [1.0] * 7,
        "mean_state": [0.0] * 8, "std_state": [1.0] * 8,
    }  # fmt: skip
    doc["gripper"] = {"component_idx": 6, "close_threshold": 0.5, "inverted": False}
    doc["constraints"] = {
        "max_ee_velocity": max_ee, "max_gripper_velocity": 1.0, "collision_check": False,
    }  # fmt: skip
    return EmbodimentConfig.from_dict(doc)


def test_end_effector_delta_hold_needs_the_commanded_gripper(build_guard, run) -> None:
    emb = ee_delta_embodiment(max_ee=1.0)
    good = np.zeros((CHUNK, 7), np.float32)
    good[:, 0] = 0.05
    good[:, 6] = -1.0  # open
    bad = good.copy()
    bad[:, 0] = np.nan
    chunks = iter([bad, good, bad])
    guard, _ = build_guard(
        {"guard": "reject"}, ScriptedPolicy(lambda r: next(chunks)), embodiment=emb
    )
    # no chunk sent yet: the gripper target is unknown (the state is not declared to hold it)
    with pytest.raises(Unavailable) as exc:
        run(guard(make_request(np.zeros(8), episode_id="ep")))
    assert exc.value.slug == "guard-no-safe-action"
    assert (
        run(guard(make_request(np.zeros(8), episode_id="ep"))).metadata["guard"]["verdict"]
        == "pass"
    )
    held = run(guard(make_request(np.zeros(8), episode_id="ep"))).actions
    expected = np.zeros((CHUNK, 7), np.float32)
    expected[:, 6] = -1.0  # no motion, the gripper as commanded
    np.testing.assert_array_equal(held, expected)


def test_checks_follow_the_kind_for_a_delta_chunk_by_itself() -> None:
    emb = joint_delta_embodiment(constraints__max_ee_velocity=0.5)
    limits = limits_from_embodiment(emb)
    chunk = np.zeros((CHUNK, 8))
    chunk[:, 0] = 0.15  # within the joint limit; the TCP, integrated from the state, is not
    assert [v.kind for v in inspect_chunk(chunk, limits, HOME[:8].astype(float))] == ["ee-velocity"]
    # without a measured joint state the TCP cannot be integrated: never waved through
    (unchecked,) = inspect_chunk(chunk, limits, None)
    assert unchecked.kind == "ee-velocity" and unchecked.worst is None
    out = clamp_chunk(chunk, limits, HOME[:8].astype(float))
    assert inspect_chunk(out, limits, HOME[:8].astype(float)) == []


def test_an_ee_limit_in_m_s_applies_to_actions_in_scaled_units() -> None:
    """Meta-World's hand moves in 1 cm units: 0.8 m/s is 80 units/s, not 0.8."""
    from types import SimpleNamespace

    from reflex_actionguard.limits import ee_limit_of

    def embodiment(unit: float) -> SimpleNamespace:
        return SimpleNamespace(
            name="hand",
            action_kind="ee_delta",
            position_unit_m=unit,
            constraints=SimpleNamespace(max_ee_velocity=0.8),
        )

    assert ee_limit_of(embodiment(0.01)) == ("ee_delta", 80.0, None)
    assert ee_limit_of(embodiment(1.0)) == ("ee_delta", 0.8, None)
