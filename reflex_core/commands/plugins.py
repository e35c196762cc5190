"""``reflex plugins``: what is installed, its version and the hooks it implements."""

from __future__ import annotations

import argparse
import json
from typing import Any

import attrs

HELP = "list installed plugins, their versions and the hooks they implement"


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--all", action="store_true", help="include the core's built-in plugins")


def run(args: argparse.Namespace, pm: Any) -> int:
    infos = [i for i in pm.plugin_infos() if args.all or not i.builtin]
    registry = pm.registry
    registered: dict[str, list[str]] = {}
    for (kind, name), owner in sorted(registry.owners.items()):
        registered.setdefault(owner, []).append(f"{kind}:{name}")
    if args.json:
        payload = {
            "plugins": [
                {**attrs.asdict(i), "hooks": list(i.hooks), "registers": registered.get(i.name, [])}
                for i in infos
            ],
            "failures": [attrs.asdict(f) for f in pm.load_failures],
        }
        print(json.dumps(payload, indent=2))
        return 1 if pm.load_failures else 0
    if not infos:
        print("no plugins installed" + ("" if args.all else " (--all shows the built-ins)"))
    for i in infos:
        print(f"{i.name}  {i.distribution} {i.version}".rstrip())
        print(f"  hooks: {', '.join(i.hooks) or '-'}")
        if registered.get(i.name):
            print(f"  registers: {', '.join(registered[i.name])}")
    for f in pm.load_failures:
        print(f"FAILED {f.name}  {f.distribution} {f.version}: {f.error}")
    return 1 if pm.load_failures else 0
