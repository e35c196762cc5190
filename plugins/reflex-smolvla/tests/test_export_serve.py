"""tiny-smolvla through the core, as a user runs it: ``reflex export`` in both modes (parity gate
included) and ``reflex serve`` answering one observation, with no SmolVLA code in the core."""

from __future__ import annotations

import base64
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np
import pytest

from reflex_core.plugin.testing import server_process

pytestmark = pytest.mark.slow

REFLEX = str(Path(sys.executable).with_name("reflex"))


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "REFLEX_CACHE_DIR": str(root / "cache"), "OMP_NUM_THREADS": "1"}


def _png(height: int, width: int, seed: int) -> str:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_tiny_smolvla_exports_both_modes_and_serves(tmp_path: Path) -> None:
    env = _env(tmp_path)
    outputs = {}
    for mode in ("decomposed", "monolithic"):
        out = tmp_path / mode
        result = subprocess.run(
            [REFLEX, "export", "tiny-smolvla", "-o", str(out), "--mode", mode,
             "--embodiment", "franka", "--json", "-q"],
            capture_output=True, text=True, env=env, timeout=1500,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-4000:]
        assert json.loads(result.stdout)["parity"]["passed"] is True
        outputs[mode] = out

    manifest = json.loads((outputs["decomposed"] / "reflex_config.json").read_text())
    assert manifest["model"]["family"] == "smolvla"
    image = manifest["preprocessing"]["image"]
    assert image["pad_position"] == "bottom_right" and image["pad_value"] == 0.0
    assert image["cameras"] == ["front", "wrist"]
    assert manifest["preprocessing"]["prompt"]["task_suffix"] == "\n"
    graphs = manifest["graphs"]
    assert [i["name"] for i in graphs["vlm_prefix"]["inputs"]][-1] == "state"
    step_inputs = [i["name"] for i in graphs["expert_denoise"]["inputs"]]
    assert step_inputs[:3] == ["x_t", "t", "prefix_mask"] and "state" not in step_inputs

    # A non-square frame (padded on the left/top) and no wrist camera (masked).
    body = {
        "state": [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02],
        "images": {"front": _png(24, 40, 3)},
        "prompt": "pick up the red cube",
        "noise_seed": 7,
    }
    chunks = {}
    for mode, out in outputs.items():
        argv = [REFLEX, "serve", str(out), "--embodiment", "franka"]
        with server_process(argv, log_path=tmp_path / f"{mode}.log", env=env) as base:
            assert httpx.get(base + "/health", timeout=10).json()["status"] == "ready"
            reply = httpx.post(base + "/act", json=body, timeout=60)
            assert reply.status_code == 200, reply.text
            chunks[mode] = np.asarray(reply.json()["actions"])
    assert chunks["decomposed"].shape == (10, 8)
    assert np.isfinite(chunks["decomposed"]).all()
    np.testing.assert_allclose(chunks["decomposed"], chunks["monolithic"], atol=1e-4)


def test_export_with_the_vision_patch_positions_model_option(tmp_path: Path) -> None:
    """``--model-option vision_patch_positions=transformers-5`` reaches the graph (the parity
    gate compares it with the torch model built with that rule), the artifact records it and
    ``reflex doctor`` reports it; a bad value fails before any export with its slug."""
    env = _env(tmp_path)
    out = tmp_path / "t5"
    result = subprocess.run(
        [REFLEX, "export", "tiny-smolvla", "-o", str(out), "--json", "-q",
         "--model-option", "vision_patch_positions=transformers-5"],
        capture_output=True, text=True, env=env, timeout=1500,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout)["parity"]["passed"] is True
    provenance = json.loads((out / "reflex_config.json").read_text())["model"]["provenance"]
    assert provenance["vision_patch_positions"] == "transformers-5"
    assert provenance["vision_patch_positions_source"] == "model-option"
    assert provenance["model_options"] == {"vision_patch_positions": "transformers-5"}
    doctor = subprocess.run(
        [REFLEX, "doctor", str(out)], capture_output=True, text=True, env=env, timeout=300
    )
    assert "vision_patch_positions" in doctor.stdout + doctor.stderr

    bad = subprocess.run(
        [REFLEX, "export", "tiny-smolvla", "-o", str(tmp_path / "bad"), "-q",
         "--model-option", "vision_patch_positions=transformers-4"],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert bad.returncode != 0
    assert "model-option-invalid" in bad.stderr and "transformers-4.57" in bad.stderr
    assert not (tmp_path / "bad").exists()
