"""``reflex export``: exporters, parity gate, artifact publishing and the CLI.

The slow tests export the built-in tiny checkpoints for real (torch -> ONNX -> gate) once per
session through tests/conftest_artifacts.py. Tests that need a *broken* export do not re-export:
a test exporter plugin copies cached graphs and corrupts one weight, and the real gate runs on
them (the plugin goes through the same ``reflex_register_exporters`` hook a third party uses).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reflex_core.artifact import CONFIG_FILE, PARITY_FILE, Artifact, sha256_file
from reflex_core.errors import ArtifactError, ConfigError, ParityError
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.registry import Exporter

_fx = sys.modules["reflex_tests_conftest_artifacts"]  # loaded by tests/conftest.py

MODES = {"decomposed": ("vlm_prefix", "expert_denoise"), "monolithic": ("policy",)}
EXPORTS = [
    ("tiny-pi0", "decomposed"),
    ("tiny-pi0", "monolithic"),
    ("tiny-pi05", "decomposed"),
    ("tiny-pi05", "monolithic"),
]


def _close(reference: np.ndarray, actual: np.ndarray, max_abs: float, min_cos: float) -> None:
    ref = np.asarray(reference, np.float64).ravel()
    got = np.asarray(actual, np.float64).ravel()
    assert ref.shape == got.shape
    err = float(np.max(np.abs(ref - got)))
    cos = float(ref @ got / (np.linalg.norm(ref) * np.linalg.norm(got)))
    assert err <= max_abs, f"max abs error {err}"
    assert cos >= min_cos, f"cosine {cos}"


def _observations(artifact: Artifact, batch: int, seed: int) -> list[Any]:
    from reflex_core.wire.types import Observation

    rng = np.random.default_rng(seed)
    stats = artifact.normalization["state"]
    obs = []
    for b in range(batch):
        if stats is not None and stats["mode"] == "QUANTILES":
            state = rng.uniform(stats["q01"], stats["q99"]).astype(np.float32)
        else:
            state = rng.standard_normal(artifact.state_dim).astype(np.float32)
        images = {
            name: rng.integers(0, 256, size=(24 + 8 * b, 40, 3), dtype=np.uint8)
            for name in artifact.cameras
        }
        obs.append(Observation(state=state, images=images, prompt=f"pick up cube {b}"))
    return obs


def _torch_actions(policy: Any, artifact: Artifact, obs: list[Any], noise: np.ndarray) -> Any:
    """The PyTorch reference for Policy.infer: same numpy pre/post-processing, torch in between."""
    import torch

    from reflex_core.runtime.preprocess import prepare_inputs, unnormalize_actions
    from reflex_core.runtime.tokenizer import PromptTokenizer

    tok = PromptTokenizer.for_artifact(artifact)
    inputs = prepare_inputs(
        images=[o.images for o in obs],
        states=[o.state for o in obs],
        prompts=[o.prompt for o in obs],
        io=artifact.io,
        max_state_dim=artifact.max_state_dim,
        state_stats=artifact.normalization["state"],
        tokenizer=tok,
    )
    feeds = {k: torch.from_numpy(v) for k, v in inputs.feeds().items()}
    flow = policy.graphs
    with torch.no_grad():
        actions = flow.sample_actions(feeds, torch.from_numpy(noise), artifact.num_steps).numpy()
        prefix = flow.prefix(*(feeds[n] for n in flow.prefix_inputs))
        features = dict(zip(flow.prefix_outputs, prefix, strict=True))["features"]
    return (
        unnormalize_actions(actions, artifact.action_dim, artifact.normalization["action"]),
        features.numpy(),
    )


# ----------------------------------------------------------------------------------------------
# A test exporter: real cached graphs, optionally with one corrupted weight
# ----------------------------------------------------------------------------------------------


def corrupt_largest_weight(path: Path, scale: float = 1.5) -> str:
    """Scale the largest float initializer of an ONNX file in place; returns its name."""
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    floats = [i for i in model.graph.initializer if i.data_type == onnx.TensorProto.FLOAT]
    target = max(floats, key=lambda i: int(np.prod(i.dims)))
    array = numpy_helper.to_array(target) * np.float32(scale) + np.float32(0.01)
    target.CopyFrom(numpy_helper.from_array(array.astype(np.float32), target.name))
    onnx.save(model, str(path))
    return target.name


class CopyingExporter:
    """Plugin registering mode ``copy-decomposed``: copies a cached decomposed artifact's graphs,
    corrupting the graph named ``corrupt`` (if any), and describes them with real torch
    references so the real gate runs."""

    def __init__(self, source_dir: Path, corrupt: str | None = None) -> None:
        self.source_dir = source_dir
        self.corrupt = corrupt
        self.calls = 0
        self.models: list[weakref.ref[Any]] = []  # the torch models it was handed

    @hookimpl
    def reflex_register_exporters(self, register: Callable[[Exporter], None]) -> None:
        register(Exporter(name="copy-decomposed", export=self.export, description="test copy"))

    def export(self, policy: Any, out_dir: Path, options: Any) -> list[Any]:
        from reflex_core.export.exporters import ExportedGraph, read_graph_io

        self.calls += 1
        flow = policy.graphs
        self.models.append(weakref.ref(flow.prefix.model))
        for name in MODES["decomposed"]:
            shutil.copyfile(self.source_dir / f"{name}.onnx", out_dir / f"{name}.onnx")
        if self.corrupt is not None:
            corrupt_largest_weight(out_dir / f"{self.corrupt}.onnx")
        refs = {
            "vlm_prefix": (flow.prefix, flow.prefix_inputs),
            "expert_denoise": (flow.step, flow.step_inputs),
        }
        graphs = []
        for name, (module, names) in refs.items():
            inputs, outputs, opset = read_graph_io(out_dir / f"{name}.onnx")
            graphs.append(
                ExportedGraph(
                    name=name,
                    file=f"{name}.onnx",
                    inputs=inputs,
                    outputs=outputs,
                    reference=module.eval(),
                    torch_inputs=tuple(names),
                    notes={"opset": opset},
                )
            )
        return graphs


def _run_cli(monkeypatch: pytest.MonkeyPatch, plugin: Any, argv: list[str]) -> int:
    import reflex_core.cli as cli

    monkeypatch.setattr(
        cli,
        "make_plugin_manager",
        lambda: make_plugin_manager(load_entrypoints=False, extra_plugins={"test-copy": plugin}),
    )
    return cli.main(argv)


def _leftovers(parent: Path) -> list[Path]:
    return [p for p in parent.iterdir() if p.name.endswith((".partial", ".old"))]


# ----------------------------------------------------------------------------------------------
# Fast tests
# ----------------------------------------------------------------------------------------------


def test_builtin_exporters_register_without_importing_torch() -> None:
    code = (
        "import sys\n"
        "from reflex_core.plugin.manager import make_plugin_manager\n"
        "reg = make_plugin_manager(load_entrypoints=False).registry\n"
        "print(sorted(reg.exporters), reg.owner('exporters', 'decomposed'))\n"
        "import reflex_core.export, reflex_core.artifact, reflex_core.commands.export\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split("\n")
    assert out[0] == "['decomposed', 'monolithic'] reflex.exporters"
    assert out[1] == "False"


def test_export_refuses_a_non_empty_output_without_force(tmp_path: Path) -> None:
    from reflex_core.export.pipeline import ExportRequest, export_artifact

    out = tmp_path / "out"
    out.mkdir()
    (out / "something").write_text("keep me")
    with pytest.raises(ConfigError) as exc:
        export_artifact(ExportRequest("tiny-pi05", out))
    assert exc.value.slug == "output-exists"
    assert (out / "something").read_text() == "keep me"


@pytest.mark.parametrize(
    ("kwargs", "slug"),
    [
        ({"mode": "nope"}, "export-mode-unknown"),
        ({"precision": "int8"}, "config-error"),
        ({"num_steps": 0}, "config-error"),
    ],
)
def test_export_rejects_bad_options_before_loading(
    tmp_path: Path, kwargs: dict[str, Any], slug: str
) -> None:
    from reflex_core.export.pipeline import ExportRequest, export_artifact

    with pytest.raises(ConfigError) as exc:
        export_artifact(ExportRequest("no-such-checkpoint", tmp_path / "o", **kwargs))
    assert exc.value.slug == slug


def test_parity_metrics_and_judgement() -> None:
    from reflex_core.export.parity import ParitySettings, compare_arrays, judge

    settings = ParitySettings()
    ref = np.linspace(-50, 50, 101, dtype=np.float32)
    m = compare_arrays(ref, ref + np.float32(1e-3))
    assert m["max_abs_error"] == pytest.approx(1e-3, rel=1e-3)
    assert m["max_rel_error"] == pytest.approx(1e-3 / 50, rel=1e-3)
    # 1e-3 abs fails an absolute output but passes the KV cache (1e-4 of its scale 50 = 5e-3).
    assert not judge("velocity", m, settings)["passed"]
    assert judge("past_k_3", m, settings)["passed"]
    assert judge("features", m, settings)["passed"]
    assert not judge("past_k_0", compare_arrays(ref, ref * np.float32(1.001)), settings)["passed"]
    masks = np.array([[True, False, True]])
    assert judge("prefix_mask", compare_arrays(masks, masks), settings)["passed"]
    assert not judge("prefix_mask", compare_arrays(masks, ~masks), settings)["passed"]
    assert not judge("actions", compare_arrays(ref, ref[:-1]), settings)["passed"]
    nan = ref.copy()
    nan[3] = np.nan
    assert not judge("actions", compare_arrays(ref, nan), settings)["passed"]
    assert compare_arrays(np.zeros(3), np.zeros(3))["cosine"] == 1.0
    # fp16 defaults are relaxed, explicit values win.
    half = ParitySettings.for_precision("fp16", max_abs=None, cases=2)
    assert (half.max_abs, half.min_cos, half.cases) == (5e-3, 0.999, 2)


def test_progress_lines(tmp_path: Path) -> None:
    import io

    from reflex_core.export.progress import Progress

    stream = io.StringIO()
    progress = Progress(stream, live=False)
    with progress.step("exporting x"):
        progress.note("a number")
    with pytest.raises(RuntimeError), progress.step("failing y"):
        raise RuntimeError("boom")
    lines = stream.getvalue().splitlines()
    assert lines[0] == "exporting x ..."
    assert lines[1] == "  a number"
    assert lines[2].startswith("exporting x: done in ")
    assert lines[-1].startswith("failing y: FAILED in ")
    assert set(progress.timings) == {"exporting x", "failing y"}


# ----------------------------------------------------------------------------------------------
# Real exports (cached per session)
# ----------------------------------------------------------------------------------------------


@pytest.fixture(params=EXPORTS, ids=[f"{s}-{m}" for s, m in EXPORTS])
def exported(request: pytest.FixtureRequest, export_artifact_dir: Any) -> tuple[str, str, Path]:
    source, mode = request.param
    return source, mode, export_artifact_dir(source, mode)


@pytest.mark.slow
def test_export_writes_a_verified_artifact(exported: tuple[str, str, Path]) -> None:
    source, mode, path = exported
    artifact = Artifact.load(path, verify=True)
    family = "pi05" if source == "tiny-pi05" else "pi0"
    assert (artifact.mode, artifact.family, artifact.precision) == (mode, family, "fp32")
    assert set(artifact.graphs) == set(MODES[mode])
    assert artifact.num_steps == 10
    assert artifact.prompt.uses_state == (family == "pi05")
    assert artifact.embodiment is None
    assert artifact.exporter["torch"].startswith("2.13")
    assert not _leftovers(path.parent)
    layers = artifact.model["details"]["num_layers"]
    kv = [f"past_k_{i}" for i in range(layers)] + [f"past_v_{i}" for i in range(layers)]
    state = ["state"] if family == "pi0" else []  # pi0.5's state is in the prompt
    prefix_in = ["images", "image_masks", "tokens", "token_masks"]
    expected_io = {
        "vlm_prefix": (prefix_in, [*kv, "prefix_mask", "features"]),
        "expert_denoise": (["x_t", "t", *state, "prefix_mask", *kv], ["velocity"]),
        "policy": ([*prefix_in, *state, "noise"], ["actions", "features"]),
    }
    for name, graph in artifact.graphs.items():
        assert (graph.input_names, graph.output_names) == expected_io[name]
        assert sha256_file(path / graph.file) == graph.sha256
        for spec in (*graph.inputs, *graph.outputs):
            assert isinstance(spec.shape[0], str), f"{name}.{spec.name} batch axis is static"
        dtypes = {s.name: s.dtype for s in graph.inputs}
        assert dtypes.get("image_masks", "bool") == "bool"
        assert dtypes.get("tokens", "int64") == "int64"
    if (source, mode) in _fx.EXTERNAL_DATA:
        graph = artifact.graphs["policy"]
        assert graph.external_data_file == "policy.onnx.data"
        assert sha256_file(path / graph.external_data_file) == graph.external_data_sha256
    report = artifact.parity_report()
    assert report["passed"] is True
    assert report["thresholds"]["max_abs"] == 1e-4 and report["thresholds"]["min_cos"] == 0.9999
    assert [c["batch"] for c in report["cases"]] == [1, 2, 3]
    assert report["seeds"] == [[0, 0], [0, 1], [0, 2]]
    assert report["versions"]["onnxruntime"]
    results = {**report["graphs"], "end_to_end": report["end_to_end"]}
    assert set(results) == {*MODES[mode], "end_to_end"}
    assert report["end_to_end"]["runner"] == (
        "DecomposedRunner" if mode == "decomposed" else "MonolithicRunner"
    )
    for result in results.values():
        assert len(result["cases"]) == 3
        for case in result["cases"]:
            assert (
                case["passed"]
                and case["max_abs_error"] <= case["outputs"][case["worst_output"]]["allowed_abs"]
            )
            assert case["cosine"] >= 0.9999 and case["max_rel_error"] >= 0
    assert report["end_to_end"]["cases"][0]["outputs"]["actions"]["max_abs_error"] <= 1e-4


@pytest.mark.slow
def test_runtime_output_from_the_artifact_matches_pytorch(
    exported: tuple[str, str, Path], tiny_checkpoint: Any
) -> None:
    from reflex_core.runtime import load_policy

    source, _, path = exported
    policy = load_policy(path, threads=1)
    artifact = policy.artifact
    obs = _observations(artifact, batch=3, seed=11)
    noise = np.random.default_rng(12).standard_normal(
        (3, artifact.chunk_size, artifact.max_action_dim), dtype=np.float32
    )
    out = policy.infer(obs, noise)
    expected, features = _torch_actions(tiny_checkpoint(source), artifact, obs, noise)
    assert out.actions.shape == (3, artifact.chunk_size, artifact.action_dim)
    _close(expected, out.actions, 1e-4, 0.9999)
    _close(features, out.features, 1e-4 * max(1.0, float(np.abs(features).max())), 0.9999)


@pytest.mark.slow
@pytest.mark.parametrize("source", ["tiny-pi0", "tiny-pi05"])
def test_decomposed_and_monolithic_artifacts_agree(source: str, export_artifact_dir: Any) -> None:
    from reflex_core.runtime import load_policy

    dec = load_policy(export_artifact_dir(source, "decomposed"), threads=1)
    mono = load_policy(export_artifact_dir(source, "monolithic"), threads=1)
    obs = _observations(dec.artifact, batch=2, seed=5)
    noise = np.random.default_rng(6).standard_normal(
        (2, dec.chunk_size, dec.max_action_dim), dtype=np.float32
    )
    a, b = dec.infer(obs, noise), mono.infer(obs, noise)
    _close(a.actions, b.actions, 1e-4, 0.9999)
    _close(a.features, b.features, 1e-4, 0.9999)


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["decomposed", "monolithic"])
def test_the_memory_arena_changes_no_output(mode: str, export_artifact_dir: Any) -> None:
    """The parity gate opens its sessions without onnxruntime's CPU memory arena: only the
    allocator differs from what `reflex serve` opens, so the actions must be bit for bit equal
    (batches 1 and 3, so the arena-less session allocates anew for a new shape)."""
    import onnxruntime as ort

    from reflex_core.runtime import load_policy

    options_seen: list[bool] = []

    def factory(path: str, sess_options: Any, **kwargs: Any) -> Any:
        options_seen.append(sess_options.enable_cpu_mem_arena)
        return ort.InferenceSession(path, sess_options=sess_options, **kwargs)

    path = export_artifact_dir("tiny-pi05", mode)
    with_arena = load_policy(path, threads=1)
    without = load_policy(path, threads=1, memory_arena=False, session_factory=factory)
    assert options_seen and not any(options_seen)
    for batch, seed in ((1, 3), (3, 4), (1, 5)):
        obs = _observations(with_arena.artifact, batch=batch, seed=seed)
        noise = np.random.default_rng(seed).standard_normal(
            (batch, with_arena.chunk_size, with_arena.max_action_dim), dtype=np.float32
        )
        a, b = with_arena.infer(obs, noise), without.infer(obs, noise)
        assert np.array_equal(a.actions, b.actions)
        assert np.array_equal(a.features, b.features)


@pytest.mark.slow
def test_a_corrupted_weight_fails_the_gate_and_the_cli_exits_non_zero(
    tmp_path: Path,
    tiny_pi05_decomposed: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    plugin = CopyingExporter(tiny_pi05_decomposed, corrupt="expert_denoise")
    out = tmp_path / "export"
    code = _run_cli(
        monkeypatch,
        plugin,
        ["export", "tiny-pi05", "-o", str(out), "--mode", "copy-decomposed", "--parity-cases", "2"],
    )
    err = capsys.readouterr().err
    assert code == 1 and plugin.calls == 1
    assert "[parity-failed] parity gate FAILED: graph 'expert_denoise'" in err
    assert not out.exists()  # nothing shippable at DIR
    failed = tmp_path / "export.failed"
    report = json.loads((failed / PARITY_FILE).read_text())
    assert report["passed"] is False and report["worst"]["graph"] == "expert_denoise"
    assert report["graphs"]["vlm_prefix"]["passed"] is True
    assert report["graphs"]["expert_denoise"]["passed"] is False
    assert report["end_to_end"]["passed"] is False
    assert str(failed / PARITY_FILE) in err
    with pytest.raises(ArtifactError) as exc:
        Artifact.load(failed)
    assert exc.value.slug == "artifact-parity-failed"
    assert not _leftovers(tmp_path)


@pytest.mark.slow
def test_a_failed_gate_with_force_removes_the_old_artifact(
    tmp_path: Path, tiny_pi05_decomposed: Path, tiny_checkpoint: Any
) -> None:
    """The after_export hook corrupts the prefix after a clean copy: caught, and --force never
    leaves the previous artifact in place to be served by mistake."""
    from reflex_core.export.pipeline import ExportRequest, export_artifact

    out = tmp_path / "export"
    shutil.copytree(tiny_pi05_decomposed, out)
    Artifact.load(out)  # a good artifact is there before
    pm = make_plugin_manager(
        load_entrypoints=False, extra_plugins={"test-copy": CopyingExporter(tiny_pi05_decomposed)}
    )
    corrupted: list[str] = []

    def corrupt(directory: Path, graphs: Any) -> None:
        assert [g.name for g in graphs] == ["vlm_prefix", "expert_denoise"]
        corrupted.append(corrupt_largest_weight(directory / "vlm_prefix.onnx", scale=1.2))

    request = ExportRequest(
        "tiny-pi05",
        out,
        mode="copy-decomposed",
        force=True,
        parity=_fx_settings(cases=1),
    )
    with pytest.raises(ParityError) as exc:
        export_artifact(
            request,
            registry=pm.registry,
            after_export=corrupt,
            policy=tiny_checkpoint("tiny-pi05"),
        )
    assert corrupted and not out.exists()
    report = json.loads(Path(exc.value.details["report"]).read_text())
    assert report["graphs"]["vlm_prefix"]["passed"] is False
    assert report["graphs"]["expert_denoise"]["passed"] is True  # fed the torch KV: not blamed
    assert report["end_to_end"]["passed"] is False
    assert f"graph {report['worst']['graph']!r}" in exc.value.message


def _fx_settings(**kwargs: Any) -> Any:
    from reflex_core.export.parity import ParitySettings

    return ParitySettings(threads=1, **kwargs)


@pytest.mark.slow
def test_cli_export_records_options_and_reports_progress(
    tmp_path: Path,
    tiny_pi05_decomposed: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "export"
    argv = [
        "export", "tiny-pi05", "-o", str(out), "--mode", "copy-decomposed",
        "--embodiment", "franka", "--num-steps", "4", "--parity-cases", "2",
        "--parity-threshold", "2e-4", "--json",
    ]  # fmt: skip
    assert _run_cli(monkeypatch, CopyingExporter(tiny_pi05_decomposed), argv) == 0
    captured = capsys.readouterr()
    summary = json.loads(captured.out)
    assert summary["output"] == str(out) and summary["parity"]["passed"] is True
    for line in ("loading tiny-pi05 ...", "parity: vlm_prefix on 2 cases: done in",
                 "parity: end to end (DecomposedRunner, 4 steps) on 2 cases: done in"):  # fmt: skip
        assert line in captured.err
    artifact = Artifact.load(out)
    assert artifact.num_steps == 4
    assert artifact.embodiment is not None and artifact.embodiment["name"] == "franka"
    report = artifact.parity_report()
    assert report["thresholds"]["max_abs"] == 2e-4 and report["end_to_end"]["num_steps"] == 4
    assert len(report["cases"]) == 2
    config = json.loads((out / CONFIG_FILE).read_text())
    assert config["parity"]["sha256"] == sha256_file(out / PARITY_FILE)


@pytest.mark.slow
def test_the_gate_releases_the_torch_model_before_opening_sessions(
    tmp_path: Path, tiny_pi05_decomposed: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 3: torch and onnxruntime's copy of the graphs must never be resident together."""
    import reflex_core.runtime.policy as runtime_policy
    from reflex_core.export.pipeline import ExportRequest, export_artifact

    plugin = CopyingExporter(tiny_pi05_decomposed)
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"test-copy": plugin})
    alive_at_open: list[bool] = []
    arena_at_open: list[Any] = []
    real_load_policy = runtime_policy.load_policy

    def load_policy(*args: Any, **kwargs: Any) -> Any:
        alive_at_open.append(any(ref() is not None for ref in plugin.models))
        arena_at_open.append(kwargs.get("memory_arena", True))
        return real_load_policy(*args, **kwargs)

    monkeypatch.setattr(runtime_policy, "load_policy", load_policy)
    request = ExportRequest(
        "tiny-pi05", tmp_path / "o", mode="copy-decomposed", parity=_fx_settings(cases=2)
    )
    result = export_artifact(request, registry=pm.registry)  # loads (and owns) the model
    assert result.report["passed"] and len(plugin.models) == 1
    assert alive_at_open == [False]
    assert arena_at_open == [False]  # the gate's sessions keep no arena (same outputs, less memory)
    assert all(g.reference is None for g in result.graphs)
    # Still judged against torch: every graph and the end-to-end check on both cases.
    assert len(result.report["graphs"]["expert_denoise"]["cases"]) == 2
    assert len(result.report["end_to_end"]["cases"]) == 2


