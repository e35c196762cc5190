"""GR00T N1.5: our modules vs lerobot 0.4.4's on the same weights, tensors and noise.

Two processes, because the two implementations need different ``transformers`` (ours 5.x,
lerobot 0.4.4 4.57.x): this script (our ``.venv``) writes the checkpoint (``tiny-groot`` unless
``--checkpoint DIR``), the preprocessed inputs and the noise into a work directory, runs
``lerobot_side.py`` with ``.venv-reference/bin/python`` (``scripts/reference_env.sh`` builds it),
and compares:

- ``backbone_features``: Eagle features of the last kept LLM layer (``GR00TN15.backbone``);
- ``vl_features``: after ``vlln`` and the VL self-attention (``process_backbone_output``);
- ``actions``: the whole ``action_head.get_action`` chunk (4 Euler steps of the DiT with the
  embodiment's projectors) from identical noise — max abs <= 1e-4 and cos >= 0.99999;
- the negative control: lerobot's chunk for another embodiment slot must *fail* the same gate
  (a check that cannot fail proves nothing).

Batch 2, both prompts of the same length, so lerobot sees no padding (its inference case). Our
right-padded run (the runtime's layout) must give the same chunk too (``padded_vs_unpadded``).
Prints one JSON line ``{"family": "groot", ...}``; exits 1 on drift, 2 when the reference could
not run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MAX_ABS = 1e-4
MIN_COS = 0.99999
FEATURE_REL = 1e-4  # features: max abs relative to the largest |value|


def compare(ours: np.ndarray, ref: np.ndarray) -> dict[str, float]:
    a = np.asarray(ours, np.float64).reshape(-1)
    b = np.asarray(ref, np.float64).reshape(-1)
    cos = float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-300))
    return {
        "max_abs": float(np.max(np.abs(a - b))),
        "cos": cos,
        "ref_max": float(np.max(np.abs(b))),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="a GR00T checkpoint dir (default tiny)")
    parser.add_argument("--reference-python", default=str(REPO / ".venv-reference/bin/python"))
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--workdir", type=Path)
    args = parser.parse_args(argv)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import torch
    from reflex_groot.builtin import TINY_NAME, write_tiny_groot
    from reflex_groot.config import PACK_STEP, parse_policy_config
    from reflex_groot.loader import load_groot_checkpoint
    from safetensors.torch import load_file, save_file
    from tokenizers import Tokenizer

    from reflex_core.models.family import LoadOptions
    from reflex_core.models.lerobot import PREPROCESSOR_FILE, processor_step, read_json

    torch.set_num_threads(1)
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="groot-ref-"))
    workdir.mkdir(parents=True, exist_ok=True)
    checkpoint = args.checkpoint
    if checkpoint is None:
        checkpoint = workdir / TINY_NAME
        write_tiny_groot(checkpoint)
    policy = load_groot_checkpoint(checkpoint, LoadOptions(source=str(checkpoint)))
    parsed = parse_policy_config(
        read_json(checkpoint / "config.json"),
        checkpoint,
        processor_step(checkpoint, PREPROCESSOR_FILE, PACK_STEP),
    )
    model = policy.graphs.prefix.model
    category = policy.graphs.prefix.category
    slot = int(policy.details["embodiment_id"])
    other = next(v for v in sorted(set(policy.details["embodiment_mapping"].values())) if v != slot)

    tokenizer = Tokenizer.from_file(str(policy.tokenizer.file))
    tasks = ["pick up the red cube", "put cup on the plate"]
    encoded = [
        tokenizer.encode(policy.io.prompt.template.format(task=t), add_special_tokens=False).ids
        for t in tasks
    ]
    if len({len(e) for e in encoded}) != 1:
        raise SystemExit("the two check prompts must tokenize to the same length")
    batch, cams = len(tasks), len(policy.camera_names)
    size = policy.image_size[0]
    gen = torch.Generator().manual_seed(args.seed)
    images = torch.rand(batch, cams, 3, size, size, generator=gen) * 2 - 1
    tokens = torch.tensor(encoded, dtype=torch.int64)
    state = torch.zeros(batch, policy.max_state_dim)
    state[:, : policy.state_dim] = torch.rand(batch, policy.state_dim, generator=gen) * 2 - 1
    shape = (batch, policy.chunk_size, policy.max_action_dim)
    torch.manual_seed(args.seed)
    noise = torch.randn(shape)
    masks = torch.ones(batch, cams, dtype=torch.bool)
    token_masks = torch.ones_like(tokens, dtype=torch.bool)

    with torch.no_grad():
        raw, _ = model.backbone(images, masks, tokens, token_masks)
        vl, _, _, _ = model.prefix(images, masks, tokens, token_masks, state, category)
        actions = model.sample_actions(
            images, masks, tokens, token_masks, state, noise, policy.num_steps, category
        )
        pad = policy.tokenizer.max_length - tokens.shape[1]
        padded = torch.cat([tokens, torch.full((batch, pad), policy.tokenizer.pad_id)], dim=1)
        padded_masks = torch.cat([token_masks, torch.zeros(batch, pad, dtype=torch.bool)], dim=1)
        actions_padded = model.sample_actions(
            images, masks, padded, padded_masks, state, noise, policy.num_steps, category
        )

    save_file(
        {
            "tokens": tokens,
            "attention_mask": token_masks.to(torch.int64),
            "pixel_values": images.flatten(0, 1).contiguous(),
            "state": state,
            "noise": noise,
        },
        str(workdir / "inputs.safetensors"),
    )
    (workdir / "request.json").write_text(
        json.dumps(
            {
                "base_config": dict(parsed.base_config),
                "eagle_config": dict(parsed.eagle_config),
                "weights": str(Path(checkpoint) / "model.safetensors"),
                "seed": args.seed,
                "embodiments": {"ours": slot, "other": other},
            }
        )
    )
    line: dict = {"family": "groot", "checkpoint": str(checkpoint), "batch": batch}
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH",)}
    env["OMP_NUM_THREADS"] = "1"
    run = subprocess.run(
        [args.reference_python, str(HERE / "lerobot_side.py"), str(workdir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if run.returncode != 0:
        line.update(ok=False, error="reference run failed", stderr=run.stderr[-3000:])
        print(json.dumps(line))
        return 2
    ref = load_file(str(workdir / "outputs.safetensors"))
    meta = json.loads((workdir / "reference.json").read_text())
    line.update(
        lerobot=meta["lerobot"],
        reference_transformers=meta["transformers"],
        embodiment={"tag": policy.details["embodiment_tag"], "id": slot, "negative_id": other},
        strict_load={"missing": meta["missing"], "unexpected": meta["unexpected"]},
    )
    noise_same = bool(torch.equal(ref["noise_drawn_ours"], noise))
    result = {
        "backbone_features": compare(raw.numpy(), ref["backbone_features"].numpy()),
        "vl_features": compare(vl.numpy(), ref["vl_features"].numpy()),
        "actions": compare(actions.numpy(), ref["actions_ours"].numpy()),
        "padded_vs_unpadded": compare(actions_padded.numpy(), actions.numpy()),
        "negative_control": compare(actions.numpy(), ref["actions_other"].numpy()),
    }
    line.update(result)

    def passes(c: dict[str, float], relative: bool = False) -> bool:
        bound = MAX_ABS * max(1.0, c["ref_max"]) if relative else MAX_ABS
        return c["max_abs"] <= bound and c["cos"] >= MIN_COS

    checks = {
        "noise_identical": noise_same,
        "strict_load": not meta["missing"] and not meta["unexpected"],
        "backbone_features": passes(result["backbone_features"], relative=True),
        "vl_features": passes(result["vl_features"], relative=True),
        "actions": passes(result["actions"]),
        "padded_vs_unpadded": passes(result["padded_vs_unpadded"]),
        "negative_control_fails": not passes(result["negative_control"]),
    }
    checks["real_size_layout"] = _real_size_layout(args.reference_python, workdir, env, line)
    line["checks"] = checks
    line["thresholds"] = {"max_abs": MAX_ABS, "cos": MIN_COS, "features": "max_abs rel 1e-4"}
    line["ok"] = all(checks.values())
    print(json.dumps(line))
    return 0 if line["ok"] else 1


def _real_size_layout(reference_python: str, workdir: Path, env: dict, line: dict) -> bool:
    """Our N1.5-3B module tree on the meta device against lerobot's ``GR00TN15``: the same keys,
    shapes and parameter count (lerobot's state dict holds the tied embedding twice)."""
    import torch
    from reflex_groot.config import (
        EAGLE_N15_ASSETS,
        GROOT_N15_3B,
        KNOWN_BASE_CONFIGS,
        KNOWN_EAGLE_CONFIGS,
        parse_arch,
    )
    from reflex_groot.modeling import GrootModel
    from reflex_groot.weights import checkpoint_keys

    base, eagle = KNOWN_BASE_CONFIGS[GROOT_N15_3B], KNOWN_EAGLE_CONFIGS[EAGLE_N15_ASSETS]
    with torch.device("meta"):
        model = GrootModel(parse_arch(base, eagle))
    ours = checkpoint_keys(model)
    count = sum(p.numel() for p in model.parameters())
    keys_dir = workdir / "real-size-keys"
    keys_dir.mkdir(exist_ok=True)
    request = {"keys_only": True, "base_config": base, "eagle_config": eagle}
    (keys_dir / "request.json").write_text(json.dumps(request))
    run = subprocess.run(
        [reference_python, str(HERE / "lerobot_side.py"), str(keys_dir)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if run.returncode != 0:
        line["real_size_layout"] = {"error": run.stderr[-2000:]}
        return False
    reference = json.loads((keys_dir / "reference.json").read_text())
    theirs = {k: tuple(v) for k, v in reference["shapes"].items()}
    tied = "_groot_model.backbone.eagle_model.language_model.model.embed_tokens.weight"
    head = "_groot_model.backbone.eagle_model.language_model.lm_head.weight"
    tied_ok = theirs.pop(tied, None) == ours.get(head)
    line["real_size_layout"] = {
        "keys": len(ours),
        "parameters_ours": count,
        "parameters_lerobot": reference["num_parameters"],
        "missing": sorted(set(theirs) - set(ours))[:10],
        "unexpected": sorted(set(ours) - set(theirs))[:10],
    }
    return tied_ok and ours == theirs and reference["num_parameters"] == count


if __name__ == "__main__":
    sys.exit(main())
