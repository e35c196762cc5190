"""``reflex eval``: the pieces (intervals, sweeps, simulated time, the env registry) and the
harness check end to end: Meta-World's scripted expert served behind the wire protocol must
score (near) 100 % through the SDK and the chunk loop; a video and the report come out."""

from __future__ import annotations

import concurrent.futures
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from reflex_core.errors import ConfigError, PluginError
from reflex_core.eval.env import EnvFailure, resolve_env
from reflex_core.eval.episode import EpisodeConfig
from reflex_core.eval.runner import parse_sweep, point_episode_config, point_serve_flags
from reflex_core.eval.simtime import SimClock, SimFuture
from reflex_core.eval.stats import summarize, wilson_interval
from reflex_core.eval.testing import processes_started_on
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.registry import EnvSpec

REFLEX = str(Path(sys.executable).with_name("reflex"))


def test_wilson_interval() -> None:
    assert wilson_interval(0, 10)[0] == 0.0 and 0.25 < wilson_interval(0, 10)[1] < 0.35
    assert wilson_interval(10, 10)[1] == 1.0 and 0.65 < wilson_interval(10, 10)[0] < 0.75
    low, high = wilson_interval(50, 100)
    assert low == pytest.approx(0.4038, abs=1e-3) and high == pytest.approx(0.5962, abs=1e-3)
    with pytest.raises(ValueError):
        wilson_interval(3, 2)


def test_sweep_grid_and_flags() -> None:
    points = parse_sweep(["deadline-ms=50,100", "merge=average,latest_only"])
    assert points == [
        {"deadline-ms": "50", "merge": "average"},
        {"deadline-ms": "50", "merge": "latest_only"},
        {"deadline-ms": "100", "merge": "average"},
        {"deadline-ms": "100", "merge": "latest_only"},
    ]
    assert parse_sweep([]) == [{}]
    assert point_serve_flags(points[0]) == ["--deadline-ms", "50"]  # merge is client-side
    assert point_episode_config(EpisodeConfig(env="x/y"), points[1]).merge == "latest_only"
    for bad in (["deadline-ms"], ["=1,2"], ["a=1", "a=2"]):
        with pytest.raises(ConfigError):
            parse_sweep(bad)


def test_a_chunk_lands_on_the_tick_its_latency_says() -> None:
    clock = SimClock()
    inner: concurrent.futures.Future[Any] = concurrent.futures.Future()
    # submitted 30 ms of wall time ago, answered now: a 30 ms request
    future = SimFuture(inner, clock, time.monotonic() - 0.030)
    inner.set_result({"actions": np.zeros((4, 2))})
    assert future.latency_s is not None and future.latency_s >= 0.030
    clock.sleep_until(0.0125)  # one 80 Hz tick later: not arrived yet
    assert not future.done()
    clock.sleep_until(0.025)
    assert not future.done()
    clock.sleep_until(0.0375 + 0.005)  # the fourth tick: arrived
    assert future.done()


def test_the_simulation_waits_for_a_request_still_in_flight() -> None:
    clock = SimClock()
    inner: concurrent.futures.Future[Any] = concurrent.futures.Future()
    future = SimFuture(inner, clock, time.monotonic())
    clock.sleep_until(0.02)
    started = time.monotonic()
    assert not future.done()  # waited ~20 ms of wall time for it, then gave up for this tick
    assert time.monotonic() - started >= 0.015
    clock.sleep_until(0.0)
    assert not future.done()


def _env_plugin(name: str) -> Any:
    @hookimpl
    def reflex_register_envs(register: Any) -> None:
        register(EnvSpec(name=name, make=lambda task, **kw: None, embodiment="franka",
                         tasks=("a", "b"), default_task="a"))  # fmt: skip

    return SimpleNamespace(reflex_register_envs=reflex_register_envs)


