"""reflex connect's observe command: print the simulated arm's observation, one JSON line per
control step, until killed (or --count lines).

    reflex connect --server http://127.0.0.1:8000 \
        --observe-command "python examples/shell/observe.py --state-file /tmp/arm.json" \
        --act-command "python examples/shell/act.py --state-file /tmp/arm.json" \
        --safe-stop-command "python examples/shell/safe_stop.py --state-file /tmp/arm.json"

A real robot's version reads its joints and cameras here. Lines must be flushed (reflex
connect reads them as they come and uses the newest one each step).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sim_state  # noqa: E402

from reflex_core.wire import encode_image  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description="print simulated observations, one per line")
    parser.add_argument("--state-file", type=Path, default=Path("sim_arm.json"))
    parser.add_argument("--rate-hz", type=float, default=15.0)
    parser.add_argument("--count", type=int, default=0, help="stop after N lines (0: never)")
    parser.add_argument("--task", default="pick up the red block")
    args = parser.parse_args()
    printed = 0
    while args.count == 0 or printed < args.count:
        arm = sim_state.load(args.state_file)
        observation = arm.observe()
        line = {
            "state": observation["state"].tolist(),
            "images": {name: encode_image(image) for name, image in observation["images"].items()},
            "task": args.task,
            "capture_time_ns": time.time_ns(),
        }
        print(json.dumps(line), flush=True)
        printed += 1
        time.sleep(1.0 / args.rate_hz)


if __name__ == "__main__":
    main()
