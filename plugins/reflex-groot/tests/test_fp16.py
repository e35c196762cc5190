"""``reflex export tiny-groot --precision fp16`` in both modes: the gate at its fp16 defaults
passes on graphs that really are fp16, and ``reflex serve`` answers /act with the chunk the fp32
torch model gives for the same observation and noise (to fp16 accuracy)."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from reflex_core.plugin.testing import server_process

pytestmark = pytest.mark.slow

REFLEX = str(Path(sys.executable).with_name("reflex"))
STATE = [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02]
PROMPT = "pick up the cube"
NOISE_SEED = 7
#: the gate's fp16 defaults (reflex_core/export/parity.py ParitySettings.for_precision)
FP16_MAX_ABS, FP16_MIN_COS = 5e-3, 0.999


def _frame(value: int) -> np.ndarray:
    return np.full((28, 28, 3), value, np.uint8)


def _png(pixels: np.ndarray) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")  # lossless: the server sees these pixels
    return base64.b64encode(buffer.getvalue()).decode()


def _fp32_torch_chunk(tiny_dir: Path, artifact_dir: Path) -> tuple[np.ndarray, float]:
    """The fp32 torch model on the observation the test serves, through the runtime's own
    numpy preprocessing and unnormalization; and the largest robot-units scale of one
    normalized unit (MIN_MAX: (max - min) / 2), to carry the gate's tolerance over."""
    import torch
    from reflex_groot.loader import load_groot_checkpoint

    from reflex_core.models.family import LoadOptions
    from reflex_core.runtime import load_policy
    from reflex_core.runtime.preprocess import prepare_inputs, unnormalize_actions
    from reflex_core.serve.app import noise_from_seed

    torch_policy = load_groot_checkpoint(
        tiny_dir, LoadOptions(source=str(tiny_dir), embodiment="franka")
    )
    policy = load_policy(artifact_dir, threads=1)
    art = policy.artifact
    inputs = prepare_inputs(
        images=[{"front": _frame(90), "wrist": _frame(200)}],
        states=[np.asarray(STATE, np.float32)],
        prompts=[PROMPT],
        io=art.io,
        max_state_dim=art.max_state_dim,
        state_stats=art.normalization["state"],
        tokenizer=policy.tokenizer,
    )
    noise = noise_from_seed(NOISE_SEED, art.chunk_size, art.max_action_dim)[None]
    feeds = {k: torch.from_numpy(v) for k, v in inputs.feeds().items()}
    with torch.no_grad():
        actions = torch_policy.graphs.sample_actions(feeds, torch.from_numpy(noise), art.num_steps)
    stats = art.normalization["action"]
    assert stats["mode"] == "MIN_MAX"
    scale = float(np.max((np.asarray(stats["max"]) - np.asarray(stats["min"])) / 2))
    return unnormalize_actions(actions.numpy(), art.action_dim, stats)[0], scale


def _assert_fp16_graphs(artifact_dir: Path) -> None:
    import onnx

    manifest = json.loads((artifact_dir / "reflex_config.json").read_text())
    assert manifest["precision"] == "fp16"
    floats = (onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16)
    for graph in manifest["graphs"].values():
        model = onnx.load(str(artifact_dir / graph["file"]))
        weights = [
            i for i in model.graph.initializer if i.data_type in floats and np.prod(i.dims) >= 256
        ]
        assert weights and all(i.data_type == onnx.TensorProto.FLOAT16 for i in weights)
        # the runtime contract is unchanged: fp32 float inputs and outputs
        for value in [*model.graph.input, *model.graph.output]:
            assert value.type.tensor_type.elem_type != onnx.TensorProto.FLOAT16, value.name


def test_tiny_groot_fp16_exports_in_both_modes_passes_the_gate_and_serves(
    tiny_dir: Path, tmp_path: Path
) -> None:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "REFLEX_CACHE_DIR": str(tmp_path / "c")}
    body = {
        "state": STATE,
        "images": {"front": _png(_frame(90)), "wrist": _png(_frame(200))},
        "prompt": PROMPT,
        "noise_seed": NOISE_SEED,
    }
    expected: np.ndarray | None = None
    for mode in ("decomposed", "monolithic"):
        out = tmp_path / mode
        result = subprocess.run(
            [REFLEX, "export", "tiny-groot", "-o", str(out), "--mode", mode,
             "--precision", "fp16", "--embodiment", "franka", "--json", "-q"],
            capture_output=True, text=True, env=env, timeout=900, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        parity = json.loads(result.stdout)["parity"]
        assert parity["passed"] is True
        assert parity["thresholds"]["max_abs"] == FP16_MAX_ABS
        assert parity["thresholds"]["min_cos"] == FP16_MIN_COS
        # really fp16: far above the fp32 floor (~1e-6), within the fp16 allowance (features
        # are judged relative to their scale, so the worst output's own allowance)
        worst = parity["worst"]
        assert 1e-5 < worst["max_abs_error"] <= worst["allowed_abs"]
        report = json.loads((out / "parity_report.json").read_text())
        chunks = [case["outputs"]["actions"] for case in report["end_to_end"]["cases"]]
        assert all(c["max_abs_error"] <= FP16_MAX_ABS for c in chunks)
        assert all(c["cosine"] >= FP16_MIN_COS for c in chunks)
        _assert_fp16_graphs(out)

        if expected is None:
            expected, scale = _fp32_torch_chunk(tiny_dir, out)
        argv = [REFLEX, "serve", str(out), "--embodiment", "franka"]
        with server_process(argv, log_path=tmp_path / f"{mode}.log", env=env) as base:
            assert httpx.get(base + "/health", timeout=10).json()["status"] == "ready"
            reply = httpx.post(base + "/act", json=body, timeout=60)
            assert reply.status_code == 200, reply.text
            served = np.asarray(reply.json()["actions"], np.float64)
        assert served.shape == expected.shape == (16, 8)
        error = float(np.abs(served - expected).max())
        cos = float(
            served.ravel() @ expected.ravel() / np.linalg.norm(served) / np.linalg.norm(expected)
        )
        # the gate's fp16 bound in normalized units, twice over for an input it did not see
        assert error <= 2 * FP16_MAX_ABS * scale, (mode, error, scale)
        assert error > 1e-5 * scale, "the served chunk should carry fp16 rounding"
        assert cos >= FP16_MIN_COS, (mode, cos)
