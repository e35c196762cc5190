"""``reflex export --mode monolithic --unrolled``: the N-step loop traced from torch (N copies of
the step) instead of joined with an ONNX ``Loop``; the gate and the runtime treat it like the
Loop graph."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest

from tests.conftest_artifacts import load_tiny_checkpoint
from tests.test_export import _observations

pytestmark = pytest.mark.slow


def test_an_unrolled_monolithic_export_passes_the_gate_and_agrees_with_the_loop_graph(
    tmp_path: Path,
) -> None:
    import onnx

    from reflex_core.artifact import Artifact
    from reflex_core.export.parity import ParitySettings
    from reflex_core.export.pipeline import ExportRequest, export_artifact
    from reflex_core.export.progress import Progress
    from reflex_core.runtime import load_policy

    steps = 3
    outputs: dict[str, Path] = {}
    for loop in ("unrolled", "loop"):
        log = io.StringIO()
        outputs[loop] = tmp_path / loop
        request = ExportRequest(
            source="tiny-pi05",
            output=outputs[loop],
            mode="monolithic",
            num_steps=steps,
            monolithic_loop=loop,
            parity=ParitySettings(cases=2, threads=1),
        )
        export_artifact(
            request, progress=Progress(log, live=False), policy=load_tiny_checkpoint("tiny-pi05")
        )
        if loop == "unrolled":
            assert f"exporting policy.onnx (unrolled, {steps} steps)" in log.getvalue()

    unrolled = Artifact.load(outputs["unrolled"], verify=True)
    assert unrolled.parity_report()["passed"] is True
    graph = onnx.load(str(outputs["unrolled"] / "policy.onnx"), load_external_data=False).graph
    assert not any(node.op_type == "Loop" for node in graph.node)

    a, b = (load_policy(outputs[loop], threads=1) for loop in ("unrolled", "loop"))
    obs = _observations(a.artifact, batch=1, seed=3)
    noise = np.random.default_rng(4).standard_normal((1, a.chunk_size, a.max_action_dim), dtype=np.float32)
    np.testing.assert_allclose(a.infer(obs, noise).actions, b.infer(obs, noise).actions, atol=1e-4)

