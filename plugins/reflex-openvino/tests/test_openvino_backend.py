"""reflex-openvino: the backend is chosen like a provider, runs the artifact's graphs, and a
reduced precision is served only behind its precision gate.

Real OpenVINO on the core's toy artifact (``tests/fixtures/runtime_graphs.py``: small hand-built
prefix/expert graphs with linear layers, attention and norms), so these run in seconds. The
provider-choice logic itself, without any backend package, is tested in the core
(``tests/test_runtime_backends.py``).
"""

from __future__ import annotations

import importlib.util
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reflex_openvino import backend, precision
from reflex_openvino.gate import compare, generated_observations, noises, run_gate, verdict

from reflex_core.errors import ConfigError
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.runtime import load_policy

REPO = Path(__file__).resolve().parents[3]


def _runtime_graphs() -> Any:
    path = REPO / "tests" / "fixtures" / "runtime_graphs.py"
    spec = importlib.util.spec_from_file_location("runtime_graphs_openvino", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFLEX_CACHE_DIR", str(tmp_path / "cache"))


@pytest.fixture
def artifact(tmp_path: Path) -> Path:
    return _runtime_graphs().write_artifact(tmp_path / "art")


def _actions(policy: Any, count: int = 2) -> list[np.ndarray]:
    obs, eps = generated_observations(policy, count, 5), noises(policy, count, 5)
    return [policy.infer([o], noise=n).actions for o, n in zip(obs, eps, strict=True)]


def test_installed_and_registered_through_the_entry_point() -> None:
    (ep,) = [e for e in metadata.entry_points(group="reflex.plugins") if e.name == "openvino"]
    assert ep.value == "reflex_openvino" and ep.dist is not None
    assert ep.dist.name == "reflex-openvino"
    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "openvino"})
    assert pm.load_failures == []
    assert set(pm.registry.runtime_backends) == {"openvino", "openvino-bf16", "openvino-int8"}
    assert pm.registry.owner("commands", "openvino") == "openvino"


def test_fp32_backend_matches_onnxruntime(artifact: Path) -> None:
    reference = load_policy(artifact, providers=["cpu"], threads=1)
    policy = load_policy(artifact, providers=["openvino"], threads=1)  # read from the plugins
    (label,) = policy.info["providers"]["vlm_prefix"]
    assert label.startswith("openvino (OpenVINO") and label.endswith("fp32)")
    for want, got in zip(_actions(reference), _actions(policy), strict=True):
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def test_the_backend_is_thread_safe_per_call(artifact: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    policy = load_policy(artifact, providers=["openvino"], threads=1)
    obs, eps = generated_observations(policy, 4, 1), noises(policy, 4, 1)
    alone = [policy.infer([o], noise=n).actions for o, n in zip(obs, eps, strict=True)]
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda i: policy.infer([obs[i]], noise=eps[i]).actions, range(4)))
    for a, b in zip(alone, together, strict=True):
        np.testing.assert_array_equal(a, b)


