"""Write a SmolVLA checkpoint directory with random weights.

``python -m reflex_smolvla.write_checkpoint --real-size DIR`` (console script
``reflex-smolvla-checkpoint``): the real ``lerobot/smolvla_base`` dimensions (450,046,176
parameters, 1.8 GB fp32), for benchmarks. ``--tiny DIR``: the built-in ``tiny-smolvla``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="reflex-smolvla-checkpoint", description=__doc__)
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--real-size", metavar="DIR", type=Path, help="smolvla_base dimensions")
    mode.add_argument("--tiny", metavar="DIR", type=Path, help="the built-in tiny-smolvla")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cameras", default="camera1,camera2,camera3")
    parser.add_argument("--state-dim", type=int, default=6)
    parser.add_argument("--action-dim", type=int, default=6)
    parser.add_argument("--tokenizer", type=Path, help="a SmolVLM2 tokenizer.json to copy in")
    args = parser.parse_args(argv)

    from reflex_smolvla import builtin

    if args.tiny is not None:
        directory = builtin.write_builtin_checkpoint("tiny-smolvla", args.tiny)
    else:
        directory = builtin.write_real_size_checkpoint(
            args.real_size,
            cameras=tuple(c for c in args.cameras.split(",") if c),
            state_dim=args.state_dim,
            action_dim=args.action_dim,
            seed=args.seed,
            tokenizer_file=args.tokenizer,
        )
    size = (directory / "model.safetensors").stat().st_size
    print(json.dumps({"directory": str(directory), "model_bytes": size}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
