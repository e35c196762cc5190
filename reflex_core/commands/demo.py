"""``reflex demo``: export the tiny pi0.5, serve it with the installed wedges, drive a simulated
Franka through the SDK for a few hundred control steps, and report (see
:mod:`reflex_core.robot.sim.demo`)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

HELP = "export a tiny model (pi0.5 by default), serve it, drive a MuJoCo Franka Panda, report"


def _positive_int(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {number}")
    return number


def _positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return number


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    from reflex_core.robot.control.merge import MERGE_FUNCTIONS

    parser.add_argument(
        "--steps", type=_positive_int, default=300, help="control steps to run (default 300)"
    )
    parser.add_argument(
        "--keep",
        type=Path,
        metavar="DIR",
        help="work in DIR and keep it: the artifact, server.log, the guard's audit log",
    )
    parser.add_argument(
        "--model",
        default="tiny-pi05",
        metavar="NAME",
        help="the built-in checkpoint to export and serve (default tiny-pi05; any installed "
        "family's, e.g. tiny-pi0, tiny-smolvla, tiny-groot; its state and action must fit the "
        "franka)",
    )
    parser.add_argument(
        "--artifact",
        type=Path,
        metavar="DIR",
        help="serve this existing export instead of exporting the tiny model",
    )
    parser.add_argument(
        "--merge",
        choices=sorted(MERGE_FUNCTIONS),
        default="weighted_average",
        help="how overlapping chunks merge (default weighted_average: 0.3 old / 0.7 new)",
    )
    parser.add_argument(
        "--rate-hz",
        type=_positive_float,
        metavar="HZ",
        help="control rate (default: the franka embodiment's 15 Hz)",
    )
    parser.add_argument(
        "--deadline-ms",
        type=_positive_float,
        default=250.0,
        metavar="MS",
        help="the deadline wedge's budget when it is installed (default 250)",
    )
    parser.add_argument(
        "--report-json", type=Path, metavar="PATH", help="also write the report as JSON"
    )


def run(args: argparse.Namespace, pm: Any) -> int:
    from reflex_core.robot.sim.demo import DemoOptions, run_demo

    # one line per HTTP request would bury the progress and the report
    logging.getLogger("httpx").setLevel(logging.WARNING)

    options = DemoOptions(
        steps=args.steps,
        keep=args.keep,
        artifact=args.artifact,
        model=args.model,
        merge=args.merge,
        rate_hz=args.rate_hz,
        deadline_ms=args.deadline_ms,
        report_json=args.report_json,
    )
    return run_demo(options, pm.registry, sys.stdout, sys.stderr)