def test_bf16_is_refused_where_the_cpu_lacks_it_or_without_its_gate(artifact: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_policy(artifact, providers=["openvino-bf16"])
    if "BF16" in backend.capabilities():
        assert exc.value.slug == "precision-gate-missing"
    else:
        # OpenVINO itself would quietly run fp32 here: the backend says no instead
        assert exc.value.slug == "provider-unavailable"
        assert "bf16" in str(exc.value).lower()
        with pytest.raises(ConfigError) as compiled:
            backend.compile_graph(
                artifact / "expert_denoise.onnx", "bf16", threads=1, role="expert_denoise"
            )
        assert compiled.value.slug == "provider-unavailable"


def test_probe_without_the_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    why = backend.probe("fp32")
    assert why is not None and "not installed" in why


def test_int8_without_its_gate_is_refused(artifact: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        load_policy(artifact, providers=["openvino-int8"])
    assert exc.value.slug == "precision-gate-missing"


def test_int8_gate_passes_and_the_quantized_graphs_are_served(artifact: Path) -> None:
    # the toy's layers are 3-8 wide, so int8 moves its actions a lot more than a real model's:
    # thresholds for the mechanics here (benchmarks/vs_lerobot.py measures the real thing)
    report = run_gate(
        artifact, "int8", cases=3, calibration=4, threads=1, thin=0, min_cos=0.9, max_rel=0.5
    )
    assert report["passed"], report["worst"]
    assert report["artifact_config_sha256"] and report["openvino"] == backend.version()
    assert report["calibration"]["vlm_prefix"]["quantized_matmuls"] > 0
    assert report["calibration"]["expert_denoise"]["quantized_matmuls"] > 0
    saved = json.loads((backend.gate_dir(artifact, "int8") / "gate_report.json").read_text())
    assert saved["passed"] is True
    policy = load_policy(artifact, providers=["openvino-int8"], threads=1)
    assert policy.info["providers"]["expert_denoise"][0].endswith("int8)")
    reference = load_policy(artifact, providers=["cpu"], threads=1)
    for want, got in zip(_actions(reference), _actions(policy), strict=True):
        assert not np.array_equal(got, want)  # int8 really runs: the numbers move...
        assert compare(want, got)["cosine"] > 0.9  # ...within the gate


def test_a_failed_int8_gate_is_refused(artifact: Path) -> None:
    from reflex_openvino import _run

    args = type("Args", (), {})()
    for key, value in {
        "artifact_dir": str(artifact), "precision": "int8", "cases": 2, "seed": 0,
        "calibration": 2, "threads": 1, "min_cos": 0.9999, "max_abs": 1e-9, "max_rel": 0.01,
        "thin": 0, "json": False,
    }.items():  # fmt: skip
        setattr(args, key, value)
    assert _run(args, None) == 1  # int8 moves the actions by more than 1e-9: the gate fails
    report = json.loads((backend.gate_dir(artifact, "int8") / "gate_report.json").read_text())
    assert report["passed"] is False and report["worst"]["max_abs_error"] > 1e-9
    with pytest.raises(ConfigError) as exc:
        load_policy(artifact, providers=["openvino-int8"])
    assert exc.value.slug == "precision-gate-failed"


def test_a_gate_report_for_another_artifact_is_stale(artifact: Path) -> None:
    run_gate(artifact, "int8", cases=1, calibration=1, threads=1, thin=0, max_rel=1.0)
    path = backend.gate_dir(artifact, "int8") / "gate_report.json"
    report = json.loads(path.read_text())
    report["artifact_config_sha256"] = "0" * 64
    path.write_text(json.dumps(report))
    with pytest.raises(ConfigError) as exc:
        load_policy(artifact, providers=["openvino-int8"])
    assert exc.value.slug == "precision-gate-stale"


def test_verdict_thresholds() -> None:
    cases = [
        {"max_abs_error": 0.01, "cosine": 0.99995, "ref_max_abs": 2.0},
        {"max_abs_error": 0.03, "cosine": 0.99999, "ref_max_abs": 1.0},
    ]
    relative = verdict(cases, min_cos=0.9999, max_abs=None, max_rel=0.01)  # allowed 0.02
    assert relative["allowed_abs"] == pytest.approx(0.02)
    assert not relative["passed"] and relative["worst"]["max_abs_error"] == 0.03
    assert verdict(cases, min_cos=0.9999, max_abs=0.05, max_rel=0.01)["passed"]
    assert not verdict(cases, min_cos=0.99999, max_abs=0.05, max_rel=0.01)["passed"]
    assert not verdict([], min_cos=0.9, max_abs=1.0, max_rel=0.01)["passed"]


def _sensitive_model(tmp_path: Path) -> Path:
    """t -> sin/cos embedding -> linear; x -> RMSNorm -> linear -> softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [
        numpy_helper.from_array(np.linspace(1, 100, 8, dtype=np.float32), "freq"),
        numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w_t"),
        numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), "w_x"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
        numpy_helper.from_array(np.array(1e-6, np.float32), "eps"),
    ]
    nodes = [
        helper.make_node("Mul", ["t", "freq"], ["angle"]),
        helper.make_node("Sin", ["angle"], ["sin"]),
        helper.make_node("Cos", ["angle"], ["cos"]),
        helper.make_node("Concat", ["sin", "cos"], ["emb"], axis=-1),
        helper.make_node("MatMul", ["emb", "w_t"], ["temb"]),
        helper.make_node("Pow", ["x", "two"], ["sq"]),
        helper.make_node("ReduceMean", ["sq"], ["ms"], axes=[-1], keepdims=1),
        helper.make_node("Add", ["ms", "eps"], ["mse"]),
        helper.make_node("Sqrt", ["mse"], ["rms"]),
        helper.make_node("Div", ["x", "rms"], ["xn"]),
        helper.make_node("MatMul", ["xn", "w_x"], ["h"]),
        helper.make_node("Add", ["h", "temb"], ["ht"]),
        helper.make_node("Softmax", ["ht"], ["y"], axis=-1),
    ]
    graph = helper.make_graph(
        nodes,
        "sensitive",
        [
            helper.make_tensor_value_info("t", TensorProto.FLOAT, [1, 1]),
            helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16]),
        ],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 16])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    path = tmp_path / "sensitive.onnx"
    onnx.save(model, str(path))
    return path


def test_bf16_keeps_the_precision_sensitive_nodes_fp32(tmp_path: Path) -> None:
    model = backend._core().read_model(str(_sensitive_model(tmp_path)))
    precision.keep_fp32(model)
    kinds = {
        op.get_type_name() for op in model.get_ops() if precision.FP32_MARK in op.get_rt_info()
    }
    # the time embedding (and the product feeding it), the RMSNorm statistics, the softmax
    assert {"Sin", "Cos", "Multiply", "Power", "ReduceMean", "Sqrt", "Divide", "Softmax"} <= kinds
    assert "MatMul" not in kinds  # the matrix products are what bf16 is for


def test_int8_skips_the_time_embedding_layer(tmp_path: Path) -> None:
    model = backend._core().read_model(str(_sensitive_model(tmp_path)))
    chosen = precision.weight_matmuls(model, thin=0)
    # the linear layer after the RMSNorm is quantized; the one reading the sin/cos is not
    assert len(chosen) == 1
    assert chosen[0].input_value(0).get_node().get_type_name() == "Divide"