@pytest.mark.slow
def test_an_embodiment_that_does_not_fit_the_model_is_refused(
    tmp_path: Path, tiny_checkpoint: Any
) -> None:
    from reflex_core.embodiments import EmbodimentConfig
    from reflex_core.export.pipeline import ExportRequest, export_artifact

    request = ExportRequest(
        "tiny-pi05", tmp_path / "o", embodiment=EmbodimentConfig.load_preset("so100")
    )
    with pytest.raises(ConfigError) as exc:
        export_artifact(request, policy=tiny_checkpoint("tiny-pi05"))
    assert exc.value.slug == "embodiment-mismatch"
    assert "action_dim 6" in exc.value.message
    assert not (tmp_path / "o").exists() and not _leftovers(tmp_path)


@pytest.mark.slow
def test_fp16_export_keeps_time_and_rope_in_fp32_and_passes_the_relaxed_gate(
    tmp_path: Path, tiny_checkpoint: Any
) -> None:
    import onnx

    from reflex_core.export.pipeline import ExportRequest, export_artifact
    from reflex_core.runtime import load_policy

    out = tmp_path / "fp16"
    result = export_artifact(
        ExportRequest(
            "tiny-pi05",
            out,
            precision="fp16",
            parity=_fx_settings(cases=2, max_abs=5e-3, min_cos=0.999, kv_max_rel=5e-3),
        ),
        policy=tiny_checkpoint("tiny-pi05"),
    )
    assert result.artifact.precision == "fp16" and result.report["passed"]
    worst = result.report["worst"]
    assert 1e-5 < worst["max_abs_error"] <= 5e-3  # really fp16: far above the fp32 floor
    model = onnx.load(str(out / "expert_denoise.onnx"))
    types = {i.name: i.data_type for i in model.graph.initializer}
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    weights = [
        i for i in model.graph.initializer if i.data_type in floats and np.prod(i.dims) >= 256
    ]
    assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)
    # What stays fp32: the RoPE and time-embedding frequencies (small vectors).
    assert any(t == onnx.TensorProto.FLOAT and "inv_freq" in n for n, t in types.items())
    onnx.checker.check_model(model)
    assert [i.type.tensor_type.elem_type for i in model.graph.input][:2] == [1, 1]  # fp32 I/O
    policy = load_policy(out, threads=1)
    obs = _observations(policy.artifact, batch=2, seed=3)
    noise = np.random.default_rng(4).standard_normal(
        (2, policy.chunk_size, policy.max_action_dim), dtype=np.float32
    )
    expected, _ = _torch_actions(tiny_checkpoint("tiny-pi05"), policy.artifact, obs, noise)
    _close(expected, policy.infer(obs, noise).actions, 5e-3 * 4, 0.999)
