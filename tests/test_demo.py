"""``reflex demo`` end to end: export with the parity gate, a real ``reflex serve`` subprocess
with the installed wedges, the simulated Franka driven through the SDK and the control loop,
the report, and no process left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REFLEX = str(Path(sys.executable).with_name("reflex"))

pytestmark = pytest.mark.slow


def processes_mentioning(text: str) -> list[int]:
    """Live processes whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmdline and int(entry.name) != os.getpid():
            found.append(int(entry.name))
    return found


def run_demo(*args: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REFLEX, "demo", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def test_demo_end_to_end(tmp_path: Path) -> None:
    keep, report_path = tmp_path / "demo", tmp_path / "report.json"
    result = run_demo("--steps", "60", "--keep", str(keep), "--report-json", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())

    parity = report["parity"]
    assert parity["passed"] and parity["end_to_end_max_abs"] <= parity["max_abs_threshold"]
    assert parity["end_to_end_min_cos"] >= parity["min_cos_threshold"]
    assert (keep / "artifact" / "reflex_config.json").is_file()

    loop = report["loop"]
    assert loop["steps"] == 60 and loop["stop_reason"] == "max_steps"
    assert loop["actions_executed"] >= 40  # only the first chunk's wait is idle
    assert loop["chunks_received"] >= 4 and loop["requests_sent"] >= loop["chunks_received"]
    assert loop["latency_ms"]["p50"] > 0 and loop["latency_ms"]["p99"] >= loop["latency_ms"]["p50"]
    # the random-weight model's chunks leave the joint limits: the guard clamps them
    assert loop["guard_verdicts"].get("clamped", 0) >= 1
    assert report["arm"]["clipped"] == 0, "clamped chunks never command beyond the limits"
    assert set(report["server"]["wedges"]) >= {"actionguard", "deadline"}
    assert (keep / "guard-audit.jsonl").stat().st_size > 0

    assert report["server"]["exit_code"] == 0 and report["server"]["gone"]
    assert processes_mentioning(str(keep)) == [], "the demo left a process behind"

    text = result.stdout
    for needle in ("parity PASSED", "latency", "chunks", "guard", "fallbacks", "60 steps"):
        assert needle in text, text
    assert "step 60/60" in result.stderr  # progress went to stderr


def test_demo_on_an_existing_export(export_artifact_dir: Any, tmp_path: Path) -> None:
    artifact = export_artifact_dir("tiny-pi05", "decomposed")
    report_path = tmp_path / "report.json"
    result = run_demo(
        "--artifact", str(artifact), "--steps", "20", "--rate-hz", "30", "--merge", "latest_only",
        "--report-json", str(report_path),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["merge"] == "latest_only" and report["loop"]["frequency_hz"] == 30
    assert report["loop"]["steps"] == 20 and report["loop"]["chunks_received"] >= 2
    assert report["server"]["gone"]


def test_a_directory_that_is_not_an_export_fails_cleanly(tmp_path: Path) -> None:
    not_an_export = tmp_path / "empty"
    not_an_export.mkdir()
    result = run_demo("--artifact", str(not_an_export), "--steps", "5", timeout=120)
    assert result.returncode == 1
    assert "error: [artifact-missing]" in result.stderr and "Traceback" not in result.stderr
    assert processes_mentioning(str(not_an_export)) == []


def test_demo_runs_another_family(tmp_path: Path) -> None:
    report_path = tmp_path / "report.json"
    result = run_demo("--model", "tiny-pi0", "--steps", "20", "--report-json", str(report_path))
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(report_path.read_text())
    assert report["model"] == "tiny-pi0" and report["parity"]["passed"]
    assert report["loop"]["chunks_received"] >= 2 and report["server"]["gone"]
    assert "tiny-pi0" in result.stdout


def test_an_unknown_demo_model_fails_with_its_slug(tmp_path: Path) -> None:
    result = run_demo("--model", "tiny-nothing", "--steps", "5", "--keep", str(tmp_path / "k"))
    assert result.returncode == 1
    assert "checkpoint-not-found" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
