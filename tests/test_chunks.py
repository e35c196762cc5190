"""Chunk math: hold position, time-shifted tails, per-episode last-chunk memory."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from reflex_core.plugin.kit.chunks import (
    LastChunkMemory,
    StoredChunk,
    action_at,
    as_chunk,
    elapsed_steps,
    hold_chunk,
    repeat_action,
    shift_chunk,
)


def ramp(t: int = 5, d: int = 3) -> np.ndarray:
    """Row i is [i, 10 + i, 20 + i, ...]: easy to see which step a row came from."""
    return (np.arange(t)[:, None] + 10 * np.arange(d)[None, :]).astype(np.float32)


def test_hold_chunk_repeats_the_first_action_dim_state_values() -> None:
    state = np.array([0.1, 0.2, 0.3, 9.0], dtype=np.float32)
    chunk = hold_chunk(state, action_dim=3, chunk_size=4)
    assert chunk.shape == (4, 3)
    assert chunk.dtype == np.float32
    assert chunk.flags.c_contiguous and chunk.flags.writeable
    np.testing.assert_array_equal(chunk, np.tile(state[:3], (4, 1)))


def test_hold_chunk_refuses_a_short_or_non_finite_state() -> None:
    with pytest.raises(ValueError, match="state has 2 values"):
        hold_chunk(np.zeros(2), action_dim=3, chunk_size=4)
    with pytest.raises(ValueError, match="not finite"):
        hold_chunk(np.array([0.0, np.nan, 0.0]), action_dim=3, chunk_size=4)
    with pytest.raises(ValueError):
        hold_chunk(np.zeros(3), action_dim=3, chunk_size=0)


def test_repeat_action() -> None:
    chunk = repeat_action(np.array([1.0, 2.0]), 3)
    np.testing.assert_array_equal(chunk, [[1, 2], [1, 2], [1, 2]])


def test_as_chunk_validates_shape() -> None:
    with pytest.raises(ValueError):
        as_chunk(np.zeros(3))
    with pytest.raises(ValueError):
        as_chunk(np.zeros((0, 3)))
    assert as_chunk(np.zeros((2, 3), dtype=np.float64)).dtype == np.float32


@pytest.mark.parametrize(
    ("elapsed_ns", "hz", "steps"),
    [
        (0, 10, 0),
        (99_999_999, 10, 0),
        (100_000_000, 10, 1),
        (250_000_000, 10, 2),
        (1_000_000_000, 50, 50),
    ],
)
def test_elapsed_steps(elapsed_ns: int, hz: float, steps: int) -> None:
    assert elapsed_steps(1_000, 1_000 + elapsed_ns, hz) == steps


def test_elapsed_steps_never_negative_and_needs_a_rate() -> None:
    assert elapsed_steps(5_000, 1_000, 10) == 0
    with pytest.raises(ValueError):
        elapsed_steps(0, 1, 0)


def test_shift_drops_executed_rows_and_pads_with_the_last_action() -> None:
    chunk = ramp(5, 2)
    shifted = shift_chunk(chunk, 2)
    np.testing.assert_array_equal(shifted[:3], chunk[2:])
    np.testing.assert_array_equal(shifted[3:], np.tile(chunk[-1], (2, 1)))
    assert shifted.shape == chunk.shape


def test_shift_past_the_end_holds_the_last_action() -> None:
    chunk = ramp(5, 2)
    for steps in (5, 6, 100):
        np.testing.assert_array_equal(shift_chunk(chunk, steps), np.tile(chunk[-1], (5, 1)))


def test_shift_to_another_length() -> None:
    chunk = ramp(5, 2)
    np.testing.assert_array_equal(shift_chunk(chunk, 1, chunk_size=2), chunk[1:3])
    longer = shift_chunk(chunk, 0, chunk_size=8)
    np.testing.assert_array_equal(longer[:5], chunk)
    np.testing.assert_array_equal(longer[5:], np.tile(chunk[-1], (3, 1)))
    with pytest.raises(ValueError):
        shift_chunk(chunk, -1)


def test_shift_does_not_alias_the_input() -> None:
    chunk = ramp(4, 2)
    shifted = shift_chunk(chunk, 0)
    shifted[0, 0] = 123
    assert chunk[0, 0] == 0


@given(
    t=st.integers(1, 20),
    d=st.integers(1, 6),
    steps=st.integers(0, 40),
    size=st.integers(1, 30),
)
def test_shift_properties(t: int, d: int, steps: int, size: int) -> None:
    chunk = ramp(t, d)
    out = shift_chunk(chunk, steps, chunk_size=size)
    assert out.shape == (size, d)
    start = min(steps, t - 1)
    kept = min(t - start, size)
    np.testing.assert_array_equal(out[:kept], chunk[start : start + kept])
    # every padded row is the chunk's last action
    np.testing.assert_array_equal(out[kept:], np.tile(chunk[-1], (size - kept, 1)))


def test_action_at() -> None:
    chunk = ramp(3, 2)
    np.testing.assert_array_equal(action_at(chunk, 0), chunk[0])
    np.testing.assert_array_equal(action_at(chunk, 2), chunk[2])
    np.testing.assert_array_equal(action_at(chunk, 7), chunk[2])


def test_stored_chunk_tail_and_current_action() -> None:
    stored = StoredChunk(actions=ramp(5, 2), produced_ns=0)
    # 10 Hz: 0.3 s later three rows have been executed
    np.testing.assert_array_equal(stored.tail(300_000_000, 10.0)[0], ramp(5, 2)[3])
    np.testing.assert_array_equal(stored.current_action(300_000_000, 10.0), ramp(5, 2)[3])


def test_memory_put_get_tail_forget() -> None:
    memory = LastChunkMemory(max_episodes=4)
    chunk = ramp(5, 2)
    memory.put("ep1", chunk, produced_ns=0)
    chunk[0, 0] = 99  # the memory keeps its own copy
    stored = memory.get("ep1")
    assert stored is not None and stored.actions[0, 0] == 0
    tail = memory.tail("ep1", frequency_hz=10, now_ns=200_000_000)
    assert tail is not None
    np.testing.assert_array_equal(tail[0], ramp(5, 2)[2])
    assert memory.tail("unknown", frequency_hz=10) is None
    memory.forget("ep1")
    assert "ep1" not in memory and len(memory) == 0


def test_memory_is_bounded_lru() -> None:
    memory = LastChunkMemory(max_episodes=2)
    memory.put("a", ramp(), produced_ns=0)
    memory.put("b", ramp(), produced_ns=0)
    memory.get("a")  # a is now the most recently used
    memory.put("c", ramp(), produced_ns=0)
    assert "a" in memory and "c" in memory and "b" not in memory
    assert len(memory) == 2
    with pytest.raises(ValueError):
        LastChunkMemory(max_episodes=0)


def test_memory_replaces_an_episodes_chunk() -> None:
    memory = LastChunkMemory()
    memory.put("ep", ramp(3, 1), produced_ns=1)
    memory.put("ep", ramp(3, 1) + 5, produced_ns=2)
    stored = memory.get("ep")
    assert stored is not None and stored.produced_ns == 2 and stored.actions[0, 0] == 5
    memory.clear()
    assert len(memory) == 0


def test_single_step_chunks_are_writeable_copies() -> None:
    state = np.array([1.0, 2.0], dtype=np.float32)
    held = hold_chunk(state, action_dim=2, chunk_size=1)
    held[0, 0] = 5
    assert state[0] == 1.0
    repeated = repeat_action(state, 1)
    repeated[0, 1] = 7
    assert state[1] == 2.0
