"""The installed distribution: its entry point, its wedge spec and its `reflex guard` command."""

from __future__ import annotations

import json
from pathlib import Path

import attrs
import pytest

from reflex_core.cli import main
from reflex_core.plugin import Stage
from reflex_core.plugin.kit.jsonl import JsonlWriter
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.testing import installed_plugin


def test_installed_and_registers_the_wedge_and_command() -> None:
    pm = installed_plugin("actionguard", "reflex-actionguard", "reflex_actionguard")
    spec = pm.registry.wedges["actionguard"]
    assert spec.stage == Stage.GUARD
    assert pm.registry.owner("wedges", "actionguard") == "actionguard"
    flags = {o.flag for o in spec.options}
    assert {"--guard", "--guard-urdf", "--guard-audit-log", "--guard-trip-after"} <= flags
    assert {f.name for f in attrs.fields(spec.config_cls)} == {o.dest for o in spec.options}
    assert "guard" in pm.registry.commands


def test_options_resolve_from_a_config_file_section() -> None:
    from reflex_core.plugin.options import resolve_options
    from reflex_core.plugin.registry import structure_config

    pm = make_plugin_manager(env={"REFLEX_LOAD_PLUGINS": "actionguard"})
    spec = pm.registry.wedges["actionguard"]
    values = resolve_options(
        spec.options,
        {"guard_trip_after": 2},
        {"guard": "reject", "guard-joint-names": ["a", "b"], "guard-trip-after": 9},
        owner="actionguard",
    )
    config = structure_config(spec, values)
    assert config.guard == "reject" and config.guard_trip_after == 2  # CLI wins
    assert config.guard_joint_names == ["a", "b"]
    assert config.guard_audit_max_bytes == 64 * 1024 * 1024
    assert spec.is_enabled(config)
    assert not spec.is_enabled(structure_config(spec, {}))


def write_log(path: Path) -> None:
    with JsonlWriter(path, max_bytes=200) as w:
        w.write(
            {
                "event": "decision",
                "ts": "2024-01-01T00:00:00.000+00:00",
                "verdict": "pass",
                "violations": [],
            }
        )
        w.write(
            {
                "event": "decision",
                "verdict": "clamped",
                "violations": [
                    {"kind": "position", "joint": "panda_joint2", "steps": 3, "first_step": 2},
                    {"kind": "velocity", "joint": "panda_joint2", "steps": 1, "first_step": 0},
                ],
            }
        )
        w.write(
            {
                "event": "decision",
                "verdict": "rejected",
                "violations": [
                    {"kind": "non-finite", "joint": "panda_joint3", "steps": 1, "first_step": 3}
                ],
            }
        )
        w.write({"event": "trip", "consecutive": 2})
        w.write({"event": "refused", "reason": "tripped"})
    with open(path, "ab") as f:
        f.write(b'{"event":"decision","verd')  # torn by a crash


def test_reflex_guard_audit_summarizes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "guard.jsonl"
    write_log(log)
    assert main(["guard", "audit", str(log)]) == 0
    out = capsys.readouterr().out
    assert "5 record(s)" in out
    assert "pass 1, clamped 1, rejected 1, refused 1" in out
    assert "panda_joint2  1 chunk(s); position 3, velocity 1" in out
    assert "panda_joint3" in out and "non-finite 1" in out
    assert "trip 1" in out
    assert "1 torn" in out


def test_reflex_guard_audit_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "guard.jsonl"
    write_log(log)
    assert main(["guard", "audit", str(log), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["verdicts"] == {"pass": 1, "clamped": 1, "rejected": 1, "refused": 1}
    assert report["violations_by_joint"]["panda_joint2"] == {
        "chunks": 1,
        "steps_by_kind": {"position": 3, "velocity": 1},
    }
    assert [b["reason"] for b in report["skipped_lines"]] == ["torn"]
    assert len(report["files"]) >= 2  # the small max_bytes rotated it


def test_reflex_guard_audit_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["guard", "audit", str(tmp_path / "none.jsonl")]) == 1
    assert "guard-audit-missing" in capsys.readouterr().err
