"""``reflex a2c2 train`` and ``reflex a2c2 eval``: fit a correction head from recorded chunks,
and measure one on held-out data."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

HELP = "A2C2 correction head: train one from recorded chunks (JSONL), or evaluate one"


def _add_key_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data",
        action="append",
        required=True,
        metavar="JSONL",
        help="recorded chunks (repeatable); see the reflex-a2c2 README for the format",
    )
    parser.add_argument("--features-key", default="features", help="record key of the features")
    parser.add_argument(
        "--base-key",
        default="base_actions",
        help="record key of the policy's chunk (router shadow logs: actions_a)",
    )
    parser.add_argument(
        "--target-key", default="executed_actions", help="record key of the executed actions"
    )
    parser.add_argument("--latency-key", default="latency_ms", help="record key of the latency")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    sub = parser.add_subparsers(dest="a2c2_command", metavar="ACTION", required=True)
    train = sub.add_parser("train", help="fit a head (NumPy MLP, Adam) and save it as .npz")
    _add_key_options(train)
    train.add_argument("-o", "--out", required=True, metavar="HEAD.npz", help="where to save")
    train.add_argument(
        "--onnx-out",
        metavar="HEAD.onnx",
        help="also write the head as ONNX (needs reflex-a2c2[onnx])",
    )
    train.add_argument("--hidden", type=int, default=64, help="hidden units per layer (64)")
    train.add_argument("--layers", type=int, default=2, help="hidden layers (2)")
    train.add_argument("--epochs", type=int, default=200, help="most epochs (200)")
    train.add_argument("--batch-size", type=int, default=256, help="rows per step (256)")
    train.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (3e-3)")
    train.add_argument("--weight-decay", type=float, default=0.0, help="AdamW decay (0)")
    train.add_argument(
        "--val-fraction",
        type=float,
        default=0.2,
        help="chunks held out for early stopping and the report (0.2)",
    )
    train.add_argument(
        "--patience", type=int, default=20, help="epochs without improvement before stopping (20)"
    )
    train.add_argument("--seed", type=int, default=0)
    evaluate = sub.add_parser("eval", help="error with and without a head on recorded chunks")
    _add_key_options(evaluate)
    evaluate.add_argument("--head", required=True, metavar="PATH", help=".npz or .onnx head")


def run(args: argparse.Namespace, pm: Any) -> int:
    from reflex_a2c2.dataset import RecordKeys, load_dataset
    from reflex_a2c2.head import load_head
    from reflex_a2c2.train import TrainConfig, evaluate, train_head

    keys = RecordKeys(args.features_key, args.base_key, args.target_key, args.latency_key)
    data, bad = load_dataset(args.data, keys)
    for line in bad:
        print(f"warning: skipped {line.reason} line {line.path}:{line.line}", file=sys.stderr)
    if args.a2c2_command == "eval":
        head = load_head(args.head)
        before, after = evaluate(head, data)
        report: dict[str, Any] = {
            "rows": data.rows,
            "chunks": data.chunks,
            "error_before": before,
            "error_after": after,
        }
    else:
        config = TrainConfig(
            hidden=args.hidden, layers=args.layers, epochs=args.epochs,
            batch_size=args.batch_size, lr=args.lr, weight_decay=args.weight_decay,
            val_fraction=args.val_fraction, patience=args.patience, seed=args.seed,
        )  # fmt: skip
        head, train_report = train_head(data, config)
        head.save(args.out)
        report = {
            "out": str(args.out),
            "chunks": data.chunks,
            "skipped_records": data.skipped_records,
            **train_report.to_dict(),
        }
        if args.onnx_out:
            from reflex_a2c2.onnx_export import export_onnx

            report["onnx_out"] = str(export_onnx(head, args.onnx_out))
    if args.json:
        print(json.dumps(report))
    else:
        for key, value in report.items():
            print(f"{key}: {value:.6g}" if isinstance(value, float) else f"{key}: {value}")
    return 0