def test_envs_are_registered_through_their_hook() -> None:
    pm = make_plugin_manager(load_entrypoints=False, extra_plugins={"toy": _env_plugin("toy")})
    assert pm.registry.owner("envs", "toy") == "toy"
    spec, task = resolve_env(pm.registry, "toy")
    assert (spec.name, task) == ("toy", "a")
    assert resolve_env(pm.registry, "toy/b")[1] == "b"
    with pytest.raises(ConfigError, match="tasks: a, b"):
        resolve_env(pm.registry, "toy/c")
    with pytest.raises(ConfigError, match="registered envs: toy"):
        resolve_env(pm.registry, "nope/a")
    with pytest.raises(PluginError, match="'one'.*'two'"):
        make_plugin_manager(
            load_entrypoints=False,
            extra_plugins={"one": _env_plugin("same"), "two": _env_plugin("same")},
        )


class _BreakingEnv:
    """A toy env (franka's 8 joints, 15 Hz) whose simulation breaks at tick ``breaks_at``."""

    frequency_hz = 15.0
    prompt = "toy"
    camera_names = ("front",)

    def __init__(self, breaks_at: int) -> None:
        self.breaks_at = breaks_at
        self.ticks = 0
        self.calls_after_failure = 0

    def reset(self, seed: int) -> None:
        self.ticks = 0

    def observe(self, cameras: Any = ()) -> dict[str, Any]:
        return {"state": np.zeros(8, np.float32), "prompt": self.prompt}

    def _tick(self) -> None:
        if self.ticks >= self.breaks_at:
            self.calls_after_failure += self.ticks > self.breaks_at
            self.ticks += 1
            raise EnvFailure("the simulation diverged")
        self.ticks += 1

    def act(self, action: np.ndarray) -> None:
        self._tick()

    def hold(self) -> None:
        self._tick()

    success = False
    reward = 0.0

    def render_frame(self, size: int) -> np.ndarray:
        return np.zeros((size, size, 3), np.uint8)

    def close(self) -> None:
        pass


def test_an_env_failure_ends_the_episode_as_a_failure_not_an_error(servers: Any) -> None:
    """The adapter's EnvFailure stops the loop at that tick: the record says ``failure`` and
    ``stop_reason: env_failure`` with ``error`` None, the summary counts it under ``failures``,
    and the broken simulation is not stepped again."""
    from reflex_core.eval.episode import EpisodeRunner

    made: list[_BreakingEnv] = []

    @hookimpl
    def reflex_register_envs(register: Any) -> None:
        def make(task: str, **kw: Any) -> _BreakingEnv:
            made.append(_BreakingEnv(breaks_at=12))
            return made[-1]

        register(EnvSpec(name="toy", make=make, embodiment="franka", tasks=("a",),
                         default_task="a"))  # fmt: skip

    pm = make_plugin_manager(
        load_entrypoints=False,
        extra_plugins={"toy": SimpleNamespace(reflex_register_envs=reflex_register_envs)},
    )
    runner = EpisodeRunner(EpisodeConfig(env="toy/a", max_steps=40), pm.registry)
    with servers.ThreadedServer() as server:
        record = runner.run(server.base, index=0, seed=0)
    runner.close()
    assert record["error"] is None, record
    assert record["failure"] == "the simulation diverged"
    assert record["stop_reason"] == "env_failure" and not record["success"]
    assert record["steps"] == 13  # ticks 0..12, the 13th broke
    assert made[0].calls_after_failure == 0
    summary = summarize([record])
    assert (summary["failures"], summary["errors"]) == (1, 0)


def _record(success: bool, point: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "type": "episode", "env": "e", "task": "t", "point": point or {}, "success": success,
        "success_tick": 10 if success else None, "steps": 40, "sim_time_s": 0.5, "return": 1.0,
        "wall_s": 0.1, "latency_ms": {"p50": 5.0, "p99": 9.0}, "chunks": 3, "stale_dropped": 1,
        "starved_ticks": 1, "guard": {"clamped": 2, "rejected": 0}, "fallbacks": 1, "error": None,
    }  # fmt: skip


def test_summary_counts() -> None:
    summary = summarize([_record(True), _record(False), _record(True)])
    assert summary["episodes"] == 3 and summary["successes"] == 2
    assert summary["success_rate"] == pytest.approx(2 / 3)
    assert summary["success_ci95"] == list(wilson_interval(2, 3))
    assert (summary["guard_clamped"], summary["fallbacks"]) == (6, 3)
    assert summary["time_to_success_s"]["mean"] == pytest.approx(10 / 80)


