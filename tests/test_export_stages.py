"""``reflex export --isolate``: the torch stages in fresh processes (reflex_core.export.stages).

The memory this saves is measured by ``benchmarks/export_memory.py`` at real size; here: the
isolated export writes the same graphs and the same gate verdict as the in-process one, a stage's
error keeps its slug, and ``auto`` decides by the checkpoint's weight bytes.
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

import pytest

from reflex_core.errors import ConfigError, ReflexError
from reflex_core.export.parity import ParitySettings
from reflex_core.export.pipeline import ExportRequest, _isolated, export_artifact
from reflex_core.export.progress import Progress
from reflex_core.export.stages import AUTO_ISOLATE_BYTES, release_large_blocks, run_stage


def _sparse_checkpoint(directory: Path, size: int) -> Path:
    directory.mkdir()
    (directory / "config.json").write_text("{}")
    with open(directory / "model.safetensors", "wb") as f:
        f.truncate(size)  # sparse: no disk is used
    return directory


def test_auto_isolates_checkpoints_from_one_gib_of_weights(tmp_path: Path) -> None:
    big = _sparse_checkpoint(tmp_path / "big", AUTO_ISOLATE_BYTES)
    small = _sparse_checkpoint(tmp_path / "small", AUTO_ISOLATE_BYTES - 1)
    out = tmp_path / "o"
    assert _isolated(ExportRequest(str(big), out), None, None) is True
    assert _isolated(ExportRequest(str(small), out), None, None) is False
    assert _isolated(ExportRequest(str(small), out, isolate="process"), None, None) is True
    assert _isolated(ExportRequest(str(big), out, isolate="inprocess"), None, None) is False
    # a policy already loaded here stays here
    assert _isolated(ExportRequest(str(big), out), None, object()) is False


def test_process_isolation_refuses_an_already_loaded_policy(tmp_path: Path) -> None:
    request = ExportRequest("tiny-pi05", tmp_path / "o", isolate="process")
    with pytest.raises(ConfigError) as exc:
        export_artifact(request, policy=object())
    assert exc.value.slug == "export-isolation-unsupported"
    assert not (tmp_path / "o").exists()


def test_an_unknown_isolation_mode_is_refused_before_loading(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as exc:
        export_artifact(ExportRequest("tiny-pi05", tmp_path / "o", isolate="threads"))
    assert exc.value.field == "isolate"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_a_stage_process_returns_freed_large_blocks_to_the_system() -> None:
    """The stages set glibc's mmap threshold (fixed, so torch's freed activations are unmapped
    rather than kept in the heap): glibc must accept it here."""
    assert release_large_blocks() is True


def test_a_stage_that_fails_unexpectedly_is_a_slugged_error(tmp_path: Path) -> None:
    with pytest.raises(ReflexError) as exc:
        run_stage("no-such-stage", {}, tmp_path)
    assert exc.value.slug == "export-stage-failed"
    assert exc.value.details == {"stage": "no-such-stage"}
    assert list(tmp_path.iterdir()) == []  # job and result pickles are cleaned up


@pytest.mark.slow
def test_a_stage_error_keeps_its_slug_across_the_process(tmp_path: Path) -> None:
    from reflex_core.embodiments import EmbodimentConfig

    request = ExportRequest(
        "tiny-pi05",
        tmp_path / "o",
        embodiment=EmbodimentConfig.load_preset("so100"),
        isolate="process",
    )
    with pytest.raises(ConfigError) as exc:
        export_artifact(request)
    assert exc.value.slug == "embodiment-mismatch"
    assert "action_dim 6" in exc.value.message
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # nothing left behind


def _verdict(report: dict[str, Any]) -> dict[str, Any]:
    """The report without what differs between two runs of the same gate (timings, source)."""
    return {k: report[k] for k in ("passed", "graphs", "end_to_end", "worst", "seeds", "cases")}


@pytest.mark.slow
def test_the_isolated_export_writes_what_the_in_process_one_writes(
    tmp_path: Path, tiny_pi05_decomposed: Path
) -> None:
    """The same graphs and the same gate figures to the last bit: only where the work ran
    differs. (The ONNX bytes themselves are not compared: two exports of one module in two
    processes may name nodes differently.)"""
    import json

    log = io.StringIO()
    request = ExportRequest(
        "tiny-pi05",
        tmp_path / "isolated",
        parity=ParitySettings(cases=3, threads=1),
        isolate="process",
    )
    result = export_artifact(request, progress=Progress(log, live=False))
    assert result.report["passed"]
    assert all(g.reference is None for g in result.graphs)
    text = log.getvalue()
    assert text.count("loading tiny-pi05") >= 2  # once per stage process, forwarded here
    assert "parity: torch references on 3 cases" in text
    in_process = json.loads((tiny_pi05_decomposed / "parity_report.json").read_text())
    assert _verdict(result.report) == _verdict(in_process)
    isolated = json.loads((tmp_path / "isolated" / "reflex_config.json").read_text())
    reference = json.loads((tiny_pi05_decomposed / "reflex_config.json").read_text())
    for name, graph in reference["graphs"].items():
        assert isolated["graphs"][name]["inputs"] == graph["inputs"]
        assert isolated["graphs"][name]["outputs"] == graph["outputs"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["isolated"]
