"""The model-family seam end to end: a third-party family, installed with pip, exports and serves
with no change to the core (issue: model families as real plugins)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from reflex_core.models import family_testing as kit

pytestmark = pytest.mark.slow

REFLEX = kit.reflex_command()
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


def test_a_third_party_family_exports_and_serves_without_core_changes(
    toy_env: dict[str, str], tmp_path: Path
) -> None:
    listed = _reflex("plugins", "--json", env=toy_env)
    assert listed.returncode == 0, listed.stderr
    plugins = {p["name"]: p for p in json.loads(listed.stdout)["plugins"]}
    assert plugins["toyfamily"]["registers"] == ["model_loaders:toyvla"]

    outputs = kit.export_both_modes("tiny-toy", tmp_path, env=toy_env, timeout=600)
    manifest = kit.read_manifest(outputs["decomposed"])
    assert manifest["model"]["family"] == "toyvla"
    assert manifest["preprocessing"]["flow"] == {"t_start": 0.0, "t_end": 1.0}
    assert manifest["preprocessing"]["image"]["pad_position"] == "bottom_right"
    assert kit.graph_inputs(manifest, "vlm_prefix")[-1] == "state"
    assert kit.graph_inputs(manifest, "expert_denoise") == ["x_t", "t", "context"]

    body = {
        "state": [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02],
        "images": {"front": kit.png_base64(np.full((6, 10, 3), 200))},
        "prompt": "pick up the cube",
        "noise_seed": 7,
    }
    chunks = kit.act_on_each(outputs, body, env=toy_env, log_dir=tmp_path)
    kit.assert_same_chunk(chunks, shape=(4, 8), atol=1e-5)


def test_without_the_plugin_the_family_is_unknown(toy_env: dict[str, str], tmp_path: Path) -> None:
    cache = Path(toy_env["REFLEX_CACHE_DIR"]) / "checkpoints"
    written = _reflex("export", "tiny-toy", "-o", str(tmp_path / "a"), "-q", env=toy_env)
    assert written.returncode == 0, written.stderr
    (checkpoint,) = [p for p in cache.iterdir() if p.name.startswith("tiny-toy-")]
    bare = {k: v for k, v in toy_env.items() if k != "PYTHONPATH"}
    result = _reflex("export", str(checkpoint), "-o", str(tmp_path / "b"), "-q", env=bare)
    assert result.returncode != 0
    assert "model-family-unknown" in result.stderr and "'toyvla'" in result.stderr
