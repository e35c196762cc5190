"""The ``reflex`` command line: one argparse parser whose subcommands come from plugins.

The core's commands are registered by the built-in plugin :mod:`reflex_core.builtin.commands`
through the same ``reflex_register_commands`` hook a third party uses.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from reflex_core import __version__
from reflex_core.errors import ReflexError
from reflex_core.plugin.manager import ReflexPluginManager, make_plugin_manager


def build_parser(pm: ReflexPluginManager) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="reflex",
        description="Export VLA policies to ONNX with proven parity and serve them to robots.",
    )
    parser.add_argument("--version", action="version", version=f"reflex {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    registry = pm.registry
    for name, command in sorted(registry.commands.items()):
        sp = sub.add_parser(name, help=command.help, description=command.help)
        command.configure(sp, registry)
        sp.set_defaults(_command=command)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    # Logging is set up before plugins load so that a broken plugin is reported once, through
    # the plugin manager's log line (naming plugin, distribution and version).
    verbose = any(a in ("-v", "--verbose") for a in argv)
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    try:
        pm = make_plugin_manager()  # a duplicate plugin-registered name fails here
        parser = build_parser(pm)
    except ReflexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    args = parser.parse_args(argv)
    command = getattr(args, "_command", None)
    if command is None:
        parser.print_help()
        return 2
    try:
        return int(command.run(args, pm) or 0)
    except ReflexError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
