"""``reflex export``: a trained policy -> ONNX graphs -> parity gate -> artifact directory."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

HELP = "export a trained policy (any installed model family) to ONNX, gated by parity with PyTorch"

DEFAULT_MODE = "decomposed"


def _assignment(text: str) -> tuple[str, Any]:
    """``KEY=VALUE`` with VALUE parsed as JSON (``-1``, ``null``, ``"center"``), else a string."""
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        parsed: Any = json.loads(value)
    except ValueError:
        parsed = value
    return key.strip(), parsed


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    from reflex_core.export.stages import ISOLATION_MODES

    modes = sorted(registry.exporters) or [DEFAULT_MODE]
    parser.add_argument(
        "source",
        metavar="SOURCE",
        help="a built-in checkpoint ("
        + (
            ", ".join(
                sorted(n for ml in registry.model_loaders.values() for n in ml.builtin_checkpoints)
            )
            or "none"
        )
        + "), a checkpoint directory, or a Hugging Face Hub repo id; its config.json picks the "
        "model family among the installed ones ("
        + (", ".join(sorted(registry.model_loaders)) or "none")
        + ")",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="DIR",
        help="artifact directory to create",
    )
    parser.add_argument(
        "--mode",
        choices=modes,
        default=DEFAULT_MODE,
        help=f"graph layout (default {DEFAULT_MODE}); "
        + "; ".join(
            f"{m}: {registry.exporters[m].description}" for m in modes if m in registry.exporters
        ),
    )
    robot = parser.add_mutually_exclusive_group()
    robot.add_argument(
        "--embodiment",
        metavar="NAME",
        help="record a robot embodiment (e.g. franka) in the artifact",
    )
    robot.add_argument(
        "--custom-embodiment-config",
        type=Path,
        metavar="PATH",
        help="record an embodiment from a JSON file",
    )
    parser.add_argument(
        "--num-steps",
        type=int,
        metavar="N",
        help="Euler denoising steps (default: the checkpoint's)",
    )
    parser.add_argument(
        "--precision",
        choices=("fp32", "fp16"),
        default="fp32",
        help="fp16 keeps t, its embedding and RoPE in fp32 (default fp32)",
    )
    parser.add_argument("--opset", type=int, metavar="N", help="ONNX opset (default: torch's)")
    gate = parser.add_argument_group("parity gate")
    gate.add_argument(
        "--parity-threshold",
        type=float,
        metavar="X",
        help="max absolute error per output (default 1e-4 fp32, 5e-3 fp16)",
    )
    gate.add_argument(
        "--parity-min-cos",
        type=float,
        metavar="X",
        help="min cosine similarity (default 0.9999 fp32, 0.999 fp16)",
    )
    gate.add_argument(
        "--parity-kv-rel",
        type=float,
        metavar="X",
        help="KV cache / features error allowed relative to their scale "
        "(default 1e-4 fp32, 5e-3 fp16)",
    )
    gate.add_argument("--parity-cases", type=int, metavar="N", help="seeded cases (default 4)")
    gate.add_argument("--parity-seed", type=int, metavar="N", help="base seed (default 0)")
    parser.add_argument(
        "--tokenizer",
        type=Path,
        metavar="PATH",
        help="tokenizer.json for checkpoints that ship none",
    )
    parser.add_argument(
        "--preprocess",
        action="append",
        type=_assignment,
        default=[],
        metavar="KEY=VALUE",
        help="override the family's preprocessing contract, e.g. image.pad_value=0 (openpi) or "
        "-1 (lerobot 0.4), prompt.state_pad_to=32 or null; repeatable, VALUE is JSON (see "
        "docs/export.md; `reflex doctor` shows the result)",
    )
    parser.add_argument(
        "--model-option",
        action="append",
        type=_assignment,
        default=[],
        metavar="KEY=VALUE",
        help="a setting of the model family itself (see its README, e.g. reflex-smolvla's "
        "vision_patch_positions); repeatable, VALUE is JSON; recorded in the artifact",
    )
    parser.add_argument(
        "--sign-key",
        type=Path,
        metavar="KEY",
        help="sign the artifact's digest with this ed25519 private key (PEM; `reflex keygen` "
        "makes one): `reflex serve --trusted-keys DIR` then accepts only signed artifacts",
    )
    parser.add_argument(
        "--external-data",
        action="store_true",
        help="store weights in .onnx.data files even for graphs under 64 MB",
    )
    parser.add_argument(
        "--unrolled",
        action="store_true",
        help="monolithic: trace the N-step loop from torch instead of an ONNX "
        "Loop (N times slower to export)",
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="replace a non-empty output directory (only if the gate passes)",
    )
    parser.add_argument(
        "--isolate",
        choices=ISOLATION_MODES,
        default="auto",
        help="where the torch stages (export, the gate's torch references) run: 'process' runs "
        "each in a fresh process, so the export's peak memory is its largest stage's instead of "
        "their sum; 'inprocess' keeps them in this one (faster start-up); 'auto' (default) "
        "isolates checkpoints with 1 GiB of weights or more",
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    parser.add_argument("--json", action="store_true", help="print a JSON summary on stdout")


def run(args: argparse.Namespace, pm: Any) -> int:
    from reflex_core.embodiments import load_embodiment
    from reflex_core.export.parity import ParitySettings
    from reflex_core.export.pipeline import ExportRequest, export_artifact
    from reflex_core.export.progress import Progress

    registry = pm.registry
    embodiment = load_embodiment(
        name=args.embodiment, path=args.custom_embodiment_config, registry=registry
    )
    settings = ParitySettings.for_precision(
        args.precision,
        max_abs=args.parity_threshold,
        min_cos=args.parity_min_cos,
        kv_max_rel=args.parity_kv_rel,
        cases=args.parity_cases,
        seed=args.parity_seed,
    )
    request = ExportRequest(
        source=args.source,
        output=args.output,
        mode=args.mode,
        embodiment=embodiment,
        num_steps=args.num_steps,
        precision=args.precision,
        opset=args.opset,
        parity=settings,
        force=args.force,
        external_data=True if args.external_data else None,
        monolithic_loop="unrolled" if args.unrolled else "loop",
        tokenizer_file=args.tokenizer,
        preprocess=dict(args.preprocess),
        model_options=dict(args.model_option),
        sign_key=args.sign_key,
        isolate=args.isolate,
    )
    progress = Progress(sys.stderr, enabled=not args.quiet)
    result = export_artifact(request, registry=registry, progress=progress)
    report = result.report
    worst = report["worst"]
    summary = {
        "output": str(result.output),
        "mode": result.artifact.mode,
        "precision": result.artifact.precision,
        "graphs": {
            g.name: {"file": g.file, "export_seconds": round(g.seconds, 2)} for g in result.graphs
        },
        "parity": {
            "passed": report["passed"],
            "cases": len(report["cases"]),
            "worst": worst,
            "thresholds": report["thresholds"],
        },
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"wrote {result.output} ({result.artifact.mode}, {result.artifact.precision})")
    for g in result.graphs:
        print(f"  {g.file}  exported in {g.seconds:.1f} s")
    print(
        f"parity passed on {len(report['cases'])} cases; worst: {worst['graph']} case "
        f"{worst['case']} {worst['output']}: max abs {worst['max_abs_error']:.3g} "
        f"(allowed {worst['allowed_abs']:.3g}), cos {worst['cosine']:.9f}"
    )
    return 0
