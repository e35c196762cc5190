"""Episodes per minute of ``reflex eval`` with 1, 2 and 4 Ray workers against ONE batched server.

The random-weight tiny pi0.5 exported for Meta-World's Sawyer (``reflex_metaworld.tiny``) is
served once with the batching wedge (``--max-batch`` = the largest worker count), on 127.0.0.1;
for each worker count W, ``reflex eval``'s runner puts W Ray actors on it, each with its own
Meta-World simulator (``reach-v3``, fixed-length episodes: ``--max-steps`` ticks, no early stop,
64x64 corner renders for the policy), and the wall time of ``--episodes`` episodes gives
episodes per minute. Ray starts once (local, loopback only) and its start-up is not counted; the
actors' start-up (a process each, imports, the simulator) is, as in any evaluation, and
``steady_episodes_per_minute`` leaves it out (episodes over the busiest actor's time in them).

The box is shared and its load changes the wall-clock figures, so the CPU an episode costs is
measured too: the actors' own CPU time per episode (each record's ``cpu_s``: simulator, renders,
encoding, the SDK) and the server's CPU time over the run (``/proc/PID/stat``) per episode. On an
otherwise idle machine with ``cpus`` cores, episodes per minute cannot exceed
``60 * cpus / (client + server CPU s per episode)`` (Ray's own processes not counted):
``cpu_bound_episodes_per_minute``. ``saturation`` is the first worker count whose measured
speed-up over the previous one is under 1.2x (``steady_saturation``: the same in episodes);
``workers_to_fill_cpus`` is how many 1-worker loads fit in the cores (the worker count past which
only queueing is left).

Prints a table, then ONE JSON line: ``workers``, ``episodes_per_minute`` per worker count,
``speedup`` vs 1 worker, ``saturation``, the CPU figures, the 1-minute load average before and
after each worker count and the machine's load average at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")


def _cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` (and its waited-for children), in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # after the ")": state is field 3, utime 14, stime 15, cutime 16, cstime 17 (1-based)
    ticks = sum(int(fields[i - 3]) for i in (14, 15, 16, 17))
    return ticks / os.sysconf("SC_CLK_TCK")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--max-steps", type=int, default=80)
    parser.add_argument("--artifact", type=Path, help="an export for sawyer-metaworld (else made)")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]

    from reflex_core.eval.episode import EpisodeConfig
    from reflex_core.eval.runner import EvalPlan, init_ray, run_eval
    from reflex_core.eval.server import ServerPlan, served
    from reflex_core.eval.testing import processes_started_on
    from reflex_core.serve.child import reflex_argv

    rates: dict[int, float] = {}
    steady: dict[int, float] = {}
    client_cpu: dict[int, float] = {}
    server_cpu: dict[int, float] = {}
    # the box is shared: the 1-minute load average around each measurement says how much
    loads: dict[int, list[float]] = {}
    with tempfile.TemporaryDirectory(prefix="reflex-eval-scaling-") as work:
        artifact = args.artifact
        if artifact is None:
            import subprocess

            from reflex_metaworld.tiny import write_tiny_checkpoint

            checkpoint = write_tiny_checkpoint(Path(work) / "checkpoint")
            artifact = Path(work) / "artifact"
            subprocess.run(
                reflex_argv("export", str(checkpoint), "--embodiment", "sawyer-metaworld",
                            "-o", str(artifact)),
                check=True, stdout=subprocess.DEVNULL,
            )  # fmt: skip
        ray = init_ray(None, max(counts))
        spawn = ServerPlan(
            artifact=artifact,
            embodiment="sawyer-metaworld",
            flags=("--max-batch", str(max(counts))),
        )
        try:
            with served(spawn) as (url, _health):
                # the server ``served`` spawned: the one process started with its --port
                (server_pid,) = processes_started_on({int(url.rsplit(":", 1)[1])})
                for workers in counts:
                    plan = EvalPlan(
                        episode=EpisodeConfig(
                            env="metaworld/reach-v3", max_steps=args.max_steps,
                            stop_on_success=False,
                        ),
                        server=ServerPlan(url=url),
                        episodes=args.episodes,
                        workers=workers,
                    )  # fmt: skip
                    records: list[dict[str, Any]] = []
                    load_before = os.getloadavg()[0]
                    server_before = _cpu_seconds(server_pid)
                    started = time.monotonic()
                    run_eval(plan, records.append)
                    seconds = time.monotonic() - started
                    server_used = _cpu_seconds(server_pid) - server_before
                    loads[workers] = [round(load_before, 2), round(os.getloadavg()[0], 2)]
                    errors = [r for r in records if r.get("error")]
                    if errors:
                        raise SystemExit(
                            f"{len(errors)} of {len(records)} episodes failed: {errors}"
                        )
                    rates[workers] = 60.0 * len(records) / seconds
                    # without the actors' start-up (process, imports, simulator build): the
                    # busiest actor's time spent in episodes bounds the run from below
                    busy: dict[str, float] = {}
                    for r in records:
                        busy[r["worker"]] = busy.get(r["worker"], 0.0) + r["wall_s"]
                    steady[workers] = 60.0 * len(records) / max(busy.values())
                    client_cpu[workers] = statistics.mean(r["cpu_s"] for r in records)
                    server_cpu[workers] = server_used / len(records)
                    print(f"workers {workers}: {len(records)} episodes in {seconds:6.1f} s = "
                          f"{rates[workers]:6.2f} episodes/min ({steady[workers]:.2f} in "
                          f"episodes); CPU per episode: actor {client_cpu[workers]:.2f} s, "
                          f"server {server_cpu[workers]:.2f} s; load {loads[workers]}",
                          file=sys.stderr)  # fmt: skip
        finally:
            ray.shutdown()
    cpus = os.cpu_count() or 1
    base = rates[counts[0]]
    speedup = {w: r / base for w, r in rates.items()}

    def saturation_of(rate: dict[int, float]) -> int | None:
        """The first worker count that gains under 1.2x over the one before."""
        pairs = zip(counts, counts[1:], strict=False)
        return next((b for a, b in pairs if rate[b] / rate[a] < 1.2), None)

    saturation = saturation_of(rates)
    per_episode = client_cpu[counts[0]] + server_cpu[counts[0]]
    ceiling = 60.0 * cpus / per_episode
    # one worker keeps this many cores busy at its measured pace
    one_worker_cores = rates[counts[0]] * per_episode / 60.0
    print(
        f"{'workers':>8} {'episodes/min':>13} {'speed-up':>9} {'actor CPU s':>12} {'server CPU s':>13}"
    )
    for w in counts:
        print(f"{w:>8} {rates[w]:>13.2f} {speedup[w]:>8.2f}x {client_cpu[w]:>12.2f} "
              f"{server_cpu[w]:>13.2f}")  # fmt: skip
    print(json.dumps({
        "benchmark": "eval_scaling",
        "env": "metaworld/reach-v3",
        "episodes": args.episodes,
        "max_steps": args.max_steps,
        "workers": counts,
        "episodes_per_minute": {str(w): round(r, 3) for w, r in rates.items()},
        "speedup": {str(w): round(s, 3) for w, s in speedup.items()},
        "steady_episodes_per_minute": {str(w): round(r, 3) for w, r in steady.items()},
        "saturation": saturation,
        "steady_saturation": saturation_of(steady),
        "actor_cpu_s_per_episode": {str(w): round(c, 3) for w, c in client_cpu.items()},
        "server_cpu_s_per_episode": {str(w): round(c, 3) for w, c in server_cpu.items()},
        "cpu_bound_episodes_per_minute": round(ceiling, 2),
        "workers_to_fill_cpus": round(cpus / one_worker_cores, 2),
        "cpus": cpus,
        "loadavg_1m_before_after": {str(w): v for w, v in loads.items()},
        "loadavg": os.getloadavg(),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
