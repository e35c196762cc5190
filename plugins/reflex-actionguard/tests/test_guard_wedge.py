"""The guard composed around a scripted policy with a real EmbodimentConfig."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry
from reflex_actionguard.checks import inspect_chunk
from reflex_actionguard.limits import limits_from_embodiment

from reflex_core.errors import ConfigError, Unavailable
from reflex_core.plugin.kit.jsonl import read_jsonl
from reflex_core.plugin.testing import make_request

from .conftest import CHUNK, HOME, JOINTS, LOWER, MAX_VEL, UPPER, ScriptedPolicy


def home_chunk() -> np.ndarray:
    return np.tile(HOME[:8], (CHUNK, 1)).astype(np.float32)


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels or None)
    return 0.0 if value is None else value


def test_a_chunk_within_limits_passes_unchanged(
    build_guard, embodiment, run, tmp_path: Path
) -> None:
    chunk = home_chunk()
    chunk[:, 0] = np.linspace(0, 0.4, CHUNK)  # 0.1 per step, under the 0.2 limit
    log = tmp_path / "audit.jsonl"
    guard, ctx = build_guard(
        {"guard": "clamp", "guard_audit_log": str(log)},
        ScriptedPolicy(chunk),
        embodiment=embodiment,
    )
    result = run(guard(make_request(HOME, episode_id="ep")))
    np.testing.assert_array_equal(result.actions, chunk)
    assert result.metadata["guard"] == {"verdict": "pass", "violations": []}
    assert result.metadata["model"] == "scripted"  # the inner metadata survives
    (record,) = read_jsonl(log).records
    assert record["verdict"] == "pass" and record["event"] == "decision"
    assert record["chunk"]["shape"] == [CHUNK, 8] and len(record["chunk"]["sha256"]) == 64
    assert "values" not in record["chunk"]
    assert sample(ctx.metrics, "reflex_guard_decisions_total", verdict="pass") == 1


def test_clamp_mode_projects_into_limits_and_audits_before_and_after(
    build_guard, embodiment, run, tmp_path: Path
) -> None:
    chunk = home_chunk()
    chunk[2:, 1] = 5.0  # panda_joint2 far past its upper limit 1.7
    chunk[:, 7] = 0.5  # the gripper past 0.04
    log = tmp_path / "audit.jsonl"
    guard, ctx = build_guard(
        {"guard": "clamp", "guard_audit_log": str(log)},
        ScriptedPolicy(chunk),
        embodiment=embodiment,
    )
    request = make_request(HOME, episode_id="ep-1", request_id="req-clamp")
    result = run(guard(request))
    out = result.actions
    limits = limits_from_embodiment(embodiment)
    assert inspect_chunk(out, limits, HOME[:8].astype(float)) == []
    assert (out[:, 1] <= UPPER[1] + 1e-6).all() and (out[:, 7] <= UPPER[7] + 1e-6).all()
    # joint2 moves towards the target at its speed limit (0.2 rad per step), not at once
    steps = np.diff(np.concatenate([[HOME[1]], out[:, 1]]))
    assert (steps >= 0).all() and (steps <= MAX_VEL[1] / 10 + 1e-5).all()
    meta = result.metadata["guard"]
    assert meta["verdict"] == "clamped"
    kinds = {(v["kind"], v["joint"]) for v in meta["violations"]}
    assert ("position", "panda_joint2") in kinds and ("gripper", "panda_finger_joint1") in kinds
    (record,) = read_jsonl(log).records
    assert record["verdict"] == "clamped"
    assert record["request_id"] == "req-clamp" and record["episode_id"] == "ep-1"
    assert record["policy"] == "default"
    np.testing.assert_allclose(record["before"]["values"], chunk, rtol=1e-6)
    np.testing.assert_allclose(record["after"]["values"], out, rtol=1e-6)
    assert record["before"]["sha256"] != record["after"]["sha256"]
    assert sample(ctx.metrics, "reflex_guard_decisions_total", verdict="clamped") == 1
    assert (
        sample(ctx.metrics, "reflex_guard_violations_total", kind="position", joint="panda_joint2")
        == 1
    )


def test_reject_mode_holds_the_current_state(build_guard, embodiment, run, tmp_path: Path) -> None:
    chunk = home_chunk()
    chunk[0, 3] = 0.5  # panda_joint4 must stay below -0.07
    guard, _ = build_guard({"guard": "reject"}, ScriptedPolicy(chunk), embodiment=embodiment)
    state = HOME.copy()
    state[0] = 0.3
    result = run(guard(make_request(state)))
    np.testing.assert_array_equal(result.actions, np.tile(state[:8], (CHUNK, 1)))
    assert result.metadata["guard"]["verdict"] == "rejected"


@pytest.mark.parametrize("mode", ["clamp", "reject"])
def test_a_nan_chunk_never_leaves_the_server(build_guard, embodiment, run, mode, tmp_path) -> None:
    chunk = home_chunk()
    chunk[3, 2] = np.nan
    chunk[4, 5] = np.inf
    log = tmp_path / "audit.jsonl"
    guard, _ = build_guard(
        {"guard": mode, "guard_audit_log": str(log)}, ScriptedPolicy(chunk), embodiment=embodiment
    )
    result = run(guard(make_request(HOME)))
    assert np.isfinite(result.actions).all()
    np.testing.assert_array_equal(result.actions, np.tile(HOME[:8], (CHUNK, 1)))
    assert result.metadata["guard"]["verdict"] == "rejected"
    (record,) = read_jsonl(log).records  # standard JSON despite the NaN
    assert record["before"]["values"][3][2] == "nan" and record["before"]["values"][4][5] == "inf"
    assert {v["kind"] for v in record["violations"]} == {"non-finite"}


def test_a_wrongly_shaped_chunk_is_rejected(build_guard, embodiment, run) -> None:
    guard, _ = build_guard(
        {"guard": "clamp"}, ScriptedPolicy(np.zeros((CHUNK, 6))), embodiment=embodiment
    )
    result = run(guard(make_request(HOME)))
    assert result.actions.shape == (CHUNK, 8)
    assert result.metadata["guard"]["violations"][0]["kind"] == "shape"


def test_velocity_is_checked_across_the_chunk_boundary(build_guard, embodiment, run) -> None:
    """The second chunk of an episode starts far from where the first one has the robot now;
    the state (which the client may send stale) would not show it."""
    first = home_chunk()
    second = home_chunk()
    second[:, 0] = 1.0  # a 1 rad jump of joint1 from the first chunk's position
    chunks = iter([first, second])
    guard, _ = build_guard(
        {"guard": "clamp"}, ScriptedPolicy(lambda r: next(chunks)), embodiment=embodiment
    )
    r1 = run(guard(make_request(HOME, episode_id="ep")))
    assert r1.metadata["guard"]["verdict"] == "pass"
    state = HOME.copy()
    state[0] = 1.0  # a bogus state that agrees with the jump
    r2 = run(guard(make_request(state, episode_id="ep")))
    meta = r2.metadata["guard"]
    assert meta["verdict"] == "clamped"
    (v,) = meta["violations"]
    assert (v["kind"], v["joint"], v["first_step"]) == ("velocity", "panda_joint1", 0)
    # the clamped chunk ramps from the first chunk's position at 0.2 rad per step
    np.testing.assert_allclose(r2.actions[:, 0], [0.2, 0.4, 0.6, 0.8, 1.0], atol=1e-5)
    # without the episode the same request passes: the state is the only reference
    chunks = iter([second])
    assert run(guard(make_request(state))).metadata["guard"]["verdict"] == "pass"


def test_episodes_do_not_share_their_last_chunk(build_guard, embodiment, run) -> None:
    far = home_chunk()
    far[:, 0] = 0.9
    guard, _ = build_guard(
        {"guard": "reject"},
        ScriptedPolicy(lambda r: far if r.episode_id == "a" else home_chunk()),
        embodiment=embodiment,
    )
    state_a = HOME.copy()
    state_a[0] = 0.9
    assert run(guard(make_request(state_a, episode_id="a"))).metadata["guard"]["verdict"] == "pass"
    # episode b starts at home: episode a's chunk is not its reference
    assert run(guard(make_request(HOME, episode_id="b"))).metadata["guard"]["verdict"] == "pass"


def test_the_previous_chunk_is_time_shifted(build_guard, embodiment, run) -> None:
    ramp = home_chunk()
    ramp[:, 0] = np.array([0.0, 0.15, 0.3, 0.45, 0.6])
    follow = home_chunk()
    follow[:, 0] = 0.45  # where the robot is after 3 steps of the ramp
    chunks = iter([ramp, follow])
    guard, _ = build_guard(
        {"guard": "reject"}, ScriptedPolicy(lambda r: next(chunks)), embodiment=embodiment
    )
    assert run(guard(make_request(HOME, episode_id="ep"))).metadata["guard"]["verdict"] == "pass"
    time.sleep(0.3)  # 3 control steps at 10 Hz
    state = HOME.copy()
    state[0] = 0.45  # the robot followed the ramp (and if the sleep overran the chunk, the
    # state is the reference and agrees)
    r2 = run(guard(make_request(state, episode_id="ep")))
    # against the first action (0.0) this would be a 0.45 jump; against the executing one
    # (0.45, or 0.6 if the sleep overran a step) it is within 0.2
    assert r2.metadata["guard"]["verdict"] == "pass"


def test_trips_after_n_violating_chunks_until_reset(build_guard, embodiment, run, tmp_path) -> None:
    bad = home_chunk()
    bad[:, 1] = 9.0
    policy = ScriptedPolicy(bad)
    log = tmp_path / "audit.jsonl"
    guard, ctx = build_guard(
        {"guard": "clamp", "guard_trip_after": 3, "guard_audit_log": str(log)},
        policy,
        embodiment=embodiment,
    )
    for _ in range(3):
        result = run(guard(make_request(HOME)))
        assert result.metadata["guard"]["verdict"] == "clamped"
    assert result.metadata["guard"].get("tripped") is True
    assert ctx.health["guard"]()["degraded"] is True
    assert sample(ctx.metrics, "reflex_guard_tripped") == 1
    seen = len(policy.seen)
    with pytest.raises(Unavailable) as info:
        run(guard(make_request(HOME)))
    assert info.value.slug == "guard-tripped" and info.value.status == 503
    assert len(policy.seen) == seen  # the policy is not even run
    status = guard.status()
    assert status["state"] == "tripped"
    assert status["counters"] == {"pass": 0, "clamped": 3, "rejected": 0, "refused": 1}
    assert status["last_violations"][-1]["violations"][0]["joint"] == "panda_joint2"
    assert status["limits"]["joints"][0]["joint"] == "panda_joint1"

    run(guard.reset(by="test"))
    policy.chunk = home_chunk()
    assert run(guard(make_request(HOME))).metadata["guard"]["verdict"] == "pass"
    assert guard.status()["state"] == "armed"
    assert sample(ctx.metrics, "reflex_guard_tripped") == 0
    events = [r["event"] for r in read_jsonl(log).records]
    assert events == ["decision"] * 3 + ["trip", "refused", "reset", "decision"]


def test_a_passing_chunk_resets_the_consecutive_count(build_guard, embodiment, run) -> None:
    bad = home_chunk()
    bad[:, 1] = 9.0
    script = iter([bad, bad, home_chunk(), bad, bad])
    guard, _ = build_guard(
        {"guard": "clamp", "guard_trip_after": 3},
        ScriptedPolicy(lambda r: next(script)),
        embodiment=embodiment,
    )
    for _ in range(5):
        run(guard(make_request(HOME)))
    assert guard.status()["state"] == "armed"
    assert guard.status()["consecutive_violations"] == 2


def test_trip_after_zero_never_trips(build_guard, embodiment, run) -> None:
    bad = home_chunk()
    bad[:, 1] = 9.0
    guard, _ = build_guard(
        {"guard": "clamp", "guard_trip_after": 0}, ScriptedPolicy(bad), embodiment=embodiment
    )
    for _ in range(10):
        run(guard(make_request(HOME)))
    assert guard.status()["state"] == "armed"


def test_no_chunk_leaves_without_its_audit_record(build_guard, embodiment, run, tmp_path) -> None:
    log = tmp_path / "audit.jsonl"
    guard, _ = build_guard(
        {"guard": "clamp", "guard_audit_log": str(log)}, ScriptedPolicy(), embodiment=embodiment
    )
    guard.audit.writer.close()  # the disk is gone
    with pytest.raises(Unavailable) as info:
        run(guard(make_request(HOME)))
    assert info.value.slug == "guard-audit-failed"


def test_guard_needs_an_embodiment_or_a_urdf(build_guard, run) -> None:
    with pytest.raises(ConfigError) as info:
        build_guard({"guard": "clamp"}, ScriptedPolicy())
    assert info.value.slug == "guard-needs-embodiment"
    with pytest.raises(ConfigError) as info:
        build_guard({"guard": "clamp", "guard_urdf": "x.urdf"}, ScriptedPolicy())
    assert info.value.slug == "guard-needs-embodiment"


def test_guard_with_a_urdf_and_joint_names_but_no_embodiment(build_guard, run, tmp_path) -> None:
    urdf = tmp_path / "two.urdf"
    urdf.write_text(
        '<robot name="two">'
        '<joint name="shoulder" type="revolute"><limit lower="-1" upper="1" velocity="1"/></joint>'
        '<joint name="wrist" type="continuous"><limit velocity="2"/></joint>'
        "</robot>"
    )
    values = {
        "guard": "clamp",
        "guard_urdf": str(urdf),
        "guard_joint_names": ["shoulder", "wrist"],
        "guard_control_hz": 10.0,
    }
    chunk = np.array([[0.0, 5.0], [3.0, 5.1]], dtype=np.float32)
    guard, _ = build_guard(values, ScriptedPolicy(chunk))
    result = run(guard(make_request([0.0, 5.0])))
    # shoulder: clipped to 1, then 0.1 per step from 0; wrist continuous, 0.2 per step
    np.testing.assert_allclose(result.actions[:, 0], [0.0, 0.1], atol=1e-6)
    assert result.metadata["guard"]["verdict"] == "clamped"


def test_urdf_limits_replace_the_embodiment_ranges(build_guard, embodiment, run, tmp_path) -> None:
    joints = "".join(
        f'<joint name="{j}" type="revolute"><limit lower="-0.5" upper="0.5" velocity="10"/></joint>'
        for j in JOINTS
    )
    urdf = tmp_path / "tight.urdf"
    urdf.write_text(f'<robot name="tight">{joints}</robot>')
    chunk = np.zeros((CHUNK, 8), dtype=np.float32)
    chunk[:, 0] = 0.45
    guard, _ = build_guard(
        {"guard": "clamp", "guard_urdf": str(urdf)}, ScriptedPolicy(chunk), embodiment=embodiment
    )
    status = guard.status()
    assert status["limits"]["source"].startswith("urdf")
    assert status["limits"]["joints"][0]["upper"] == 0.5
    assert run(guard(make_request(np.zeros(9)))).metadata["guard"]["verdict"] == "pass"


def test_policy_action_width_is_checked_at_startup(build_guard, embodiment) -> None:
    class Policy:
        action_dim = 7
        chunk_size = 5

    with pytest.raises(ConfigError) as info:
        build_guard(
            {"guard": "clamp"},
            ScriptedPolicy(),
            embodiment=embodiment,
            policies={"default": Policy()},
        )
    assert info.value.slug == "guard-action-dim-mismatch"


def test_hold_without_a_usable_state_falls_back_or_refuses(build_guard, embodiment, run) -> None:
    bad = home_chunk()
    bad[0, 0] = np.nan
    script = iter([home_chunk(), bad, bad])
    guard, _ = build_guard(
        {"guard": "reject"}, ScriptedPolicy(lambda r: next(script)), embodiment=embodiment
    )
    run(guard(make_request(HOME, episode_id="ep")))
    short_state = HOME[:3]
    # the episode's last chunk is the position to hold
    result = run(guard(make_request(short_state, episode_id="ep")))
    np.testing.assert_array_equal(result.actions, home_chunk())
    # no episode memory, no usable state: refuse rather than send anything
    with pytest.raises(Unavailable) as info:
        run(guard(make_request(short_state)))
    assert info.value.slug == "guard-no-safe-action"


def test_hold_is_clipped_into_the_limits(build_guard, embodiment, run) -> None:
    bad = home_chunk()
    bad[0, 0] = np.nan
    guard, _ = build_guard({"guard": "reject"}, ScriptedPolicy(bad), embodiment=embodiment)
    state = HOME.copy()
    state[3] = 0.0  # joint4 a little past its upper limit -0.07
    result = run(guard(make_request(state)))
    assert result.actions[0, 3] == pytest.approx(UPPER[3])
    assert (result.actions >= LOWER - 1e-6).all()


def test_invalid_options_are_config_errors(build_guard, embodiment) -> None:
    with pytest.raises(ConfigError):
        build_guard({"guard": "smash"}, ScriptedPolicy(), embodiment=embodiment)
    with pytest.raises(ConfigError):
        build_guard(
            {"guard": "clamp", "guard_trip_after": -1}, ScriptedPolicy(), embodiment=embodiment
        )


def test_a_finished_chunk_gives_way_to_the_measured_state(build_guard, embodiment, run) -> None:
    """Once the previous chunk has run out (5 steps at 10 Hz), the robot may have been moved:
    the state, not the old chunk, is where the new chunk must start from."""
    moved = home_chunk()
    moved[:, 0] = 1.0
    chunks = iter([home_chunk(), moved])
    guard, _ = build_guard(
        {"guard": "reject"}, ScriptedPolicy(lambda r: next(chunks)), embodiment=embodiment
    )
    assert run(guard(make_request(HOME, episode_id="ep"))).metadata["guard"]["verdict"] == "pass"
    time.sleep(0.55)
    state = HOME.copy()
    state[0] = 1.0  # someone moved joint1 by hand meanwhile
    assert run(guard(make_request(state, episode_id="ep"))).metadata["guard"]["verdict"] == "pass"
