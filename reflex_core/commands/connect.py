"""``reflex connect``: run a robot from observe / act / safe-stop shell commands."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

HELP = "drive a robot from observe/act/safe-stop commands against a reflex server"


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    from reflex_core.plugin.options import add_options
    from reflex_core.robot.connect.config import OPTIONS

    parser.add_argument(
        "--config",
        metavar="robot.toml",
        type=Path,
        help="TOML file whose [connect] table holds the same keys as the flags (flags win)",
    )
    add_options(parser, OPTIONS)
    parser.epilog = (
        "Failures (transport_error, server_error, act_failed, command_timeout, "
        "malformed_observation, observe_failed, signal) run --safe-stop-command once, then "
        "exit non-zero. See docs/robot.md."
    )


def run(args: argparse.Namespace, pm: Any) -> int:
    from reflex_core.robot.connect.config import read_config_file, resolve_connect_config
    from reflex_core.robot.connect.session import main_session

    # one line per HTTP request would bury the progress and the report
    logging.getLogger("httpx").setLevel(logging.WARNING)

    section = read_config_file(args.config) if args.config is not None else None
    return main_session(resolve_connect_config(vars(args), section))
