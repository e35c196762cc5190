"""``reflex doctor [DIR]``: is this machine, and this artifact, ready to serve?

Environment: which onnxruntime wheel is installed (two side by side break each other), which
execution providers really load (a trivial session per advertised provider, checked with
``get_providers()``), CPU/GPU, versions. With an artifact: its manifest, file hashes, parity
verdict, graph inputs/outputs against the manifest and the runtime contract, a timed dry run
through the real runtime, and the fit to an embodiment (dims, chunk size, cameras, gripper).
Each check is PASS / WARN / FAIL with a fix hint; any FAIL exits 1.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from reflex_core.commands.doctor.artifact import artifact_checks
from reflex_core.commands.doctor.embodiment import emb_fits, embodiment_checks
from reflex_core.commands.doctor.environment import (
    ORT_WHEELS,
    backend_checks,
    environment_checks,
    installed_ort_wheels,
    probe_providers,
)
from reflex_core.commands.doctor.report import FAIL, PASS, WARN, Check, report

__all__ = [
    "FAIL",
    "HELP",
    "ORT_WHEELS",
    "PASS",
    "WARN",
    "Check",
    "artifact_checks",
    "backend_checks",
    "configure",
    "emb_fits",
    "embodiment_checks",
    "environment_checks",
    "installed_ort_wheels",
    "probe_providers",
    "report",
    "run",
]

HELP = "check the environment and an exported artifact (providers, hashes, parity, dry run, embodiment fit)"


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    parser.add_argument(
        "artifact_dir", metavar="DIR", type=Path, nargs="?", help="an exported artifact"
    )
    emb = parser.add_mutually_exclusive_group()
    emb.add_argument("--embodiment", metavar="NAME", help="check the artifact against this robot")
    emb.add_argument(
        "--custom-embodiment-config", metavar="PATH", type=Path, help="your own embodiment JSON"
    )
    parser.add_argument(
        "--providers",
        metavar="LIST",
        help="execution providers for the dry run, comma-separated (default: the best available)",
    )
    parser.add_argument(
        "--allow-cpu-fallback",
        action="store_true",
        help="accept the CPU when an asked-for GPU provider does not load",
    )
    parser.add_argument(
        "--trusted-keys",
        type=Path,
        metavar="DIR",
        help="check that one of these ed25519 public keys signed the artifact (as serve does)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed dry-run inferences (default 3)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, pm: Any) -> int:
    checks = environment_checks()
    checks += backend_checks(getattr(getattr(pm, "registry", None), "runtime_backends", {}))
    embodiment = None
    if args.embodiment or args.custom_embodiment_config:
        from reflex_core.embodiments import load_embodiment
        from reflex_core.errors import ConfigError

        try:
            embodiment = load_embodiment(
                name=args.embodiment,
                path=args.custom_embodiment_config,
                registry=getattr(pm, "registry", None),
            )
        except ConfigError as exc:
            checks.append(Check("embodiment", FAIL, str(exc), "fix the embodiment name or file"))
    if args.artifact_dir is not None:
        providers = [p for p in (args.providers or "").split(",") if p.strip()] or None
        checks += artifact_checks(
            args.artifact_dir,
            embodiment=embodiment,
            embodiment_requested=bool(args.embodiment or args.custom_embodiment_config),
            providers=providers,
            allow_cpu_fallback=args.allow_cpu_fallback,
            runs=max(1, args.runs),
            trusted_keys=args.trusted_keys,
        )
    report(checks, as_json=args.json)
    return 1 if any(c.status == FAIL for c in checks) else 0
