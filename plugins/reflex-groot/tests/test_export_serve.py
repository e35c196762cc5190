"""tiny-groot through the core's seam: ``reflex export`` in both modes (parity gate) and
``reflex serve`` answering /act with the same chunk from both artifacts."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from reflex_core.models import family_testing as kit


def test_tiny_groot_exports_in_both_modes_and_serves(tmp_path: Path) -> None:
    env = {"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin", "REFLEX_CACHE_DIR": str(tmp_path / "c")}
    outputs = kit.export_both_modes("tiny-groot", tmp_path, env=env, timeout=900)
    manifest = kit.read_manifest(outputs["decomposed"])
    assert manifest["model"]["family"] == "groot"
    assert manifest["preprocessing"]["flow"] == {"t_start": 0.0, "t_end": 1.0}
    assert kit.graph_inputs(manifest, "expert_denoise") == [
        "x_t", "t", "backbone_features", "backbone_mask", "state_features"
    ]  # fmt: skip

    body = {
        "state": [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02],
        "images": {
            "front": kit.png_base64(np.full((28, 28, 3), 90)),
            "wrist": kit.png_base64(np.full((28, 28, 3), 200)),
        },
        "prompt": "pick up the cube",
        "noise_seed": 7,
    }
    chunks = kit.act_on_each(outputs, body, env=env, log_dir=tmp_path)
    kit.assert_same_chunk(chunks, shape=(16, 8))
