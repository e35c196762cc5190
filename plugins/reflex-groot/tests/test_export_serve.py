"""tiny-groot through the core's seam: ``reflex export`` in both modes (parity gate) and
``reflex serve`` answering /act with the same chunk from both artifacts."""

from __future__ import annotations

import base64
import io
import json
import subprocess
import sys
from pathlib import Path

import httpx
import numpy as np

from reflex_core.plugin.testing import server_process

REFLEX = str(Path(sys.executable).with_name("reflex"))


def _png(value: int) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((28, 28, 3), value, np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_tiny_groot_exports_in_both_modes_and_serves(tmp_path: Path) -> None:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "REFLEX_CACHE_DIR": str(tmp_path / "c")}
    outputs = {}
    for mode in ("decomposed", "monolithic"):
        out = tmp_path / mode
        result = subprocess.run(
            [REFLEX, "export", "tiny-groot", "-o", str(out), "--mode", mode,
             "--embodiment", "franka", "--json", "-q"],
            capture_output=True, text=True, env=env, timeout=900, check=False,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr[-3000:]
        report = json.loads(result.stdout)
        assert report["parity"]["passed"] is True
        outputs[mode] = out
    manifest = json.loads((outputs["decomposed"] / "reflex_config.json").read_text())
    assert manifest["model"]["family"] == "groot"
    assert manifest["preprocessing"]["flow"] == {"t_start": 0.0, "t_end": 1.0}
    step_inputs = [i["name"] for i in manifest["graphs"]["expert_denoise"]["inputs"]]
    assert step_inputs == ["x_t", "t", "backbone_features", "backbone_mask", "state_features"]

    body = {
        "state": [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02],
        "images": {"front": _png(90), "wrist": _png(200)},
        "prompt": "pick up the cube",
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
    assert chunks["decomposed"].shape == (16, 8)
    assert np.isfinite(chunks["decomposed"]).all()
    np.testing.assert_allclose(chunks["decomposed"], chunks["monolithic"], atol=1e-4)
