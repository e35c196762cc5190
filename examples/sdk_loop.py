"""Drive a simulated Franka from a Reflex server with the SDK.

    reflex serve ./export --embodiment franka            # in one terminal
    python examples/sdk_loop.py --server http://127.0.0.1:8000 --steps 150

Two ways, same robot:

* default: ``@connect`` on a robot class: the chunk execution loop runs the arm at the
  embodiment's 15 Hz, requests the next chunk every ``rtc_execution_horizon`` actions while the
  current one keeps executing, drops stale actions and merges overlapping chunks;
* ``--plain``: the bare ``ActionStream``: one observation, one chunk, apply its first actions,
  repeat (simplest possible loop; no overlap).

Prints a JSON summary on stdout.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from reflex_core.embodiments import EmbodimentConfig
from reflex_core.robot.control import connect
from reflex_core.robot.sdk import ActionStream
from reflex_core.robot.sim import SimArm

PROMPT = "pick up the red block"


class SimulatedFranka:
    """The robot: a simulated Panda behind the observe() / act() interface a real driver
    would implement (read joints and cameras; send joint targets)."""

    def __init__(self, embodiment: EmbodimentConfig, rate_hz: float) -> None:
        self.arm = SimArm(embodiment, frequency_hz=rate_hz)

    def observe(self) -> dict:
        return self.arm.observe()  # {"state": (8,), "images": {"wrist": ..., "front": ...}}

    def act(self, action: np.ndarray) -> None:
        self.arm.act(action)

    def safe_stop(self, reason: str, message: str) -> None:
        # a real robot would brake here; the simulated one holds its position
        self.arm.target = self.arm.q.copy()
        print(f"safe stop: {reason}: {message}")


def run_with_connect(args: argparse.Namespace, franka: EmbodimentConfig) -> dict:
    rate = args.rate_hz or franka.control.frequency_hz
    Robot = connect(args.server, embodiment=franka, prompt=PROMPT, frequency_hz=rate)(
        SimulatedFranka
    )
    robot = Robot(franka, rate)
    report = robot.run(max_steps=args.steps)
    summary = report.summary()
    summary["tracking_error"] = robot.arm.tracking_error()
    return summary


def run_plain(args: argparse.Namespace, franka: EmbodimentConfig) -> dict:
    rate = args.rate_hz or franka.control.frequency_hz
    arm = SimArm(franka, frequency_hz=rate)
    per_chunk = franka.control.rtc_execution_horizon
    latencies, executed = [], 0
    with ActionStream(args.server, embodiment=franka, prompt=PROMPT) as stream:
        while executed < args.steps:
            observation = arm.observe()
            chunk = stream.act(observation["state"], observation["images"], timeout=10)
            latencies.append(chunk["timings"]["latency_ms"])
            for target in chunk["actions"][:per_chunk]:
                arm.act(target)
                executed += 1
                time.sleep(1.0 / rate)
                if executed == args.steps:
                    break
    return {
        "actions_executed": executed,
        "chunks_received": len(latencies),
        "latency_ms": {"p50": float(np.percentile(latencies, 50))},
        "tracking_error": arm.tracking_error(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server", default="http://127.0.0.1:8000")
    parser.add_argument("--steps", type=int, default=150)
    parser.add_argument("--rate-hz", type=float, help="default: the embodiment's")
    parser.add_argument("--plain", action="store_true", help="bare ActionStream loop")
    args = parser.parse_args()
    franka = EmbodimentConfig.load_preset("franka")
    summary = run_plain(args, franka) if args.plain else run_with_connect(args, franka)
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
