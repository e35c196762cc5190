"""The installed distribution: its entry point registers the wedge and ``reflex a2c2``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from reflex_a2c2.head import load_head

from reflex_core.plugin import Stage
from reflex_core.plugin.kit.jsonl import JsonlWriter
from reflex_core.plugin.testing import installed_plugin


def test_entry_point_registers_the_wedge_and_the_command() -> None:
    pm = installed_plugin("a2c2", "reflex-a2c2", "reflex_a2c2")
    assert pm.registry.wedges["a2c2"].stage == Stage.CORRECTION
    assert pm.registry.owner("commands", "a2c2") == "a2c2"
    flags = {o.flag for o in pm.registry.wedges["a2c2"].options}
    assert {"--a2c2-head", "--a2c2-latency-threshold-ms", "--a2c2-max-norm"} <= flags


def _reflex(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REFLEX_LOAD_PLUGINS": "a2c2", "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [sys.executable, "-m", "reflex_core.cli", *args],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip


def test_reflex_a2c2_train_and_eval_from_the_command_line(
    tmp_path: Path, make_delayed_chunks: Callable[..., list[dict[str, Any]]]
) -> None:
    train_path, held_path = tmp_path / "train.jsonl", tmp_path / "held.jsonl"
    with JsonlWriter(train_path, durable=False) as writer:
        writer.write_many(make_delayed_chunks(400, seed=0))
    with open(train_path, "ab") as f:
        f.write(b'{"features": [0.1')  # a torn last line, as a crash would leave
    with JsonlWriter(held_path, durable=False) as writer:
        writer.write_many(make_delayed_chunks(150, seed=7))

    out = tmp_path / "head.npz"
    done = _reflex("a2c2", "train", "--data", str(train_path), "-o", str(out), "--epochs", "25",
                   "--onnx-out", str(tmp_path / "head.onnx"), "--json")  # fmt: skip
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert "skipped torn line" in done.stderr
    assert report["chunks"] == 400
    assert report["error_after"] < 0.5 * report["error_before"]
    assert load_head(out).feature_dim == 8

    for head in (out, tmp_path / "head.onnx"):
        done = _reflex("a2c2", "eval", "--data", str(held_path), "--head", str(head), "--json")
        assert done.returncode == 0, done.stderr
        evaluation = json.loads(done.stdout.strip().splitlines()[-1])
        assert evaluation["error_after"] < 0.5 * evaluation["error_before"]


def test_bad_training_data_is_a_clean_error(tmp_path: Path) -> None:
    data = tmp_path / "bad.jsonl"
    data.write_text('{"features": [1.0], "latency_ms": 3}\n')
    done = _reflex("a2c2", "train", "--data", str(data), "-o", str(tmp_path / "h.npz"))
    assert done.returncode == 1
    assert "a2c2-data-invalid" in done.stderr and "Traceback" not in done.stderr
