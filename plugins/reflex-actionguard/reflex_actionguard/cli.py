"""``reflex guard audit PATH``: summarize an ActionGuard audit log."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from reflex_core.errors import ConfigError

HELP = "ActionGuard tools: `reflex guard audit [PATH]` summarizes an audit log"


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    parser.add_argument("action", choices=["audit"], help="audit: summarize an audit log")
    parser.add_argument(
        "path",
        type=Path,
        nargs="?",
        default=None,
        help="the audit log (its rotated files are read too); default: the guard's default, "
        "$REFLEX_STATE_DIR/guard/audit.jsonl",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, pm: Any) -> int:
    from reflex_actionguard.audit import summarize
    from reflex_actionguard.state import default_audit_log
    from reflex_core.plugin.kit.jsonl import log_files

    path = args.path if args.path is not None else default_audit_log()
    if not log_files(path):
        raise ConfigError(f"no audit log at {path}", slug="guard-audit-missing")
    summary = summarize(path)
    if args.json:
        print(json.dumps(summary.to_dict(), indent=2))
    else:
        print(summary.render())
    return 0