def _eval(*args: str, timeout: float = 600, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [REFLEX, "eval", *args], capture_output=True, text=True, timeout=timeout,
        env={**os.environ, "OMP_NUM_THREADS": "1", **env},
    )  # fmt: skip


@pytest.mark.slow
def test_the_scripted_expert_scores_near_100_percent(tmp_path: Path) -> None:
    out, videos = tmp_path / "results.jsonl", tmp_path / "videos"
    result = _eval(
        "--expert", "--env", "metaworld/reach-v3", "--episodes", "5", "--max-steps", "150",
        "--seed", "100", "--out", str(out), "--video", str(videos), "--video-format", "gif",
        "--no-progress",
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    episodes = [r for r in lines if r["type"] == "episode"]
    (summary,) = [r for r in lines if r["type"] == "summary"]
    assert [r["seed"] for r in episodes] == [100, 101, 102, 103, 104]
    assert summary["successes"] >= 4, summary
    for record in episodes:
        assert record["error"] is None
        assert record["chunks"] >= 1 and record["requests"] >= record["chunks"]
        assert record["latency_ms"]["p50"] > 0
        # requests every 8 ticks at 80 Hz: a success takes well under the 150-tick limit
        if record["success"]:
            assert record["success_tick"] < 150 and record["steps"] == record["success_tick"] + 1
    gifs = sorted(videos.glob("*.gif"))
    assert len(gifs) == 5
    from PIL import Image

    with Image.open(gifs[0]) as gif:
        assert gif.n_frames >= 3
    assert "reflex eval: metaworld/reach-v3" in result.stdout
    report = _eval("report", str(out), "--png", str(tmp_path / "plot.png"))
    assert report.returncode == 0, report.stderr
    assert "(default)" in report.stdout and (tmp_path / "plot.png").stat().st_size > 1000


@pytest.mark.slow
def test_ray_workers_share_one_server_on_loopback() -> None:
    import ray

    from reflex_core.eval.runner import EvalPlan, run_eval
    from reflex_core.eval.server import ServerPlan

    plan = EvalPlan(
        episode=EpisodeConfig(env="metaworld/reach-v3", max_steps=60, stop_on_success=False),
        server=ServerPlan(expert_env="metaworld/reach-v3"),
        episodes=3,
        seed=7,
        workers=2,
    )
    records: list[dict[str, Any]] = []
    try:
        run_eval(plan, records.append)
        assert ray.util.get_node_ip_address() == "127.0.0.1"  # nothing listens outside loopback
    finally:
        ray.shutdown()
    assert sorted(r["seed"] for r in records) == [7, 8, 9]
    assert {r["worker"] for r in records} == {"worker-0", "worker-1"}
    assert len({r["server"] for r in records}) == 1
    assert all(r["error"] is None and r["steps"] == 60 for r in records)


@pytest.mark.slow
def test_server_per_worker_starts_one_server_per_actor_and_stops_them() -> None:
    """``--server-per-worker``: each of 2 Ray actors serves the expert itself; every episode's
    record names the server that answered it (one per worker, two different ones), and when the
    evaluation is over both servers are gone (nothing answers, no process left)."""
    import httpx
    import ray

    from reflex_core.eval.runner import EvalPlan, run_eval
    from reflex_core.eval.server import ServerPlan

    plan = EvalPlan(
        episode=EpisodeConfig(env="metaworld/reach-v3", max_steps=30, stop_on_success=False),
        # with the guard on: its audit log is per server (one state dir each), not contended
        server=ServerPlan(expert_env="metaworld/reach-v3", flags=("--guard", "clamp")),
        episodes=2,  # the first episode of each actor: both servers answer one
        seed=3,
        workers=2,
        server_per_worker=True,
    )
    records: list[dict[str, Any]] = []
    try:
        run_eval(plan, records.append)
    finally:
        ray.shutdown()
    assert sorted(r["seed"] for r in records) == [3, 4]
    assert all(r["error"] is None and r["chunks"] >= 1 for r in records), records
    servers_of = {}
    for record in records:
        servers_of.setdefault(record["worker"], set()).add(record["server"])
    assert set(servers_of) == {"worker-0", "worker-1"}
    assert all(len(urls) == 1 for urls in servers_of.values()), servers_of
    urls = set.union(*servers_of.values())
    assert len(urls) == 2 and all(u.startswith("http://127.0.0.1:") for u in urls)
    for url in urls:
        with pytest.raises(httpx.TransportError):
            httpx.get(url + "/health", timeout=2.0)
    ports = {int(u.rsplit(":", 1)[1]) for u in urls}
    assert processes_started_on(ports) == {}


@pytest.mark.slow
def test_the_random_weight_tiny_model_scores_what_chance_gives(tmp_path: Path) -> None:
    """The harness's other half: the same eval, against a policy with random weights, must not
    report success (the expert above scores >= 80 % on the same task and seeds)."""
    from reflex_metaworld.tiny import write_tiny_checkpoint

    checkpoint = write_tiny_checkpoint(tmp_path / "ckpt")
    artifact = tmp_path / "artifact"
    export = subprocess.run(
        [REFLEX, "export", str(checkpoint), "--embodiment", "sawyer-metaworld", "-o",
         str(artifact), "--parity-cases", "1", "-q"],
        capture_output=True, text=True, timeout=600, env={**os.environ, "OMP_NUM_THREADS": "1"},
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    out = tmp_path / "results.jsonl"
    result = _eval(
        "--artifact", str(artifact), "--env", "metaworld/reach-v3", "--episodes", "3",
        "--max-steps", "80", "--seed", "100", "--out", str(out), "--no-progress",
        "--guard", "clamp", "--guard-trip-after", "0",  # random weights violate every chunk
        # the guard's audit log (and its one-writer lock) in this test's own state directory,
        # never the user's, which another test's (or worker's) server may hold
        REFLEX_STATE_DIR=str(tmp_path / "state"),
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    (summary,) = [r for r in lines if r["type"] == "summary"]
    episodes = [r for r in lines if r["type"] == "episode"]
    assert len(episodes) == 3 and all(r["error"] is None for r in episodes)
    assert all(r["chunks"] >= 1 for r in episodes)  # the policy really acted
    assert summary["successes"] == 0, summary


def test_the_eval_script_runs_reflex_eval_lines_that_parse() -> None:
    """``scripts/eval.sh`` (the documented one command: the expert check, the tiny model's sweep,
    the report) is only run by hand; a renamed flag or sweep key must fail here instead."""
    import re
    import shlex

    from reflex_core.cli import build_parser
    from reflex_core.plugin.manager import make_plugin_manager

    text = (Path(__file__).parents[1] / "scripts" / "eval.sh").read_text().replace("\\\n", " ")
    # the script's defaults (name=${NAME:-default}) for its variables
    defaults = dict(re.findall(r"^(\w+)=\$\{[A-Z_0-9]+:-([^}]+)\}", text, re.MULTILINE))
    assert {"episodes", "sweep", "max_steps", "out"} <= set(defaults), defaults
    text = text.replace('"${sweep_args[@]}"', f"--sweep {defaults['sweep']}")
    for name, value in sorted(defaults.items(), key=lambda item: -len(item[0])):
        text = text.replace(f"${name}", value)
    commands = [
        line.split('"$reflex"', 1)[1].split("|")[0]
        for line in text.splitlines()
        if line.lstrip().startswith('"$reflex" eval')
    ]
    assert len(commands) == 3, commands  # expert, sweep, report
    parser = build_parser(make_plugin_manager())
    expert, swept, report = (parser.parse_args(shlex.split(c)) for c in commands)
    assert expert.expert and expert.env == "metaworld/reach-v3"
    assert swept.artifact is not None and swept.env == "metaworld/reach-v3"
    assert report.eval_command == "report"
    points = parse_sweep(swept.sweep)
    assert len(points) == 3
    for point in points:  # every swept key is a serve flag `reflex serve` takes
        parser.parse_args(["serve", "artifact", *point_serve_flags(point)])
