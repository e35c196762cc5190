"""Write a random-weight GR00T N1.5 checkpoint at the real dimensions (benchmarks only).

``python plugins/reflex-groot/scripts/write_real_size.py DIR [--cameras front wrist]
[--state-dim 8] [--action-dim 8] [--embodiment new_embodiment]``

The layout is a lerobot 0.4.4 fine-tune of ``nvidia/GR00T-N1.5-3B``: SigLIP 1152 x 27 (224 px /
14, 256 tokens per image), Qwen3-1.7B truncated to 12 layers, the 4-layer VL self-attention and
16-layer DiT (32 heads x 48), 32 embodiment slots, 4 flow steps, 16-action chunks. The base and
Eagle configs are written beside it (``base/``, ``eagle/``) so the directory is self-contained;
no tokenizer is written (pass the Eagle tokenizer with ``--tokenizer``). 2,413,522,880
parameters, ~9.7 GB of fp32 safetensors; needs about that much RAM (run it under
``flock /tmp/reflex-bigmem.lock`` on a shared machine).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from reflex_groot.builtin import tiny_policy_config, write_checkpoint
from reflex_groot.config import (
    DEFAULT_EMBODIMENT_MAPPING,
    EAGLE_N15_ASSETS,
    GROOT_N15_3B,
    KNOWN_BASE_CONFIGS,
    KNOWN_EAGLE_CONFIGS,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--cameras", nargs="+", default=["front", "wrist"])
    parser.add_argument("--state-dim", type=int, default=8)
    parser.add_argument("--action-dim", type=int, default=8)
    parser.add_argument("--embodiment", default="new_embodiment")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    base = copy.deepcopy(KNOWN_BASE_CONFIGS[GROOT_N15_3B])
    eagle = copy.deepcopy(KNOWN_EAGLE_CONFIGS[EAGLE_N15_ASSETS])
    size = eagle["force_image_size"]
    config = tiny_policy_config()
    config["input_features"] = {
        f"observation.images.{cam}": {"type": "VISUAL", "shape": [3, size, size]}
        for cam in args.cameras
    }
    config["input_features"]["observation.state"] = {"type": "STATE", "shape": [args.state_dim]}
    config["output_features"] = {"action": {"type": "ACTION", "shape": [args.action_dim]}}
    config["image_size"] = [size, size]
    config["embodiment_tag"] = args.embodiment
    config["chunk_size"] = config["n_action_steps"] = base["action_horizon"]
    config.pop("reflex_builtin", None)  # a real tokenizer (Eagle, pad 151643) goes with it
    write_checkpoint(
        args.directory,
        policy_config=config,
        base_config=base,
        eagle_config=eagle,
        seed=args.seed,
        mapping=dict(DEFAULT_EMBODIMENT_MAPPING),
    )
    print(args.directory)


if __name__ == "__main__":
    main()
