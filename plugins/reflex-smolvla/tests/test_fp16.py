"""``reflex export tiny-smolvla --precision fp16``: both exporters, the fp16 gate, served."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from reflex_core.models import family_testing as kit

pytestmark = pytest.mark.slow


def test_tiny_smolvla_exports_at_fp16_in_both_modes_and_serves(tmp_path: Path) -> None:
    env = {**os.environ, "REFLEX_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1"}
    outputs = kit.export_both_modes(
        "tiny-smolvla", tmp_path, env=env, args=("--embodiment", "franka", "--precision", "fp16")
    )
    for out in outputs.values():
        manifest = kit.read_manifest(out)
        assert manifest["precision"] == "fp16"
        report = json.loads((out / "parity_report.json").read_text())
        assert report["passed"] and report["precision"] == "fp16"
        # every output judged relative to its scale at fp16 (docs/export.md)
        assert report["thresholds"]["relative_outputs"][0] == "*"
    frame = np.random.default_rng(5).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    body = {
        "state": [0.1, -0.2, 0.0, -1.5, 0.0, 1.8, 0.3, 0.02],
        "images": {"front": kit.png_base64(frame), "wrist": kit.png_base64(frame[::-1])},
        "prompt": "stack the blocks",
        "noise_seed": 11,
    }
    chunks = kit.act_on_each(outputs, body, env=env, log_dir=tmp_path)
    # the two fp16 graphs round differently; in robot units (radians) they agree to ~1e-2
    kit.assert_same_chunk(chunks, shape=(10, 8), atol=5e-2)
