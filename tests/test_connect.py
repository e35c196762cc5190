"""``reflex connect`` as a real subprocess with real observe / act / safe-stop commands against a
real server: a normal run, and every failure ending in exactly one safe stop with its reason."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from reflex_core.errors import ConfigError
from reflex_core.robot.connect import StepFailure, observation_fields, resolve_connect_config

REFLEX = str(Path(sys.executable).with_name("reflex"))
PY = sys.executable


OBSERVE = """
import json, os, sys, time
state_dim = int(sys.argv[1]); hang_after = int(sys.argv[2]); bad_at = int(sys.argv[3])
open(sys.argv[4], "w").write(str(os.getpid()))
i = 0
while True:
    if i == hang_after:
        time.sleep(600)
    if i == bad_at:
        print("{not json", flush=True)
    else:
        print(json.dumps({"state": [0.01 * i] * state_dim, "task": "pick", "seq": i}), flush=True)
    i += 1
    time.sleep(0.02)
"""

ACT = """
import json, sys, time
chunk = json.load(sys.stdin)
with open(sys.argv[1], "a") as fh:
    fh.write(json.dumps({"seq": chunk["seq"], "rows": len(chunk["actions"])}) + "\\n")
calls = sum(1 for _ in open(sys.argv[1]))
if calls == int(sys.argv[2]):
    print("gripper jammed", file=sys.stderr)
    sys.exit(1)
if calls == int(sys.argv[3]):
    time.sleep(30)
"""

SAFE_STOP = """
import sys
frame = sys.stdin.read()
with open(sys.argv[1], "a") as fh:
    fh.write(frame.strip() + "\\n")
