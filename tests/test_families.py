"""The model-family seam end to end: a third-party family, installed with pip, exports and serves
with no change to the core (issue: model families as real plugins)."""

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
FIXTURE = Path(__file__).parent / "fixtures" / "reflex-toyfamily"


@pytest.fixture(scope="module")
def toy_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("toyfamily")
    target = root / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps",
         "--no-build-isolation", "--target", str(target), str(FIXTURE)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    return {
        **os.environ,
        "PYTHONPATH": str(target),
        "REFLEX_CACHE_DIR": str(root / "cache"),
        "OMP_NUM_THREADS": "1",
    }


def _reflex(*argv: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([REFLEX, *argv], capture_output=True, text=True, env=env, timeout=600)


def _png(height: int, width: int, value: int) -> str:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(np.full((height, width, 3), value, np.uint8)).save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def test_a_third_party_family_exports_and_serves_without_core_changes(
    toy_env: dict[str, str], tmp_path: Path
) -> None:
    listed = _reflex("plugins", "--json", env=toy_env)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins["toyfamily"]["registers"] == ["model_loaders:toyvla"]

    outputs = {}
    for mode in ("decomposed", "monolithic"):
        out = tmp_path / mode
        result = _reflex(
            "export", "tiny-toy", "-o", str(out), "--mode", mode, "--embodiment", "franka",
            "--json", "-q", env=toy_env,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["parity"]["passed"] is True
        outputs[mode] = out
    manifest = json.loads((outputs["decomposed"] / "reflex_config.json").read_text())
    assert manifest["model"]["family"] == "toyvla"
    assert manifest["preprocessing"]["flow"] == {"t_start": 0.0, "t_end": 1.0}
    assert manifest["preprocessing"]["image"]["pad_position"] == "bottom_right"
    graphs = manifest["graphs"]
    assert [i["name"] for i in graphs["vlm_prefix"]["inputs"]][-1] == "state"
    assert [i["name"] for i in graphs["expert_denoise"]["inputs"]] == ["x_t", "t", "context"]

    body = {
        "state": [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02],
        "images": {"front": _png(6, 10, 200)},
        "prompt": "pick up the cube",
        "noise_seed": 7,
    }
    chunks = {}
    for mode, out in outputs.items():
        argv = [REFLEX, "serve", str(out), "--embodiment", "franka"]
        with server_process(argv, log_path=tmp_path / f"{mode}.log", env=toy_env) as base:
            health = httpx.get(base + "/health", timeout=10).json()
            assert health["status"] == "ready"
            reply = httpx.post(base + "/act", json=body, timeout=30)
            assert reply.status_code == 200, reply.text
            chunks[mode] = np.asarray(reply.json()["actions"])
    assert chunks["decomposed"].shape == (4, 8)
    np.testing.assert_allclose(chunks["decomposed"], chunks["monolithic"], atol=1e-5)


def test_without_the_plugin_the_family_is_unknown(toy_env: dict[str, str], tmp_path: Path) -> None:
    cache = Path(toy_env["REFLEX_CACHE_DIR"]) / "checkpoints"
    written = _reflex("export", "tiny-toy", "-o", str(tmp_path / "a"), "-q", env=toy_env)
    assert written.returncode == 0, written.stderr
    (checkpoint,) = [p for p in cache.iterdir() if p.name.startswith("tiny-toy-")]
    bare = {k: v for k, v in toy_env.items() if k != "PYTHONPATH"}
    result = _reflex("export", str(checkpoint), "-o", str(tmp_path / "b"), "-q", env=bare)
    assert result.returncode != 0
    assert "model-family-unknown" in result.stderr and "'toyvla'" in result.stderr
