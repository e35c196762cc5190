"""reflex connect's safe-stop command: receive the safe-stop JSON (reason, message,
session_id) on stdin, bring the robot to a safe state, record what happened, exit.

Here: the simulated arm holds where it is, and the frame is written to --out.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sim_state  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="hold the simulated arm, record the frame")
    parser.add_argument("--state-file", type=Path, default=Path("sim_arm.json"))
    parser.add_argument("--out", type=Path, default=Path("safe_stop.json"))
    args = parser.parse_args()
    frame = json.load(sys.stdin)
    if args.state_file.exists():
        arm = sim_state.load(args.state_file)
        arm.target = arm.q.copy()  # stop commanding motion
        sim_state.save(arm, args.state_file)
    args.out.write_text(json.dumps(frame))
    print(f"safe stop ({frame['reason']}): {frame['message']}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
