"""Episodes per minute of ``reflex eval`` with 1, 2 and 4 Ray workers against ONE batched server.

The random-weight tiny pi0.5 exported for Meta-World's Sawyer (``reflex_metaworld.tiny``) is
served once with the batching wedge (``--max-batch W``), on 127.0.0.1; for each worker count
W, ``reflex eval``'s runner puts W Ray actors on it, each with its own Meta-World simulator
(``reach-v3``, fixed-length episodes: ``--max-steps`` ticks, no early stop, 64x64 corner renders
for the policy), and the wall time of ``--episodes`` episodes gives episodes per minute. Ray
starts once (local, loopback only) and its start-up is not counted.

On a 2-core machine each actor's simulator and renderer, the server's inference and the Ray
processes share the same two cores: once two workers keep both busy, more workers only queue.
``saturation`` in the JSON line is the first worker count whose speed-up over the previous one
is under 1.2x.

Prints a table, then ONE JSON line: ``workers``, ``episodes_per_minute`` per worker count,
``speedup`` vs 1 worker, ``saturation``, the machine's load average.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--episodes", type=int, default=8)
    parser.add_argument("--max-steps", type=int, default=80)
    parser.add_argument("--artifact", type=Path, help="an export for sawyer-metaworld (else made)")
    args = parser.parse_args(argv)
    counts = [int(w) for w in args.workers.split(",")]

    from reflex_core.eval.episode import EpisodeConfig
    from reflex_core.eval.runner import EvalPlan, init_ray, run_eval
    from reflex_core.eval.server import ServerPlan
    from reflex_core.serve.child import reflex_argv

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
        server = ServerPlan(
            artifact=artifact,
            embodiment="sawyer-metaworld",
            flags=("--max-batch", str(max(counts))),
        )
        rates: dict[int, float] = {}
        try:
            for workers in counts:
                plan = EvalPlan(
                    episode=EpisodeConfig(
                        env="metaworld/reach-v3", max_steps=args.max_steps, stop_on_success=False
                    ),
                    server=server,
                    episodes=args.episodes,
                    workers=workers,
                )
                records: list[dict[str, object]] = []
                started = time.monotonic()
                run_eval(plan, records.append)
                seconds = time.monotonic() - started
                rates[workers] = 60.0 * len(records) / seconds
                print(f"workers {workers}: {len(records)} episodes in {seconds:6.1f} s = "
                      f"{rates[workers]:6.2f} episodes/min", file=sys.stderr)  # fmt: skip
        finally:
            ray.shutdown()
    base = rates[counts[0]]
    speedup = {w: r / base for w, r in rates.items()}
    saturation = next(
        (b for a, b in zip(counts, counts[1:], strict=False) if rates[b] / rates[a] < 1.2), None
    )
    print(f"{'workers':>8} {'episodes/min':>13} {'speed-up':>9}")
    for w in counts:
        print(f"{w:>8} {rates[w]:>13.2f} {speedup[w]:>8.2f}x")
    print(json.dumps({
        "benchmark": "eval_scaling",
        "env": "metaworld/reach-v3",
        "episodes": args.episodes,
        "max_steps": args.max_steps,
        "workers": counts,
        "episodes_per_minute": {str(w): round(r, 3) for w, r in rates.items()},
        "speedup": {str(w): round(s, 3) for w, s in speedup.items()},
        "saturation": saturation,
        "cpus": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
