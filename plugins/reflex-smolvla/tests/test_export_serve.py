"""tiny-smolvla through the core, as a user runs it: ``reflex export`` in both modes (parity gate
included) and ``reflex serve`` answering one observation, with no SmolVLA code in the core."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from reflex_core.models import family_testing as kit

pytestmark = pytest.mark.slow

REFLEX = kit.reflex_command()


def _env(root: Path) -> dict[str, str]:
    return {**os.environ, "REFLEX_CACHE_DIR": str(root / "cache"), "OMP_NUM_THREADS": "1"}


def test_tiny_smolvla_exports_both_modes_and_serves(tmp_path: Path) -> None:
    env = _env(tmp_path)
    outputs = kit.export_both_modes("tiny-smolvla", tmp_path, env=env)
    manifest = kit.read_manifest(outputs["decomposed"])
    assert manifest["model"]["family"] == "smolvla"
    image = manifest["preprocessing"]["image"]
    assert image["pad_position"] == "bottom_right" and image["pad_value"] == 0.0
    assert image["cameras"] == ["front", "wrist"]
    assert manifest["preprocessing"]["prompt"]["task_suffix"] == "\n"
    assert kit.graph_inputs(manifest, "vlm_prefix")[-1] == "state"
    step_inputs = kit.graph_inputs(manifest, "expert_denoise")
    assert step_inputs[:3] == ["x_t", "t", "prefix_mask"] and "state" not in step_inputs

    # A non-square frame (padded on the left/top) and no wrist camera (masked).
    frame = np.random.default_rng(3).integers(0, 256, (24, 40, 3), dtype=np.uint8)
    body = {
        "state": [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02],
        "images": {"front": kit.png_base64(frame)},
        "prompt": "pick up the red cube",
        "noise_seed": 7,
    }
    chunks = kit.act_on_each(outputs, body, env=env, log_dir=tmp_path)
    kit.assert_same_chunk(chunks, shape=(10, 8))


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
