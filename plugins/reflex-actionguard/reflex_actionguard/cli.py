"""``reflex guard audit PATH``: summarize an ActionGuard audit log."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from reflex_core.errors import ConfigError

HELP = "ActionGuard tools: `reflex guard audit PATH` summarizes an audit log"


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    parser.add_argument("action", choices=["audit"], help="audit: summarize an audit log")
    parser.add_argument("path", type=Path, help="the audit log (its rotated files are read too)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, pm: Any) -> int:
    from reflex_actionguard.audit import summarize
    from reflex_core.jsonl import log_files

    if not log_files(args.path):
        raise ConfigError(f"no audit log at {args.path}", slug="guard-audit-missing")
    summary = summarize(args.path)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.render())
    return 0
