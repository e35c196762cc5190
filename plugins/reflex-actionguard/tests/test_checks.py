"""The pure checks and the clamp."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from reflex_actionguard.checks import clamp_chunk, inspect_chunk
from reflex_actionguard.limits import JointLimits, limits_from_embodiment

from reflex_core.embodiments import EmbodimentConfig

JOINTS = ("j1", "j2", "grip")


def make_limits(
    lower=(-1.0, -2.0, 0.0), upper=(1.0, 2.0, 0.04), vel=(1.0, 2.0, 0.1), hz=10.0, gripper=2
) -> JointLimits:
    return JointLimits(
        names=JOINTS,
        lower=np.array(lower, float),
        upper=np.array(upper, float),
        max_velocity=np.array(vel, float),
        gripper_idx=gripper,
        frequency_hz=hz,
        source="test",
        notes=("t",) * 3,
    )


def kinds(violations) -> set[tuple[str, str | None]]:
    return {(v.kind, v.joint) for v in violations}


def test_a_chunk_within_limits_passes() -> None:
    chunk = np.array([[0.0, 0.0, 0.01], [0.05, 0.1, 0.015], [0.1, 0.2, 0.02]])
    assert inspect_chunk(chunk, make_limits(), reference=np.array([0.0, 0.0, 0.01])) == []


def test_position_and_gripper_violations_name_the_joint() -> None:
    chunk = np.array([[0.0, 0.0, 0.01], [0.0, -2.5, 0.01], [0.0, -2.5, 0.06]])
    limits = make_limits(vel=(np.inf, np.inf, np.inf))
    violations = inspect_chunk(chunk, limits, reference=None)
    by_kind = {v.kind: v for v in violations}
    assert kinds(violations) == {("position", "j2"), ("gripper", "grip")}
    assert by_kind["position"].steps == 2 and by_kind["position"].first_step == 1
    assert by_kind["position"].worst == -2.5 and by_kind["position"].limit == -2.0
    assert by_kind["gripper"].worst == pytest.approx(0.06) and by_kind["gripper"].limit == 0.04


def test_velocity_between_steps_and_from_the_reference() -> None:
    limits = make_limits()  # j1 may move 0.1 per step
    chunk = np.array([[0.5, 0.0, 0.0], [0.55, 0.0, 0.0], [0.9, 0.0, 0.0]])
    # from the reference 0.0 to 0.5 is step 0; 0.55 -> 0.9 is step 2
    violations = inspect_chunk(chunk, limits, reference=np.zeros(3))
    (v,) = violations
    assert (v.kind, v.joint, v.steps, v.first_step) == ("velocity", "j1", 2, 0)
    assert v.worst == pytest.approx(5.0)  # 0.5 per step at 10 Hz
    assert v.limit == 1.0
    # without a reference only the inner step counts
    (v,) = inspect_chunk(chunk, limits, reference=None)
    assert (v.steps, v.first_step) == (1, 2)


def test_a_gripper_toggle_is_not_a_velocity_violation() -> None:
    # The gripper goes out as an open/close target: a full-range jump in one step is intended.
    limits = make_limits()
    chunk = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 0.04], [0.0, 0.0, 0.0]])
    assert inspect_chunk(chunk, limits, reference=np.array([0.0, 0.0, 0.04])) == []
    clamped = clamp_chunk(chunk, limits, reference=np.array([0.0, 0.0, 0.04]))
    np.testing.assert_allclose(clamped, chunk, rtol=0, atol=1e-7)


def test_non_finite_and_shape() -> None:
    limits = make_limits()
    chunk = np.zeros((3, 3))
    chunk[1, 0] = np.nan
    chunk[2, 2] = np.inf
    assert kinds(inspect_chunk(chunk, limits, None)) == {
        ("non-finite", "j1"),
        ("non-finite", "grip"),
    }
    (shape,) = inspect_chunk(np.zeros((3, 4)), limits, None)
    assert shape.kind == "shape"
    assert inspect_chunk(np.zeros(3), limits, None)[0].kind == "shape"


def test_clamp_clips_positions_then_limits_speed_keeping_direction() -> None:
    limits = make_limits()
    reference = np.array([0.0, 0.0, 0.0])
    # a jump of (0.4, 0.4) from the reference: j1 may move 0.1, j2 0.2 -> scale 0.25 on both
    chunk = np.array([[0.4, 0.4, 0.0], [5.0, 0.4, 0.0]])
    out = clamp_chunk(chunk, limits, reference)
    np.testing.assert_allclose(out[0], [0.1, 0.1, 0.0], atol=1e-7)
    # step 1: position-clipped target (1.0, 0.4) from (0.1, 0.1): delta (0.9, 0.3), scale 1/9
    np.testing.assert_allclose(out[1], [0.2, 0.1 + 0.3 / 9, 0.0], atol=1e-6)
    assert inspect_chunk(out, limits, reference) == []
    assert out.dtype == np.float32


def test_clamp_starts_from_a_reference_clipped_into_the_limits() -> None:
    limits = make_limits()
    reference = np.array([1.05, 0.0, 0.0])  # the robot sits a hair past j1's upper limit
    out = clamp_chunk(np.array([[1.0, 0.0, 0.0]]), limits, reference)
    np.testing.assert_allclose(out, [[1.0, 0.0, 0.0]])
    assert inspect_chunk(out, limits, np.clip(reference, limits.lower, limits.upper)) == []


def test_clamp_without_velocity_limits_only_clips() -> None:
    limits = make_limits(vel=(np.inf,) * 3, hz=None)
    out = clamp_chunk(np.array([[3.0, -3.0, 1.0]]), limits, None)
    np.testing.assert_allclose(out, [[1.0, -2.0, 0.04]], rtol=1e-6)


finite = st.floats(-5, 5, allow_nan=False, width=32)


@settings(max_examples=200, deadline=None)
@given(
    chunk=hnp.arrays(np.float32, st.tuples(st.integers(1, 12), st.just(3)), elements=finite),
    reference=st.one_of(st.none(), hnp.arrays(np.float64, 3, elements=st.floats(-3, 3))),
    vel=st.tuples(*(st.one_of(st.just(np.inf), st.floats(0.01, 5)) for _ in range(3))),
)
def test_clamped_chunks_always_pass_the_checks(chunk, reference, vel) -> None:
    limits = make_limits(vel=vel)
    out = clamp_chunk(chunk, limits, reference)
    assert out.shape == chunk.shape
    ref = None if reference is None else np.clip(reference, limits.lower, limits.upper)
    assert inspect_chunk(out, limits, ref) == []


@settings(max_examples=100, deadline=None)
@given(delta=hnp.arrays(np.float64, 3, elements=st.floats(-0.9, 0.9)))
def test_velocity_clamp_keeps_the_direction(delta) -> None:
    limits = make_limits(vel=(0.5, 0.5, 0.05))
    start = np.array([0.0, 0.0, 0.02])
    target = np.clip(start + delta, limits.lower, limits.upper)
    out = clamp_chunk(target[None, :], limits, start)[0].astype(np.float64)
    moved, wanted = out - start, target - start
    if np.linalg.norm(wanted) > 1e-3:  # below that, float32 rounding dominates
        # parallel and same sense: |cos| = 1 and the scale is in (0, 1]
        scale = np.dot(moved, wanted) / np.dot(wanted, wanted)
        assert 0 < scale <= 1 + 1e-4
        np.testing.assert_allclose(moved, scale * wanted, atol=1e-6)


def test_limits_from_the_embodiment(embodiment: EmbodimentConfig) -> None:
    limits = limits_from_embodiment(embodiment)
    assert limits.names[0] == "panda_joint1" and limits.dim == 8
    assert limits.gripper_idx == 7
    assert limits.frequency_hz == 10.0
    assert limits.max_velocity[7] == pytest.approx(0.2)
    assert limits.upper[3] == pytest.approx(-0.07)
    described = limits.describe()
    assert described[7]["gripper"] is True and described[0]["gripper"] is False
