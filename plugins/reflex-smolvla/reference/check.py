"""SmolVLA reference check: our torch module vs lerobot 0.4.4's, same weights, same tensors.

Run in our ``.venv`` (``scripts/reference_check.sh`` does, after building ``.venv-reference``)::

    python plugins/reflex-smolvla/reference/check.py [--reference-python PATH] [--workdir DIR]

1. here: write the built-in ``tiny-smolvla`` checkpoint and a copy with other weights (the
   negative control) into the work dir, with seeded model-ready inputs and noise; run our
   ``SmolVLAFlowModel`` (the module the exporters trace);
2. in ``.venv-reference``: ``lerobot_side.py`` builds lerobot's ``SmolVLAPolicy`` from the same
   directories (lerobot's config parser, strict load) and runs ``VLAFlowMatching`` on the same
   tensors and noise;
3. here: compare the action chunk (max abs <= 1e-4, cos >= 0.99999) and the layer-0 prefix
   K/V; print one JSON line ``{"family": "smolvla", ..., "passed": ...}``; exit 1 on drift, or
   when the negative control (other weights) is NOT detected.

Cases: ``batch`` (batch 2; per sample a different prompt length, the second sample's wrist
camera masked; identical tensors on both sides) and ``dropped`` (batch 1: our masked wrist camera
and max-length padded prompt against lerobot with the camera dropped and the prompt unpadded, as
lerobot's ``prepare_images`` / ``pad_language_to="longest"`` produce it; K/V compared over the
valid prefix tokens).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[2]
MAX_ABS = 1e-4
MIN_COS = 0.99999
SEED = 1234


def compare(reference: np.ndarray, ours: np.ndarray) -> dict[str, float]:
    a = np.asarray(reference, np.float64).reshape(-1)
    b = np.asarray(ours, np.float64).reshape(-1)
    if a.shape != b.shape:
        return {"max_abs": float("inf"), "cos": -1.0}
    denom = np.linalg.norm(a) * np.linalg.norm(b)
    cos = float(a @ b / denom) if denom > 0 else float(np.array_equal(a, b))
    return {"max_abs": float(np.max(np.abs(a - b))) if a.size else 0.0, "cos": cos}


def within(figures: dict[str, float]) -> bool:
    return figures["max_abs"] <= MAX_ABS and figures["cos"] >= MIN_COS


def _cases(spec: Any, config: dict[str, Any], vocab: int) -> list[dict[str, Any]]:
    """Model-ready tensors: images in [-1, 1] (a missing camera -1), int64 tokens, bool masks,
    the normalized zero-padded state, noise."""
    rng = np.random.default_rng(SEED)
    size, length = spec.image_size, spec.tokenizer_max_length
    chunk, max_action, max_state = spec.chunk_size, spec.max_action_dim, spec.max_state_dim

    def images(batch: int) -> np.ndarray:
        return rng.uniform(-1.0, 1.0, (batch, 2, 3, size, size)).astype(np.float32)

    def tokens(batch: int) -> np.ndarray:
        return rng.integers(4, vocab, (batch, length)).astype(np.int64)

    def state(batch: int) -> np.ndarray:
        out = np.zeros((batch, max_state), np.float32)
        out[:, : spec.state_dim] = rng.normal(size=(batch, spec.state_dim))
        return out

    # batch: both sides get exactly these tensors.
    batch_images = images(2)
    batch_images[1, 1] = -1.0  # missing wrist camera on sample 1
    batch_masks = np.array([[True, True], [True, False]])
    batch_tokens = tokens(2)
    valid = np.array([9, 5])
    batch_token_masks = np.arange(length)[None, :] < valid[:, None]
    batch_tokens[~batch_token_masks] = 0
    batch = {
        "name": "batch",
        "ours": {
            "images": batch_images,
            "image_masks": batch_masks,
            "tokens": batch_tokens,
            "token_masks": batch_token_masks,
            "state": state(2),
            "noise": rng.normal(size=(2, chunk, max_action)).astype(np.float32),
        },
    }
    batch["lerobot"] = {
        **{f"image_{i}": batch_images[:, i] for i in range(2)},
        **{f"image_mask_{i}": batch_masks[:, i] for i in range(2)},
        "tokens": batch_tokens,
        "token_masks": batch_token_masks,
        "state": batch["ours"]["state"],
        "noise": batch["ours"]["noise"],
    }
    batch["num_images"] = 2

    # dropped: ours masks the wrist camera and pads the prompt; lerobot drops both.
    drop_images = images(1)
    drop_images[0, 1] = -1.0
    drop_tokens = tokens(1)
    drop_valid = 7
    drop_token_masks = np.arange(length)[None, :] < drop_valid
    drop_tokens[~drop_token_masks] = 0
    drop_state, drop_noise = state(1), rng.normal(size=(1, chunk, max_action)).astype(np.float32)
    dropped = {
        "name": "dropped",
        "ours": {
            "images": drop_images,
            "image_masks": np.array([[True, False]]),
            "tokens": drop_tokens,
            "token_masks": drop_token_masks,
            "state": drop_state,
            "noise": drop_noise,
        },
        "lerobot": {
            "image_0": drop_images[:, 0],
            "image_mask_0": np.array([True]),
            "tokens": drop_tokens[:, :drop_valid],
            "token_masks": drop_token_masks[:, :drop_valid],
            "state": drop_state,
            "noise": drop_noise,
        },
        "num_images": 1,
    }
    return [batch, dropped]


def _ours(checkpoint: Path, cases: list[dict[str, Any]], num_steps: int) -> dict[str, np.ndarray]:
    import torch
    from reflex_smolvla.loader import load_smolvla_checkpoint

    from reflex_core.models.family import LoadOptions

    policy = load_smolvla_checkpoint(checkpoint, LoadOptions(source=str(checkpoint)))
    graphs = policy.graphs
    out: dict[str, np.ndarray] = {}
    for case in cases:
        inputs = {k: torch.from_numpy(v) for k, v in case["ours"].items()}
        noise = inputs.pop("noise")
        with torch.no_grad():
            actions = graphs.sample_actions(inputs, noise, num_steps)
            prefix = dict(
                zip(
                    graphs.prefix_outputs,
                    graphs.prefix(*(inputs[n] for n in graphs.prefix_inputs)),
                    strict=True,
                )
            )
        name = case["name"]
        out[f"{name}/actions"] = actions.numpy()
        for key in ("past_k_0", "past_v_0", "prefix_mask"):
            out[f"{name}/{key}"] = prefix[key].numpy()
    return out


def _valid(kv: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The K/V rows of valid prefix tokens, batch by batch, concatenated."""
    return np.concatenate([kv[b][mask[b].astype(bool)] for b in range(kv.shape[0])])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--reference-python",
        type=Path,
        default=Path(
            os.environ.get("REFLEX_REFERENCE_PYTHON", REPO / ".venv-reference/bin/python")
        ),
    )
    parser.add_argument("--workdir", type=Path, help="keep the files here (default: a temp dir)")
    args = parser.parse_args(argv)

    import torch
    from reflex_smolvla.builtin import (
        TINY_SMOLVLA,
        builtin_config,
        init_weights,
        tiny_vlm_config,
        write_builtin_checkpoint,
        write_checkpoint_dir,
    )
    from reflex_smolvla.config import build_arch
    from reflex_smolvla.modeling import build_model

    from reflex_core.models.tiny_tokenizer import tiny_vocabulary

    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory(prefix="smolvla-reference-") as tmp:
        workdir = args.workdir or Path(tmp)
        workdir.mkdir(parents=True, exist_ok=True)
        checkpoint = write_builtin_checkpoint(TINY_SMOLVLA.name, workdir / "tiny-smolvla")
        config = builtin_config(TINY_SMOLVLA.name)
        vocab = len(tiny_vocabulary())
        other_model = build_model(build_arch(config, tiny_vlm_config(vocab)))
        init_weights(other_model, TINY_SMOLVLA.seed + 1000)
        other = write_checkpoint_dir(
            workdir / "other-weights",
            config,
            other_model,
            tokenizer=None,
            vlm_config=tiny_vlm_config(vocab),
            builtin={"name": "negative-control", "seed": TINY_SMOLVLA.seed + 1000},
        )
        cases = _cases(TINY_SMOLVLA, config, vocab)
        for case in cases:
            np.savez(workdir / f"case_{case['name']}.npz", **case["lerobot"])
        request = {
            "checkpoints": {"tiny": str(checkpoint), "other": str(other)},
            "cases": [
                {
                    "name": c["name"],
                    "inputs": f"case_{c['name']}.npz",
                    "num_images": c["num_images"],
                }
                for c in cases
            ],
        }
        (workdir / "request.json").write_text(json.dumps(request, indent=2))
        ours = _ours(checkpoint, cases, TINY_SMOLVLA.num_steps)

        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
        run = subprocess.run(
            # absolute() not resolve(): the venv's python is a symlink to the base interpreter.
            [str(args.reference_python.absolute()), str(HERE / "lerobot_side.py"), str(workdir)],
            cwd=workdir,
            env=env,
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            sys.stderr.write(run.stdout[-4000:] + run.stderr[-8000:])
            print(
                json.dumps({"family": "smolvla", "passed": False, "error": "lerobot side failed"})
            )
            return 1
        reference = dict(np.load(workdir / "lerobot_tiny.npz"))
        negative = dict(np.load(workdir / "lerobot_other.npz"))
        meta = json.loads((workdir / "lerobot_tiny.json").read_text())

        figures: dict[str, Any] = {}
        passed = True
        for case in cases:
            name = case["name"]
            chunk = compare(reference[f"{name}/actions"], ours[f"{name}/actions"])
            kv: dict[str, dict[str, float]] = {}
            for key in ("past_k_0", "past_v_0"):
                ref_mask = reference[f"{name}/prefix_mask"]
                our_mask = ours[f"{name}/prefix_mask"]
                kv[key] = compare(
                    _valid(reference[f"{name}/{key}"], ref_mask),
                    _valid(ours[f"{name}/{key}"], our_mask),
                )
                if name == "batch":  # identical inputs: the whole tensor must agree too
                    whole = compare(reference[f"{name}/{key}"], ours[f"{name}/{key}"])
                    kv[key] = {
                        k: max(kv[key][k], whole[k])
                        if k == "max_abs"
                        else min(kv[key][k], whole[k])
                        for k in whole
                    }
            ok = within(chunk) and all(within(f) for f in kv.values())
            passed &= ok
            figures[name] = {
                "chunk_max_abs": chunk["max_abs"],
                "chunk_cos": chunk["cos"],
                **{f"{k}_max_abs": v["max_abs"] for k, v in kv.items()},
                **{f"{k}_cos": v["cos"] for k, v in kv.items()},
                "passed": ok,
            }
        control = compare(negative["batch/actions"], ours["batch/actions"])
        detected = not within(control)
        passed &= detected
        line = {
            "family": "smolvla",
            "reference": "lerobot 0.4.4 VLAFlowMatching",
            "checkpoint": TINY_SMOLVLA.name,
            "parameters": meta["parameters"],
            "num_steps": meta["num_steps"],
            "thresholds": {"max_abs": MAX_ABS, "cos": MIN_COS},
            "chunk_max_abs": max(f["chunk_max_abs"] for f in figures.values()),
            "chunk_cos": min(f["chunk_cos"] for f in figures.values()),
            "kv0_max_abs": max(
                max(f["past_k_0_max_abs"], f["past_v_0_max_abs"]) for f in figures.values()
            ),
            "kv0_cos": min(min(f["past_k_0_cos"], f["past_v_0_cos"]) for f in figures.values()),
            "cases": figures,
            "negative_control": {**control, "detected": detected},
            "passed": passed,
        }
        print(json.dumps(line))
        return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
