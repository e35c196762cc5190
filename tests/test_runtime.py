"""The torch-free runtime: runners, the Euler loop, adaptive steps, the prefix cache, Policy.

Fast tests run on small hand-built ONNX graphs (tests/fixtures/runtime_graphs.py) that follow
the artifact contract; the monolithic graph unrolls the same expert, so decomposed ==
monolithic checks the runner's loop and KV plumbing for real.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from reflex_core.errors import ArtifactError, ConfigError, ValidationError
from reflex_core.runtime import DecomposedRunner, Policy, PrefixCache, load_policy
from reflex_core.runtime.prefix_cache import prefix_key
from reflex_core.wire.types import Observation


def _fixtures():
    path = Path(__file__).parent / "fixtures" / "runtime_graphs.py"
    spec = importlib.util.spec_from_file_location("runtime_graphs", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


rg = _fixtures()
DIMS = rg.Dims()
T, A = DIMS.chunk_size, DIMS.max_action_dim


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("artifacts")
    return {
        "decomposed": rg.write_artifact(root / "dec"),
        "monolithic": rg.write_artifact(root / "mono", mode="monolithic"),
        "constant": rg.write_artifact(root / "const", constant_velocity=True),
        "no_state": rg.write_artifact(root / "nostate", uses_state=False),
        "pi0": rg.write_artifact(root / "pi0", prompt_format="pi0"),
    }


def obs(
    state=(0.1, 0.5, 1.0, 1.9), seed: int = 0, prompt: str | None = "pick up the red cube", **images
) -> Observation:
    rng = np.random.default_rng(seed)
    imgs = images or {"base": rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)}
    return Observation(state=np.asarray(state, np.float32), images=imgs, prompt=prompt)


def noise(batch: int = 1, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((batch, T, A), dtype=np.float32)


def test_importing_the_runtime_does_not_import_torch() -> None:
    code = (
        "import sys, reflex_core.runtime, reflex_core.runtime.policy; print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("kv_feed", ["iobinding", "numpy"])
def test_decomposed_equals_monolithic(artifacts, batch, kv_feed) -> None:
    dec = load_policy(artifacts["decomposed"], kv_feed=kv_feed)
    mono = load_policy(artifacts["monolithic"])
    batch_obs = [obs(seed=i, state=(0.1 * i, 0.5, 1.0, 1.9)) for i in range(batch)]
    eps = noise(batch)
    a, b = dec.infer(batch_obs, eps), mono.infer(batch_obs, eps)
    assert a.actions.shape == (batch, T, 3) and a.actions.dtype == np.float32
    np.testing.assert_allclose(a.actions, b.actions, atol=1e-5)
    np.testing.assert_allclose(a.features, b.features, atol=1e-6)
    assert a.timings["steps"] == DIMS.num_steps and a.timings["prefix_ms"] > 0
    assert b.timings["prefix_ms"] is None and b.timings["model_ms"] > 0
    # batch items are independent: row 0 of a batch equals the same observation alone
    single = dec.infer([batch_obs[0]], eps[:1])
    np.testing.assert_allclose(single.actions[0], a.actions[0], atol=1e-5)


def test_the_euler_loop_matches_a_hand_written_one(artifacts) -> None:
    policy = load_policy(artifacts["decomposed"])
    runner = policy.runner
    assert isinstance(runner, DecomposedRunner)
    inputs = _inputs(policy, [obs()])
    eps = noise()
    actions, steps = runner.denoise(runner.prefix(inputs), inputs.state, eps)
    d = artifacts["decomposed"]
    prefix = ort.InferenceSession(str(d / "vlm_prefix.onnx"), providers=["CPUExecutionProvider"])
    expert = ort.InferenceSession(
        str(d / "expert_denoise.onnx"), providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in prefix.get_outputs()]
    prefix_in = [i.name for i in prefix.get_inputs()]
    out = dict(zip(names, prefix.run(None, {n: inputs.feeds()[n] for n in prefix_in}), strict=True))
    x = eps.copy()
    n = DIMS.num_steps
    for k in range(n):
        feeds = {i.name: out[i.name] for i in expert.get_inputs() if i.name in out}
        feeds |= {"x_t": x, "t": np.full((1,), 1 - k / n, np.float32), "state": inputs.state}
        x = x + (-1.0 / n) * expert.run(None, feeds)[0]
    assert steps == n
    np.testing.assert_allclose(actions, x, atol=1e-6)


def _inputs(policy: Policy, observations):
    from reflex_core.runtime.preprocess import prepare_inputs

    return prepare_inputs(
        images=[o.images for o in observations],
        states=[o.state for o in observations],
        prompts=[o.prompt for o in observations],
        io=policy.io,
        max_state_dim=policy.max_state_dim,
        state_stats=policy.state_stats,
        tokenizer=policy.tokenizer,
    )


def test_only_declared_inputs_are_fed(artifacts) -> None:
    policy = load_policy(artifacts["no_state"])
    assert "state" not in [i.name for i in policy.runner.expert_session.get_inputs()]
    out = policy.infer([obs()], noise())
    assert np.isfinite(out.actions).all()


def test_an_expert_needing_an_unknown_input_is_an_artifact_error(artifacts) -> None:
    policy = load_policy(artifacts["decomposed"])

    class Renamed:
        def __init__(self, inner, rename):
            self.inner, self.rename = inner, rename

        def get_inputs(self):
            return [
                type("I", (), {"name": self.rename.get(i.name, i.name)})()
                for i in self.inner.get_inputs()
            ]

        def __getattr__(self, item):
            return getattr(self.inner, item)

    bad = Renamed(policy.runner.expert_session, {"past_k_0": "past_k_9"})
    with pytest.raises(ArtifactError) as exc:
        DecomposedRunner(policy.runner.prefix_session, bad, num_steps=3)
    assert exc.value.slug == "artifact-graph-io"


# -- adaptive steps -----------------------------------------------------------------------------


def test_adaptive_steps_stop_early_when_the_velocity_is_constant(artifacts) -> None:
    full = load_policy(artifacts["constant"])
    fast = load_policy(artifacts["constant"], adaptive_steps=1e-4)
    eps = noise()
    a, b = full.infer([obs()], eps), fast.infer([obs()], eps)
    assert a.timings["steps"] == DIMS.num_steps
    assert b.timings["steps"] == 2  # v_1 == v_0: stop after the second evaluation
    np.testing.assert_allclose(a.actions, b.actions, atol=1e-5)  # Euler is exact here
    assert fast.info["adaptive_steps"] == 1e-4


def test_adaptive_steps_finish_with_the_last_velocity_over_the_remaining_time(artifacts) -> None:
    policy = load_policy(artifacts["decomposed"], adaptive_steps=10.0)  # any change passes
    runner = policy.runner
    inputs = _inputs(policy, [obs()])
    eps = noise()
    prefix = runner.prefix(inputs)
    actions, steps = runner.denoise(prefix, inputs.state, eps)
    assert steps == 2
    step = runner.stepper(prefix, inputs.state)
    n = DIMS.num_steps
    v0 = step(eps, np.ones(1, np.float32))
    x1 = eps + np.float32(-1.0 / n) * v0
    t1 = 1.0 - 1.0 / n
    v1 = step(x1, np.full(1, t1, np.float32))
    np.testing.assert_allclose(actions, x1 - np.float32(t1) * v1, atol=1e-6)
    strict = load_policy(artifacts["decomposed"], adaptive_steps=1e-12)
    plain = load_policy(artifacts["decomposed"])
    assert strict.infer([obs()], eps).timings["steps"] == n
    np.testing.assert_array_equal(
        strict.infer([obs()], eps).actions, plain.infer([obs()], eps).actions
    )


# -- prefix cache -------------------------------------------------------------------------------


def test_prefix_cache_hits_only_for_identical_observations(artifacts) -> None:
    cached = load_policy(artifacts["decomposed"], prefix_cache_size=2)
    plain = load_policy(artifacts["decomposed"])
    eps = noise()
    first = cached.infer([obs()], eps)
    again = cached.infer([obs()], eps)
    assert (first.timings["prefix_cache"], again.timings["prefix_cache"]) == ("miss", "hit")
    np.testing.assert_array_equal(first.actions, again.actions)
    again.features[:] = 0.0  # callers own what they get; the cached prefix is unaffected
    np.testing.assert_array_equal(cached.infer([obs()], eps).features, first.features)
    # pi0.5 puts the state in the prompt: another state is another prefix
    moved = cached.infer([obs(state=(0.2, 0.5, 1.0, 1.9))], eps)
    assert moved.timings["prefix_cache"] == "miss"
    np.testing.assert_array_equal(
        moved.actions, plain.infer([obs(state=(0.2, 0.5, 1.0, 1.9))], eps).actions
    )
    other_image = cached.infer([obs(seed=5)], eps)
    assert other_image.timings["prefix_cache"] == "miss"
    assert cached.prefix_cache.stats() == {
        "entries": 2,
        "max_entries": 2,
        "hits": 2,
        "misses": 3,
        "evictions": 1,
    }


def test_prefix_cache_with_pi0_reuses_the_prefix_but_not_the_state(artifacts) -> None:
    cached = load_policy(artifacts["pi0"], prefix_cache_size=4)
    plain = load_policy(artifacts["pi0"])
    eps = noise()
    cached.infer([obs()], eps)
    other_state = obs(state=(1.5, -0.5, 0.0, 0.0))
    out = cached.infer([other_state], eps)
    assert out.timings["prefix_cache"] == "hit"  # pi0: the state enters the expert, not the prefix
    np.testing.assert_array_equal(out.actions, plain.infer([other_state], eps).actions)


def test_prefix_key_covers_dtype_shape_and_bytes() -> None:
    a = np.zeros((1, 4), np.float32)
    assert prefix_key({"x": a}) == prefix_key({"x": a.copy()})
    assert prefix_key({"x": a}) != prefix_key({"x": a.reshape(2, 2)})
    assert prefix_key({"x": a}) != prefix_key({"x": a.astype(np.float64)})
    assert prefix_key({"x": a}) != prefix_key({"y": a})
    b = a.copy()
    b[0, 3] = 1e-30
    assert prefix_key({"x": a}) != prefix_key({"x": b})
    cache = PrefixCache(1)
    cache.put("k", {"arr": np.ones(2)})
    with pytest.raises(ValueError):
        cache.get("k")["arr"][0] = 5.0  # cached arrays are read-only
    with pytest.raises(ValueError):
        PrefixCache(0)


# -- Policy ------------------------------------------------------------------------------------


def test_validation_errors(artifacts) -> None:
    policy = load_policy(artifacts["decomposed"])
    with pytest.raises(ValidationError) as exc:
        policy.infer([obs(state=(0.1, 0.2))])
    assert exc.value.slug == "state-length-mismatch" and exc.value.status == 422
    assert exc.value.details == {"expected": 4, "got": 2}
    with pytest.raises(ValidationError) as exc:  # the Observation's own check, the wire's slug
        obs(state=(0.1, np.nan, 0.0, 0.0))
    assert exc.value.slug == "non-finite-state" and exc.value.field == "state[1]"
    with pytest.raises(ValidationError) as exc:
        policy.validate(obs(left=np.zeros((4, 4, 3), np.uint8)))
    assert exc.value.slug == "unknown-camera"
    with pytest.raises(ValidationError) as exc:
        policy.infer([obs()], np.zeros((1, T, A + 1), np.float32))
    assert exc.value.slug == "noise-shape-mismatch"
    # the single-camera shorthand maps to the first camera
    a = policy.infer([obs(image=np.full((8, 8, 3), 9, np.uint8))], noise())
    b = policy.infer([obs(base=np.full((8, 8, 3), 9, np.uint8))], noise())
    np.testing.assert_array_equal(a.actions, b.actions)


def test_actions_are_unnormalized_with_the_artifact_stats(artifacts) -> None:
    policy = load_policy(artifacts["decomposed"])
    inputs = _inputs(policy, [obs()])
    eps = noise()
    model = policy.runner.run(inputs, eps).actions
    out = policy.infer([obs()], eps)
    # the fixture's action stats: MEAN_STD mean 0.5, std 2 on 3 real dims
    np.testing.assert_allclose(out.actions, model[..., :3] * 2.0 + 0.5, atol=1e-6)
    assert policy.info["raw_actions"] is True and policy.info["embodiment"] is None
    assert policy.info["action_normalization"] == "artifact"
    # the state was normalized with QUANTILES q01=-1, q99=2 before entering the prompt:
    # 0.1 -> -0.2667 -> bin floor(0.7333 * 128) = 93; 0.5 -> 0 -> 128; 1.0 -> 1/3 -> 170; 1.9 -> 247
    assert "State: 93 128 170 247;" in inputs.prompts[0]


def embodiment_dict(action_dim: int = 3, inverted: bool = False, chunk: int = 4) -> dict:
    return {
        "schema_version": 1,
        "embodiment": "custom",
        "action_space": {
            "type": "continuous",
            "dim": action_dim,
            "ranges": [[-1, 1], [-2, 2], [0, 0.08], [-1, 1]][:action_dim],
        },
        "normalization": {
            "mean_action": [0.0, 0.0, 0.04, 0.0][:action_dim],
            "std_action": [1.0, 1.0, 0.04, 1.0][:action_dim],
            "mean_state": [0.0] * 4,
            "std_state": [1.0] * 4,
        },
        "gripper": {"component_idx": 2, "close_threshold": 0.5, "inverted": inverted},
        "cameras": [{"name": "base", "resolution": [640, 480], "fps": 30, "color_space": "rgb8"}],
        "control": {"frequency_hz": 10, "chunk_size": chunk, "rtc_execution_horizon": 2},
        "constraints": {
            "max_ee_velocity": 1.0,
            "max_gripper_velocity": 1.0,
            "collision_check": False,
        },
    }


def test_embodiment_stats_gripper_block_and_dims(tmp_path) -> None:
    from reflex_core.embodiments import EmbodimentConfig

    art = rg.write_artifact(tmp_path / "art", normalization={"state": None, "action": None})
    emb = EmbodimentConfig.from_dict(embodiment_dict())
    policy = load_policy(art, embodiment=emb)
    raw = load_policy(art)
    eps = noise()
    out, model = policy.infer([obs()], eps), raw.infer([obs()], eps)
    assert raw.info["action_normalization"] == "none"
    assert (
        policy.info["action_normalization"] == "embodiment" and policy.info["raw_actions"] is False
    )
    # embodiment mean/std on the way out, then the gripper (dim 2, range [0, 0.08]) snaps
    np.testing.assert_allclose(out.actions[..., :2], model.actions[..., :2], atol=1e-6)
    gripper = model.actions[..., 2] * 0.04 + 0.04
    expected = np.where((gripper - 0.0) / 0.08 >= 0.5, 0.08, 0.0)
    np.testing.assert_allclose(out.actions[..., 2], expected, atol=1e-7)
    assert np.all(np.isclose(out.actions[..., 2], 0.0) | np.isclose(out.actions[..., 2], 0.08))
    # model units -> robot units -> snapped: 0.04 + 0.04 * y; f >= 0.5 closes (0.08)
    crafted = np.zeros((1, 3, A), np.float32)
    crafted[0, :, 2] = [-0.2, 0.1, 0.9]  # gripper 0.032 (f 0.4), 0.044 (f 0.55), 0.076
    crafted[0, :, 0] = [0.25, -0.5, 3.0]
    post = policy.postprocess(crafted)
    assert post.shape == (1, 3, 3)
    np.testing.assert_allclose(post[0, :, 2], [0.0, 0.08, 0.08])
    np.testing.assert_allclose(post[0, :, 0], [0.25, -0.5, 3.0])  # mean 0, std 1; no clamping here
    inverted = load_policy(
        art, embodiment=EmbodimentConfig.from_dict(embodiment_dict(inverted=True))
    )
    np.testing.assert_allclose(inverted.postprocess(crafted)[0, :, 2], [0.0, 0.08, 0.08])
    crafted[0, :, 2] = [-0.5, 0.0, 0.5]  # f 0.25, 0.5, 0.75: inverted closes (low) at f <= 0.5
    np.testing.assert_allclose(inverted.postprocess(crafted)[0, :, 2], [0.0, 0.0, 0.08])
    with pytest.raises(ConfigError) as exc:
        load_policy(art, embodiment=EmbodimentConfig.from_dict(embodiment_dict(action_dim=4)))
    assert exc.value.slug == "embodiment-mismatch" and "action_dim 4" in exc.value.message
    warned = load_policy(art, embodiment=EmbodimentConfig.from_dict(embodiment_dict(chunk=8)))
    assert any("chunk_size" in w for w in warned.info["warnings"])


def test_artifact_verification_happens_at_load(tmp_path) -> None:
    art = rg.write_artifact(tmp_path / "art")
    with open(art / "expert_denoise.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError) as exc:
        load_policy(art)
    assert exc.value.slug == "artifact-hash-mismatch"
    failed = rg.write_artifact(tmp_path / "failed", parity_passed=False)
    with pytest.raises(ArtifactError) as exc:
        load_policy(failed)
    assert exc.value.slug == "artifact-parity-failed"
    with pytest.raises(ArtifactError) as exc:
        load_policy(tmp_path / "nothing")
    assert exc.value.slug == "artifact-missing"


def test_monolithic_rejects_decomposed_only_options(artifacts) -> None:
    for kwargs in ({"adaptive_steps": 1e-3}, {"prefix_cache_size": 4}):
        with pytest.raises(ConfigError) as exc:
            load_policy(artifacts["monolithic"], **kwargs)
        assert exc.value.slug == "option-unsupported"


def test_warmup_info_and_noise_reproducibility(artifacts) -> None:
    policy = load_policy(artifacts["decomposed"], seed=7, slot="b")
    warm = policy.warmup()
    assert warm.actions.shape == (1, T, 3) and warm.features.shape == (1, DIMS.feature_dim)
    info = policy.info
    assert info["slot"] == "b" and info["mode"] == "decomposed" and info["family"] == "pi05"
    assert info["cameras"] == ["base", "wrist"] and info["chunk_size"] == T
    assert len(info["model_version"]) == 12
    assert json.dumps(info)  # /health and /config serialize it
    again = load_policy(artifacts["decomposed"], seed=7)
    again.warmup()
    np.testing.assert_array_equal(policy.infer([obs()]).actions, again.infer([obs()]).actions)
    assert set(warm.timings) >= {
        "preprocess_ms",
        "prefix_ms",
        "expert_ms",
        "model_ms",
        "total_ms",
        "steps",
    }


def test_infer_trusts_what_validate_returned_and_checks_anything_else(
    artifacts, monkeypatch
) -> None:
    import reflex_core.runtime.policy as policy_module
    import reflex_core.runtime.preprocess as preprocess_module

    policy = load_policy(artifacts["decomposed"])
    other = load_policy(artifacts["decomposed"])
    matched: list[int] = []
    real = preprocess_module.match_cameras

    def counting(images, names):
        matched.append(1)
        return real(images, names)

    monkeypatch.setattr(policy_module, "match_cameras", counting)
    monkeypatch.setattr(preprocess_module, "match_cameras", counting)
    checked = policy.validate(obs(image=np.full((8, 8, 3), 9, np.uint8)))
    assert len(matched) == 1 and checked.images[0] is not None and checked.images[1] is None
    a = policy.infer([checked], noise())
    assert len(matched) == 1  # the server's path: matched once, at the boundary
    b = policy.infer([checked.observation], noise())
    assert len(matched) == 2  # a library caller's plain Observation: checked once, in infer
    c = other.infer([checked], noise())
    assert len(matched) == 3  # another policy (the router's B) checks for itself
    np.testing.assert_array_equal(a.actions, b.actions)
    np.testing.assert_array_equal(a.actions, c.actions)


def test_a_mixed_batch_draws_the_noise_unbatched_calls_draw(artifacts) -> None:
    """Rows without noise of their own come from the policy's generator, in order, as the
    same requests one at a time would get them; rows with noise keep theirs."""
    seeded = noise(seed=3)[0]
    alone, batched = (load_policy(artifacts["decomposed"], seed=11) for _ in range(2))
    fed: dict[str, list[np.ndarray]] = {"alone": [], "batched": []}
    for name, p in (("alone", alone), ("batched", batched)):
        run = p.runner.run
        p.runner.run = lambda inputs, eps, run=run, name=name: (
            fed[name].append(eps.copy()) or run(inputs, eps)
        )
    observations = [obs(seed=i) for i in range(4)]
    rows = [None, seeded, None, None]
    singles = [
        alone.infer([o], None if r is None else r[None])
        for o, r in zip(observations, rows, strict=True)
    ]
    together = batched.infer(observations, rows)
    np.testing.assert_array_equal(np.concatenate(fed["alone"]), fed["batched"][0])
    np.testing.assert_array_equal(fed["batched"][0][1], seeded)
    for i, single in enumerate(singles):
        np.testing.assert_allclose(together.actions[i], single.actions[0], rtol=1e-5, atol=1e-5)
    with pytest.raises(ValidationError) as exc:
        batched.infer(observations[:2], [None, np.zeros((T, A + 1), np.float32)])
    assert exc.value.slug == "noise-shape-mismatch" and exc.value.field == "noise[1]"


def test_an_observation_is_finite_float32_whoever_builds_it() -> None:
    """One check, one slug: the wire parser and a library caller get the same refusal."""
    from reflex_core.wire.parse import parse_observation

    for state in ([0.0, float("inf")], [0.0, 1e39], [0.0, 10**400]):
        with pytest.raises(ValidationError) as built:
            Observation(state=state)
        with pytest.raises(ValidationError) as parsed:
            parse_observation({"state": state})
        assert built.value.slug == parsed.value.slug == "non-finite-state"
    assert Observation(state=[1, 2]).state.dtype == np.float32


# -- real tiny-pi05 artifacts (exported through the real pipeline) ------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("source", ["tiny-pi05", "tiny-pi0"])
def test_real_tiny_artifacts_decomposed_equals_monolithic_equals_torch(
    source, export_artifact_dir, tiny_checkpoint
) -> None:
    torch = pytest.importorskip("torch")
    dirs = {mode: export_artifact_dir(source, mode) for mode in ("decomposed", "monolithic")}
    loaded = tiny_checkpoint(source)

    dec, mono = load_policy(dirs["decomposed"]), load_policy(dirs["monolithic"])
    family = "pi05" if source == "tiny-pi05" else "pi0"
    assert dec.info["family"] == family and mono.info["mode"] == "monolithic"
    rng = np.random.default_rng(3)
    cams = dec.camera_names
    batch = [
        Observation(
            state=rng.uniform(-0.5, 0.5, dec.state_dim).astype(np.float32),
            images={c: rng.integers(0, 256, (60, 80, 3), dtype=np.uint8) for c in cams},
            prompt="pick up the red cube",
        ),
        Observation(  # one camera missing, another frame size, no prompt
            state=rng.uniform(-0.5, 0.5, dec.state_dim).astype(np.float32),
            images={cams[0]: rng.integers(0, 256, (30, 20, 3), dtype=np.uint8)},
        ),
    ]
    eps = rng.standard_normal((2, dec.chunk_size, dec.max_action_dim)).astype(np.float32)
    a, b = dec.infer(batch, eps), mono.infer(batch, eps)
    inputs = _inputs(dec, batch)
    flow = loaded.graphs
    with torch.no_grad():
        feeds = {k: torch.from_numpy(v) for k, v in inputs.feeds().items()}
        ref = flow.sample_actions(feeds, torch.from_numpy(eps), loaded.num_steps).numpy()
        prefix_out = flow.prefix(*(feeds[n] for n in flow.prefix_inputs))
        ref_features = dict(zip(flow.prefix_outputs, prefix_out, strict=True))["features"].numpy()
    assert np.abs(dec.runner.run(inputs, eps).actions - ref).max() <= 1e-4
    assert np.abs(mono.runner.run(inputs, eps).actions - ref).max() <= 1e-4
    scale = max(1.0, float(np.abs(a.actions).max()))
    assert np.abs(a.actions - b.actions).max() <= 1e-4 * scale
    assert np.abs(a.actions - dec.postprocess(ref)).max() <= 1e-4 * scale
    assert np.abs(a.features - ref_features).max() <= 1e-4
    assert a.actions.shape == (2, dec.chunk_size, dec.action_dim)
    # reflex doctor agrees on the real artifacts (the embodiment WARN aside)
    from reflex_core.commands.doctor import artifact_checks

    for directory in dirs.values():
        statuses = {c.name: c.status for c in artifact_checks(directory, runs=1)}
        assert statuses.pop("embodiment") == "WARN"
        assert set(statuses.values()) == {"PASS"}, statuses


# -- the preprocessing contract is data: no family code in runtime/ -----------------------------


def test_the_runtime_has_no_family_code() -> None:
    """A new family adds data to the artifact, never a branch here (issue: the family seam)."""
    import re

    import reflex_core.runtime as runtime

    pattern = re.compile(r"\b(pi0|pi05|pi0\.5|smolvla|groot|paligemma|gemma|siglip)\b", re.I)
    hits = [
        f"{path.name}:{n}: {line.strip()}"
        for path in sorted(Path(runtime.__file__).parent.glob("*.py"))
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]
    assert hits == []


def test_the_flow_schedule_comes_from_the_artifact(tmp_path) -> None:
    """A family integrating from t=0 to t=1 (GR00T's direction) runs with no runtime change."""
    forward = rg.write_artifact(
        tmp_path / "fwd", preprocessing={"flow": {"t_start": 0.0, "t_end": 1.0}}
    )
    policy = load_policy(forward)
    assert (policy.runner.flow.t_start, policy.runner.flow.t_end) == (0.0, 1.0)
    inputs = _inputs(policy, [obs()])
    eps = noise()
    actions, _ = policy.runner.denoise(policy.runner.prefix(inputs), inputs.state, eps)
    prefix = ort.InferenceSession(str(forward / "vlm_prefix.onnx"))
    expert = ort.InferenceSession(str(forward / "expert_denoise.onnx"))
    prefix_in = [i.name for i in prefix.get_inputs()]
    names = [o.name for o in prefix.get_outputs()]
    out = dict(zip(names, prefix.run(None, {n: inputs.feeds()[n] for n in prefix_in}), strict=True))
    x, n = eps.copy(), DIMS.num_steps
    for k in range(n):
        feeds = {i.name: out[i.name] for i in expert.get_inputs() if i.name in out}
        feeds |= {"x_t": x, "t": np.full((1,), k / n, np.float32), "state": inputs.state}
        x = x + (1.0 / n) * expert.run(None, feeds)[0]
    np.testing.assert_allclose(actions, x, atol=1e-6)


def test_image_and_prompt_contract_reach_the_graphs(tmp_path) -> None:
    lerobot04 = rg.write_artifact(
        tmp_path / "l04",
        preprocessing={
            "image": {"pad_value": -1.0, "pad_position": "bottom_right"},
            "prompt": {"state_pad_to": 6},
        },
    )
    policy = load_policy(lerobot04)
    inputs = _inputs(policy, [obs(base=np.full((4, 8, 3), 255, np.uint8))])
    image = inputs.images[0, 0]
    assert np.all(image[:, -1] == 1.0)  # the frame sits at the bottom
    assert np.all(image[:, 0] == -3.0)  # lerobot 0.4's -1 padding in [0, 1] units
    assert inputs.prompts[0].count(" 128") >= 2  # the state was zero-padded before binning
