"""``reflex demo --model tiny-groot``: the built-in GR00T exported with the franka embodiment
(parity gate), served by a real ``reflex serve`` with the installed wedges, driving the MuJoCo
Panda through the SDK and the control loop, with no process left behind."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REFLEX = str(Path(sys.executable).with_name("reflex"))


def test_demo_runs_tiny_groot(tmp_path: Path) -> None:
    keep, report_path = tmp_path / "demo", tmp_path / "report.json"
    env = {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        "REFLEX_CACHE_DIR": str(tmp_path / "cache"),  # the built-in is written afresh
    }
    result = subprocess.run(
        [REFLEX, "demo", "--model", "tiny-groot", "--steps", "40", "--keep", str(keep),
         "--report-json", str(report_path)],
        capture_output=True, text=True, timeout=1200, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    report = json.loads(report_path.read_text())

    assert report["model"] == "tiny-groot"
    parity = report["parity"]
    assert parity["passed"] and parity["end_to_end_max_abs"] <= parity["max_abs_threshold"]
    manifest = json.loads((keep / "artifact" / "reflex_config.json").read_text())
    assert manifest["model"]["family"] == "groot"
    assert manifest["embodiment"]["name"] == "franka"

    loop = report["loop"]
    assert loop["steps"] == 40 and loop["stop_reason"] == "max_steps" and loop["error"] is None
    assert loop["chunks_received"] >= 2
    assert sum(loop["guard_verdicts"].values()) == loop["chunks_received"]
    assert report["arm"]["clipped"] == 0, "guarded chunks never command beyond the limits"
    assert report["server"]["exit_code"] == 0 and report["server"]["gone"]
    assert "tiny-groot" in result.stdout and "parity PASSED" in result.stdout
