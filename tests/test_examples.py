"""Every example under examples/ runs against a real ``reflex serve`` of the tiny pi0.5:
the SDK loop, the shell scripts driven by ``reflex connect``, and the third-party wedge installed
with pip next to an unchanged core."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from reflex_core.plugin.testing import server_process

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
REFLEX = str(Path(sys.executable).with_name("reflex"))
PY = sys.executable

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def artifact(export_artifact_dir: Any) -> Path:
    return export_artifact_dir("tiny-pi05", "decomposed")


@contextlib.contextmanager
def reflex_serve(
    artifact: Path, log: Path, *flags: str, env: dict[str, str] | None = None
) -> Iterator[str]:
    """``reflex serve`` of the tiny artifact as the franka on 127.0.0.1 until the block ends;
    it must then exit cleanly on SIGTERM."""
    argv = [REFLEX, "serve", str(artifact), "--embodiment", "franka", *flags]
    with server_process(argv, log_path=log, env=env, timeout_s=120) as base:
        yield base


@pytest.fixture(scope="module")
def server(artifact: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    log = tmp_path_factory.mktemp("examples-server") / "server.log"
    with reflex_serve(artifact, log, "--guard", "clamp", "--guard-trip-after", "0") as base:
        yield base


@pytest.mark.parametrize("plain", [False, True])
def test_sdk_loop(server: str, plain: bool) -> None:
    argv = [
        PY,
        str(EXAMPLES / "sdk_loop.py"),
        "--server",
        server,
        "--steps",
        "30",
        "--rate-hz",
        "30",
    ]
    result = subprocess.run(
        [*argv, *(["--plain"] if plain else [])], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["actions_executed"] >= 20 and summary["chunks_received"] >= 2
    assert summary["latency_ms"]["p50"] > 0


def _connect_argv(server: str, state: Path, out: Path, act: str) -> list[str]:
    shell = EXAMPLES / "shell"
    return [
        REFLEX,
        "connect",
        "--server",
        server,
        "--observe-command",
        f"{PY} {shell / 'observe.py'} --state-file {state} --rate-hz 30",
        "--act-command",
        act,
        "--safe-stop-command",
        f"{PY} {shell / 'safe_stop.py'} --state-file {state} --out {out}",
        "--embodiment",
        "franka",
        "--rate-hz",
        "10",
        "--command-timeout-s",
        "5",
        "--max-steps",
        "6",
    ]


def test_shell_scripts_with_reflex_connect(server: str, tmp_path: Path) -> None:
    state, out = tmp_path / "arm.json", tmp_path / "safe_stop.json"
    act = f"{PY} {EXAMPLES / 'shell' / 'act.py'} --state-file {state}"
    result = subprocess.run(
        _connect_argv(server, state, out, act), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    arm = json.loads(state.read_text())
    assert arm["steps"] == 6, "act.py applied one action per control step"
    assert not out.exists(), "a normal run does not safe-stop"

    # the act command failing: safe_stop.py records the frame and holds the arm
    broken = f"{PY} {EXAMPLES / 'shell' / 'act.py'} --state-file {tmp_path / 'missing' / 'x.json'}"
    result = subprocess.run(
        _connect_argv(server, state, out, broken), capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 1, result.stderr
    frame = json.loads(out.read_text())
    assert frame["reason"] == "act_failed" and frame["session_id"].startswith("session_")
    held = json.loads(state.read_text())
    assert held["target"] == held["q"]


def test_robot_toml_example_is_a_valid_connect_config() -> None:
    from reflex_core.robot.connect.config import read_config_file, resolve_connect_config

    config = resolve_connect_config({}, read_config_file(EXAMPLES / "shell" / "robot.toml"), env={})
    assert config.embodiment == "franka" and config.act_command[1] == "examples/shell/act.py"


def test_third_party_wedge_installs_with_pip_and_runs(artifact: Path, tmp_path: Path) -> None:
    target = tmp_path / "site"
    install = subprocess.run(
        [PY, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLES / "third_party_wedge")],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr
    env = {"PYTHONPATH": str(target)}

    def serve_help(extra_env: dict[str, str]) -> str:
        result = subprocess.run(
            [REFLEX, "serve", "--help"], capture_output=True, text=True,
            env={**os.environ, **extra_env}, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        return result.stdout

    assert "--smooth-alpha" in serve_help(env)
    assert "--smooth-alpha" not in serve_help({}), "the core itself does not know the wedge"

    with reflex_serve(
        artifact, tmp_path / "server.log", "--smooth-alpha", "0.5", "--guard", "clamp",
        "--guard-trip-after", "0", env=env,
    ) as base:  # fmt: skip
        health = httpx.get(base + "/health", timeout=10).json()
        assert health["wedges"] == ["actionguard", "smoothing"]  # stage 10, then 15
        body = {"state": [0.0, 0.0, 0.0, -1.5708, 0.0, 1.8675, 0.0, 0.02], "episode_id": "ep"}
        chunks = [httpx.post(base + "/act", json=body, timeout=30).json() for _ in range(2)]
    for chunk in chunks:
        note = chunk["metadata"]["smoothing"]
        assert note["alpha"] == 0.5 and note["max_change"] > 0
        assert chunk["metadata"]["guard"]["verdict"] in ("pass", "clamped")
    assert [c["metadata"]["smoothing"]["start"] for c in chunks] == ["state", "previous"]
