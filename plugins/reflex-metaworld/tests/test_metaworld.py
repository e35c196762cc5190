"""reflex-metaworld: installed through its entry point; the env adapter, its seeds and state
mapping; Meta-World's scripted expert succeeding through the adapter (no server)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from reflex_metaworld import TASKS
from reflex_metaworld.env import MetaWorldEnv, expert, obs_from_state, state_from_obs

from reflex_core.embodiments import load_embodiment
from reflex_core.eval import testing
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.testing import installed_plugin


def test_entry_point_registers_the_env_and_the_sawyer_embodiments() -> None:
    pm = installed_plugin("metaworld", "reflex-metaworld", "reflex_metaworld")
    spec = pm.registry.envs["metaworld"]
    assert pm.registry.owner("envs", "metaworld") == "metaworld"
    emb = load_embodiment(name=spec.embodiment, registry=pm.registry)
    assert (emb.state_dim, emb.action_dim, emb.control.frequency_hz) == (21, 4, 80.0)
    sawyer = load_embodiment(name="sawyer", registry=pm.registry)
    assert sawyer.joint_names[:7] == [f"right_j{i}" for i in range(7)]


def test_the_task_list_is_metaworlds() -> None:
    from metaworld.env_dict import ALL_V3_ENVIRONMENTS

    assert set(TASKS) == set(ALL_V3_ENVIRONMENTS)


def test_sawyer_limits_cover_metaworlds_model() -> None:
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "metaworld"})
    sawyer = load_embodiment(name="sawyer", registry=pm.registry)
    with MetaWorldEnv("reach-v3") as env:
        for name, (low, high) in zip(sawyer.joint_names, sawyer.action_ranges, strict=True):
            mj_low, mj_high = env.env.model.joint(name).range
            assert low <= mj_low + 1e-4 and mj_high <= high + 1e-4, name


@pytest.fixture
def env() -> Iterator[MetaWorldEnv]:
    with MetaWorldEnv("reach-v3", image_size=32) as adapter:
        yield adapter


def test_a_seed_fixes_the_placement(env: MetaWorldEnv) -> None:
    first, other = testing.check_seeded_start(env, env.state)
    assert not np.array_equal(first[18:21], other[18:21])  # the goal moved


def test_state_mapping_round_trip(env: MetaWorldEnv) -> None:
    env.reset(0)
    state = env.state()
    assert state.shape == (21,) and state.dtype == np.float32
    obs = obs_from_state(state)
    assert obs.shape == (39,)
    np.testing.assert_allclose(state_from_obs(obs), state)


def test_observe_renders_only_the_cameras_asked_for(env: MetaWorldEnv) -> None:
    env.reset(0)
    testing.check_observe(env, ["corner"], 32, state_dim=21)


def test_the_expert_succeeds_and_holding_still_does_not(env: MetaWorldEnv) -> None:
    policy = expert("reach-v3")
    env.reset(11)
    for _ in range(200):
        env.act(policy(env.state()))
        if env.success:
            break
    assert env.success
    env.reset(11)
    for _ in range(100):
        env.hold()
    assert not env.success


def test_bad_actions_are_refused(env: MetaWorldEnv) -> None:
    testing.check_refuses_bad_actions(env, 4)
