"""reflex connect's act command: read one action chunk JSON on stdin, apply its first actions
to the simulated arm, exit 0 (anything else makes reflex connect safe-stop).

A real robot's version hands the targets to its controller here.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import sim_state  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description="apply an action chunk from stdin")
    parser.add_argument("--state-file", type=Path, default=Path("sim_arm.json"))
    parser.add_argument(
        "--actions", type=int, default=1, help="actions of the chunk to apply (default 1)"
    )
    args = parser.parse_args()
    chunk = json.load(sys.stdin)
    if chunk.get("type") != "action_chunk" or not chunk.get("actions"):
        print(f"not an action chunk: {str(chunk)[:200]}", file=sys.stderr)
        return 1
    arm = sim_state.load(args.state_file)
    for target in chunk["actions"][: args.actions]:
        arm.act(target)
    sim_state.save(arm, args.state_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