"""


class Robot:
    """Writes the three scripts and builds ``reflex connect`` command lines for them."""

    def __init__(self, tmp_path: Path) -> None:
        self.dir = tmp_path
        for name, body in (("observe.py", OBSERVE), ("act.py", ACT), ("safe_stop.py", SAFE_STOP)):
            (tmp_path / name).write_text(textwrap.dedent(body))
        self.acted = tmp_path / "acted.jsonl"
        self.stops = tmp_path / "safe_stops.jsonl"
        self.observer_pid = tmp_path / "observer.pid"

    def argv(
        self,
        server: str,
        *,
        state_dim: int = 8,
        hang_after: int = -1,
        bad_at: int = -1,
        fail_at: int = -1,
        slow_at: int = -1,
        extra: tuple[str, ...] = (),
    ) -> list[str]:
        return [
            REFLEX,
            "connect",
            "--server",
            server,
            "--observe-command",
            f"{PY} {self.dir / 'observe.py'} {state_dim} {hang_after} {bad_at} {self.observer_pid}",
            "--act-command",
            f"{PY} {self.dir / 'act.py'} {self.acted} {fail_at} {slow_at}",
            "--safe-stop-command",
            f"{PY} {self.dir / 'safe_stop.py'} {self.stops}",
            "--command-timeout-s",
            "1.5",
            "--rate-hz",
            "20",
            *extra,
        ]

    def run(self, argv: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(argv, capture_output=True, text=True, timeout=timeout)

    def acts(self) -> list[dict[str, Any]]:
        if not self.acted.exists():
            return []
        return [json.loads(line) for line in self.acted.read_text().splitlines()]

    def safe_stops(self) -> list[dict[str, Any]]:
        if not self.stops.exists():
            return []
        return [json.loads(line) for line in self.stops.read_text().splitlines()]

    def observer_gone(self) -> bool:
        pid = int(self.observer_pid.read_text())
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            time.sleep(0.05)
        return False


@pytest.fixture(scope="module")
def server(servers: Any):
    with servers.ThreadedServer() as running:
        yield running


# --------------------------------------------------------------------------- pure pieces


def test_observation_lines_are_validated_in_full() -> None:
    fields = observation_fields(b'{"state": [1, 2], "task": "pick", "seq": 4}')
    assert fields["prompt"] == "pick" and fields["seq"] == 4 and fields["images"] is None
    for bad in (
        b"{not json",
        b"[1, 2]",
        b'{"state": [1], "promt": "x"}',
        b'{"images": {}}',
        b'{"state": [1], "images": {"front": "!!!"}}',
    ):
        with pytest.raises(StepFailure) as info:
            observation_fields(bad)
        assert info.value.reason == "malformed_observation"


def test_config_needs_server_and_commands_and_reads_toml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        resolve_connect_config({"server": "http://x"}, None, env={})
    assert info.value.slug == "missing-option" and "--observe-command" in info.value.message
    config = resolve_connect_config(
        {"rate_hz": 30.0},
        {
            "server": "http://x",
            "observe-command": "python o.py --fast",
            "act-command": ["a", "b c"],
            "rate-hz": 5,
        },
        env={"REFLEX_API_KEY": "k"},
    )
    assert config.observe_command == ("python", "o.py", "--fast")
    assert config.act_command == ("a", "b c") and config.rate_hz == 30.0 and config.api_key == "k"
    with pytest.raises(ConfigError) as info:
        resolve_connect_config({}, {"server": "http://x", "observe-comand": "o"}, env={})
    assert info.value.slug == "unknown-config-key"


# ------------------------------------------------------------------------ real sessions


@pytest.mark.slow
def test_a_normal_run_acts_every_step_and_never_safe_stops(server, tmp_path: Path) -> None:
    robot = Robot(tmp_path)
    toml = tmp_path / "robot.toml"
    argv = robot.argv(server.base, extra=("--max-steps", "6"))
    # the server and the step count come from the config file, the rest from flags
    toml.write_text(f'[connect]\nserver = "{server.base}"\nmax-steps = 6\n')
    argv = [a for a in argv if a not in ("--server", server.base, "--max-steps", "6")]
    result = robot.run([*argv, "--config", str(toml)])
    assert result.returncode == 0, result.stderr
    acts = robot.acts()
    assert len(acts) == 6 and all(a["rows"] == 10 for a in acts)
    assert [a["seq"] for a in acts] == sorted(a["seq"] for a in acts)
    assert robot.safe_stops() == []
    assert robot.observer_gone()
    summary = json.loads(result.stderr.strip().splitlines()[-1])
    assert summary["steps"] == 6 and summary["safe_stop"] is None


@pytest.mark.slow
def test_act_exit_1_safe_stops_once_with_act_failed(server, tmp_path: Path) -> None:
    robot = Robot(tmp_path)
    result = robot.run(robot.argv(server.base, fail_at=3))
    assert result.returncode == 1, result.stderr
    assert len(robot.acts()) == 3
    (stop,) = robot.safe_stops()
    assert stop["reason"] == "act_failed" and "gripper jammed" in stop["message"]
    assert stop["session_id"].startswith("session_")
    assert robot.observer_gone()


@pytest.mark.slow
def test_an_observer_that_hangs_past_its_timeout_safe_stops(server, tmp_path: Path) -> None:
    robot = Robot(tmp_path)
    started = time.monotonic()
    result = robot.run(robot.argv(server.base, hang_after=3))
    assert result.returncode == 1, result.stderr
    assert time.monotonic() - started < 20
    (stop,) = robot.safe_stops()
    assert stop["reason"] == "command_timeout" and "observe" in stop["message"]
    assert 1 <= len(robot.acts()) <= 3
    assert robot.observer_gone(), "the hung observer was killed"


@pytest.mark.slow
@pytest.mark.parametrize(
    ("argv", "reason", "said", "acts"),
    [
        # the second act command is the slow one; it is logged before it stalls
        pytest.param({"slow_at": 2}, "command_timeout", "act", 2, id="act-command-overruns"),
        pytest.param(
            {"bad_at": 2, "extra": ("--rate-hz", "5")},
            "malformed_observation",
            "not JSON",
            None,
            id="malformed-observation-line",
        ),
        # the first observation is turned away: nothing is acted on
        pytest.param(
            {"state_dim": 5}, "server_error", "state-length-mismatch", 0, id="error-frame"
        ),
    ],
)
def test_a_failed_step_safe_stops_once_with_its_reason(
    server, tmp_path: Path, argv: dict[str, Any], reason: str, said: str, acts: int | None
) -> None:
    robot = Robot(tmp_path)
    result = robot.run(robot.argv(server.base, **argv))
    (stop,) = robot.safe_stops()
    assert result.returncode == 1 and stop["reason"] == reason
    assert said in stop["message"]
    if acts is not None:  # connect takes the newest line: when it meets a bad one is timing
        assert len(robot.acts()) == acts


@pytest.mark.slow
def test_a_server_killed_mid_run_safe_stops_with_transport_error(
    servers: Any, tmp_path: Path
) -> None:
    robot = Robot(tmp_path)
    with servers.double_subprocess(tmp_path) as (server_proc, base):
        connect = subprocess.Popen(
            robot.argv(base), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        deadline = time.monotonic() + 30
        while len(robot.acts()) < 3:
            assert time.monotonic() < deadline and connect.poll() is None, connect.stderr
            time.sleep(0.02)
        server_proc.send_signal(signal.SIGKILL)
        _, stderr = connect.communicate(timeout=30)
    assert connect.returncode == 1, stderr
    (stop,) = robot.safe_stops()
    assert stop["reason"] == "transport_error"
    assert robot.observer_gone()


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_safe_stops_once(server, tmp_path: Path, sig: int) -> None:
    robot = Robot(tmp_path)
    connect = subprocess.Popen(
        robot.argv(server.base), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 30
    while len(robot.acts()) < 2:
        assert time.monotonic() < deadline and connect.poll() is None
        time.sleep(0.02)
    connect.send_signal(sig)
    connect.send_signal(sig)  # a second one must not interrupt the safe stop
    connect.communicate(timeout=30)
    assert connect.returncode == 128 + sig
    (stop,) = robot.safe_stops()
    assert stop["reason"] == "signal" and signal.Signals(sig).name in stop["message"]
    assert robot.observer_gone()


@pytest.mark.slow
def test_observe_mode_once_runs_the_command_every_step(server, tmp_path: Path) -> None:
    robot = Robot(tmp_path)
    once = tmp_path / "once.py"
    runs = tmp_path / "runs.txt"
    once.write_text(
        "import json\n"
        f"open({str(runs)!r}, 'a').write('x')\n"
        "print(json.dumps({'state': [0.0] * 8, 'prompt': 'pick'}))\n"
    )
    argv = robot.argv(server.base, extra=("--max-steps", "4", "--observe-mode", "once"))
    argv[argv.index("--observe-command") + 1] = f"{PY} {once}"
    result = robot.run(argv)
    assert result.returncode == 0, result.stderr
    assert runs.read_text() == "xxxx" and len(robot.acts()) == 4
