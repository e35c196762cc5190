"""The audit log is on by default with the guard: under the state directory, rotated by size,
read across its files by ``reflex guard audit`` (with or without a path), one writer per log,
and every record carries the observation's own ``request_id``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import attrs
import numpy as np
import pytest
from reflex_actionguard import cli
from reflex_actionguard.state import default_audit_log, state_dir

from reflex_core.errors import ConfigError
from reflex_core.plugin.kit.jsonl import read_jsonl, rotated_files
from reflex_core.plugin.testing import asgi_client, make_request, serve_lifespan

from .conftest import HOME, ScriptedPolicy
from .test_app import STATE, make_app


def audit_cli(path: Path | None, capsys: pytest.CaptureFixture[str]) -> dict:
    assert cli.run(argparse.Namespace(action="audit", path=path, json=True), None) == 0
    return json.loads(capsys.readouterr().out)


def test_the_state_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("REFLEX_STATE_DIR", str(tmp_path / "s"))
    assert default_audit_log() == tmp_path / "s" / "guard" / "audit.jsonl"
    monkeypatch.delenv("REFLEX_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    assert state_dir() == tmp_path / "xdg" / "reflex"
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert state_dir() == tmp_path / "home" / ".local" / "state" / "reflex"


def test_the_guard_audits_by_default_with_rotation_read_across(
    build_guard, embodiment, run, capsys: pytest.CaptureFixture[str]
) -> None:
    guard, _ = build_guard(
        {"guard": "clamp", "guard_audit_max_bytes": 600}, ScriptedPolicy(), embodiment=embodiment
    )
    path = default_audit_log()  # the state directory this guard was built with
    for i in range(6):
        run(guard(make_request(HOME, request_id=f"r-{i}")))
    assert path.is_file() and rotated_files(path)  # rotated by size
    scan = read_jsonl(path)
    assert [r["request_id"] for r in scan.records] == [f"r-{i}" for i in range(6)]
    summary = audit_cli(None, capsys)  # no path: the default log, all its files
    assert summary["records"] == 6 and len(summary["files"]) == len(rotated_files(path)) + 1
    assert summary["verdicts"] == {"pass": 6}
    run(guard.aclose())


def test_the_audit_log_can_be_switched_off_explicitly(build_guard, embodiment, run) -> None:
    guard, _ = build_guard(
        {"guard": "clamp", "guard_no_audit_log": True}, ScriptedPolicy(), embodiment=embodiment
    )
    run(guard(make_request(HOME)))
    assert not default_audit_log().exists()
    assert guard.status()["audit_log"] is None
    with pytest.raises(ConfigError) as exc:
        build_guard(
            {"guard": "clamp", "guard_no_audit_log": True, "guard_audit_log": "x.jsonl"},
            ScriptedPolicy(),
            embodiment=embodiment,
        )
    assert exc.value.slug == "guard-audit-conflict"


def test_one_writer_per_audit_log(build_guard, embodiment, run, tmp_path: Path) -> None:
    log = tmp_path / "shared.jsonl"
    first, _ = build_guard(
        {"guard": "clamp", "guard_audit_log": str(log)}, ScriptedPolicy(), embodiment=embodiment
    )
    with pytest.raises(ConfigError) as exc:
        build_guard(
            {"guard": "clamp", "guard_audit_log": str(log)}, ScriptedPolicy(), embodiment=embodiment
        )
    assert exc.value.slug == "guard-audit-busy" and "--guard-audit-log" in exc.value.message
    run(first.aclose())  # shutdown releases it
    second, _ = build_guard(
        {"guard": "clamp", "guard_audit_log": str(log)}, ScriptedPolicy(), embodiment=embodiment
    )
    run(second.aclose())


def test_records_carry_the_observations_own_request_id(build_guard, embodiment, run) -> None:
    bad = np.tile(HOME[:8], (5, 1))
    bad[0, 3] = 0.5  # past panda_joint4's limit: a violation, so last_violations has it too
    guard, _ = build_guard({"guard": "clamp"}, ScriptedPolicy(bad), embodiment=embodiment)
    request = make_request(HOME, request_id="server-7")
    request = attrs.evolve(
        request, observation=attrs.evolve(request.observation, request_id="client-key-42")
    )
    run(guard(request))
    (record,) = read_jsonl(default_audit_log()).records
    assert record["request_id"] == "server-7"
    assert record["observation_request_id"] == "client-key-42"
    assert guard.status()["last_violations"][0]["observation_request_id"] == "client-key-42"


@pytest.mark.anyio
async def test_the_served_observations_request_id_reaches_the_audit_log(
    anyio_backend: str,
) -> None:
    app = make_app({"actionguard": {"guard": "clamp"}})
    async with serve_lifespan(app), asgi_client(app) as client:
        r = await client.post(
            "/act",
            json={"state": STATE, "request_id": "obs-key-1"},
            headers={"X-Request-ID": "hdr-1"},
        )
        assert r.status_code == 200, r.text
    (record,) = read_jsonl(default_audit_log()).records
    assert record["observation_request_id"] == "obs-key-1"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"
