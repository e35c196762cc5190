"""Reflex runtime backend: the OpenVINO runtime on an artifact's ONNX graphs.

``reflex serve DIR --providers openvino`` (fp32), ``openvino-bf16`` (CPUs with bf16: AMX or
AVX512-BF16) and ``openvino-int8`` (static int8 linear layers), the reduced precisions served only
after ``reflex openvino gate DIR --precision bf16|int8`` passed for the artifact. Nothing here is
imported until a backend is asked for: ``openvino`` is imported inside the calls.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from reflex_core.plugin.hookspecs import hookimpl

__version__ = "0.1.0"


@hookimpl
def reflex_register_runtime_backends(register: Any) -> None:
    from reflex_openvino.backend import backend_specs

    for spec in backend_specs():
        register(spec)


def _configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    sub = parser.add_subparsers(dest="openvino_command", required=True)
    gate = sub.add_parser(
        "gate",
        help="gate a reduced precision (bf16, int8) of an artifact against its fp32 graphs",
        description=(
            "Run the artifact in onnxruntime fp32 and in OpenVINO at PRECISION on generated "
            "observations, compare the action chunks in robot units, and write "
            "DIR/backends/openvino/PRECISION/gate_report.json. int8 first calibrates and writes "
            "the quantized graphs there. Exits 1 when the gate fails: the precision is then "
            "refused by `--providers openvino-PRECISION`."
        ),
    )
    gate.add_argument("artifact_dir", metavar="DIR")
    gate.add_argument("--precision", choices=("bf16", "int8"), required=True)
    gate.add_argument("--cases", type=int, default=4, help="gated observations (default 4)")
    gate.add_argument("--calibration", type=int, default=8, help="int8 calibration observations")
    gate.add_argument("--seed", type=int, default=0)
    gate.add_argument("--threads", type=int, default=None)
    gate.add_argument("--min-cos", type=float, default=0.9999)
    gate.add_argument(
        "--max-abs", type=float, default=None, help="max abs error in robot units (absolute)"
    )
    gate.add_argument(
        "--max-rel",
        type=float,
        default=0.01,
        help="without --max-abs: allowed max abs error as a fraction of the reference's max |a|",
    )
    gate.add_argument(
        "--thin",
        type=int,
        default=64,
        help="int8: keep linear layers with min(in, out) <= THIN in fp32 (default 64)",
    )
    gate.add_argument("--json", action="store_true", help="print the whole report")


def _run(args: argparse.Namespace, pm: Any) -> int:
    from reflex_openvino.gate import run_gate

    report = run_gate(
        args.artifact_dir,
        args.precision,
        cases=args.cases,
        seed=args.seed,
        calibration=args.calibration,
        threads=args.threads,
        min_cos=args.min_cos,
        max_abs=args.max_abs,
        max_rel=args.max_rel,
        thin=args.thin,
    )
    if args.json:
        print(json.dumps(report, indent=2))
    worst = report["worst"]
    verdict = "passed" if report["passed"] else "FAILED (the precision will be refused)"
    print(
        f"openvino-{args.precision} gate {verdict} on {len(report['cases'])} cases: worst max abs "
        f"{worst.get('max_abs_error'):.3g} (allowed {report['allowed_abs']:.3g}), cos "
        f"{worst.get('cosine'):.7f} (min {report['thresholds']['min_cos']})"
    )
    return 0 if report["passed"] else 1


@hookimpl
def reflex_register_commands(register: Any) -> None:
    from reflex_core.plugin.registry import Command

    register(
        Command(
            name="openvino",
            help="OpenVINO runtime backend: precision gate (bf16, int8) of an artifact",
            configure=_configure,
            run=_run,
        )
    )
