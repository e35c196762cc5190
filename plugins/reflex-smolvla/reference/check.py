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

**Served path** (``served`` in the JSON line): the whole path a robot sees, raw observation in,
robot-unit action chunk out, on both sides from the same checkpoint directory and noise:

- ours: ``reflex export CHECKPOINT`` (decomposed, its own parity gate), then a real
  ``reflex serve ARTIFACT`` (no embodiment: the artifact's own stats, no gripper block) answering
  ``POST /act`` with the frames as base64 PNG bytes, the prompt, the state in robot units and a
  ``noise_seed`` (the server draws ``noise_from_seed``);
- lerobot: ``lerobot_side.served``: the checkpoint's processor pipelines through lerobot's
  factory and ``control_utils.predict_action`` (``select_action``, once per control step), and
  ``predict_action_chunk`` + postprocessor, on the same uint8 frames, task, state and noise.

Cases: square frames; non-square frames (a wide and a tall one: padding on the top / on the
left) with a prompt that already ends in a newline; a missing camera (ours masks it, lerobot
drops it); 480x640 / 240x320 frames downscaled 20x / 10x without a prompt; a prompt longer than
``tokenizer_max_length`` (truncated) with a state 3 std outside the statistics. Per case: the
chunk (max abs in robot units <= 1e-4, cos >= 0.99999) against both lerobot paths, the served
chunk against ``load_policy(...).infer`` in process (same bits), and issue 11 section 4's
preprocessing comparison: the images the model sees (pad position and value read off lerobot's
own ``prepare_images`` output), masks, tokens (``pad_language_to="longest"`` and
``"max_length"``, right padding, the newline), the normalized padded state. Negative controls
on the served path: the same artifact with its contract drifted (the image centred instead of
bottom-right; the newline suffix dropped) must FAIL the thresholds on the cases it affects.
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


# -- the served path ---------------------------------------------------------------------------


def _served_cases(spec: Any) -> list[dict[str, Any]]:
    """Raw observations: uint8 HWC frames per camera (absent = missing), the prompt (None = no
    prompt field), the state in robot units, a noise seed."""
    from reflex_core.models.lerobot_writer import FRANKA_STATE_MEAN, FRANKA_STATE_STD

    rng = np.random.default_rng(SEED + 1)
    mean = np.asarray(FRANKA_STATE_MEAN, np.float32)
    std = np.asarray(FRANKA_STATE_STD, np.float32)

    def frame(height: int, width: int) -> np.ndarray:
        # smooth gradients plus noise: a resize that reads the wrong pixels shows
        ys, xs = np.mgrid[0:height, 0:width]
        base = np.stack([ys * 255 / max(height - 1, 1), xs * 255 / max(width - 1, 1)], -1)
        base = np.concatenate([base, (base[..., :1] + base[..., 1:]) / 2], -1)
        noisy = base + rng.normal(0, 40, (height, width, 3))
        return np.clip(noisy, 0, 255).astype(np.uint8)

    def state(scale: float = 1.0) -> np.ndarray:
        return (mean + std * scale * rng.normal(size=spec.state_dim)).astype(np.float32)

    return [
        {
            "name": "square",
            "frames": {"front": frame(32, 32), "wrist": frame(32, 32)},
            "prompt": "pick up the red cube",
            "state": state(),
        },
        {
            "name": "non_square",
            "frames": {"front": frame(24, 40), "wrist": frame(50, 30)},
            "prompt": "stack the blue block on the green block\n",
            "state": state(),
        },
        {
            "name": "missing_camera",
            "frames": {"front": frame(48, 64)},
            "prompt": "open the drawer",
            "state": state(),
        },
        {
            "name": "large_frames_no_prompt",
            "frames": {"front": frame(480, 640), "wrist": frame(240, 320)},
            "prompt": None,
            "state": state(),
        },
        {
            "name": "long_prompt_state_outside_stats",
            "frames": {"front": frame(36, 30), "wrist": frame(32, 32)},
            "prompt": "pick up the small red cube and put it in the blue bowl then close the "
            "drawer and move the arm back to the left side of the table",
            "state": (mean + 3.0 * std * np.sign(rng.normal(size=spec.state_dim))).astype(
                np.float32
            ),
        },
    ]


def _png(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def _write_served_request(
    workdir: Path, checkpoint: Path, cases: list[dict[str, Any]]
) -> dict[str, Any]:
    """Frames, states and noise for the lerobot side (``lerobot_side.served``)."""
    from reflex_smolvla.builtin import TINY_SMOLVLA
    from reflex_smolvla.loader import _pad_id
    from tokenizers import Tokenizer

    from reflex_core.serve.app import noise_from_seed

    arrays: dict[str, np.ndarray] = {}
    for i, case in enumerate(cases):
        case["noise_seed"] = SEED * 100 + i
        case["noise"] = noise_from_seed(
            case["noise_seed"], TINY_SMOLVLA.chunk_size, TINY_SMOLVLA.max_action_dim
        )
        for camera, image in case["frames"].items():
            arrays[f"{case['name']}/image/{camera}"] = image
        arrays[f"{case['name']}/state"] = case["state"]
        arrays[f"{case['name']}/noise"] = case["noise"][None]
    np.savez(workdir / "served_cases.npz", **arrays)
    # The pad token our artifact records, so lerobot's padding="max_length" variant pads alike
    # (real SmolVLM2: <|im_end|>, its tokenizer_config's pad_token).
    tokenizer = Tokenizer.from_file(str(checkpoint / "tokenizer.json"))
    pad_token = tokenizer.id_to_token(_pad_id(checkpoint / "tokenizer.json"))
    return {
        "checkpoint": str(checkpoint),
        "inputs": "served_cases.npz",
        "pad_token": pad_token,
        "cases": [
            {"name": c["name"], "cameras": sorted(c["frames"]), "prompt": c["prompt"]}
            for c in cases
        ],
    }


def _observation(case: dict[str, Any]) -> Any:
    from reflex_core.wire.types import Observation

    return Observation(state=case["state"], images=dict(case["frames"]), prompt=case["prompt"])


def _served_ours(workdir: Path, checkpoint: Path, cases: list[dict[str, Any]]) -> dict[str, Any]:
    """Export, serve, POST every case; in process: the same chunks, the model inputs, and the
    chunks of the drifted contracts (negative controls)."""
    import base64

    import attrs
    import httpx

    from reflex_core.plugin.testing import server_process
    from reflex_core.runtime import load_policy
    from reflex_core.runtime.preprocess import prepare_inputs

    reflex = str(Path(sys.executable).with_name("reflex"))
    artifact = workdir / "artifact"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    export = subprocess.run(
        [reflex, "export", str(checkpoint), "-o", str(artifact), "--force", "-q", "--json"],
        env=env,
        capture_output=True,
        text=True,
    )
    if export.returncode != 0:
        raise RuntimeError(f"reflex export failed:\n{export.stderr[-4000:]}")
    gate = json.loads(export.stdout)["parity"]

    out: dict[str, Any] = {"served": {}, "infer": {}, "inputs": {}, "drift": {}}
    with server_process([reflex, "serve", str(artifact)], log_path=workdir / "serve.log") as base:
        health = httpx.get(base + "/health", timeout=30).json()
        for case in cases:
            body: dict[str, Any] = {
                "state": case["state"].tolist(),
                "images": {
                    camera: base64.b64encode(_png(image)).decode()
                    for camera, image in case["frames"].items()
                },
                "noise_seed": case["noise_seed"],
            }
            if case["prompt"] is not None:
                body["prompt"] = case["prompt"]
            reply = httpx.post(base + "/act", json=body, timeout=120)
            if reply.status_code != 200:
                raise RuntimeError(f"/act {case['name']}: {reply.status_code} {reply.text}")
            out["served"][case["name"]] = np.asarray(reply.json()["actions"], np.float32)

    policy = load_policy(artifact, threads=1)
    for case in cases:
        obs = _observation(case)
        out["infer"][case["name"]] = policy.infer([obs], noise=case["noise"][None]).actions[0]
        checked = policy.validate(obs)
        out["inputs"][case["name"]] = prepare_inputs(
            images=[checked.images],
            states=[obs.state],
            prompts=[obs.prompt],
            io=policy.io,
            max_state_dim=policy.max_state_dim,
            state_stats=policy.state_stats,
            tokenizer=policy.tokenizer,
        )
    io = policy.io
    drifts = {
        "image_centred": attrs.evolve(io, image=attrs.evolve(io.image, pad_position="center")),
        "no_newline": attrs.evolve(io, prompt=attrs.evolve(io.prompt, task_suffix="")),
    }
    for drift, drifted in drifts.items():
        policy.io = drifted
        out["drift"][drift] = {
            c["name"]: policy.infer([_observation(c)], noise=c["noise"][None]).actions[0]
            for c in cases
        }
    policy.io = io
    out["gate"] = {"passed": gate["passed"], "worst": gate["worst"]}
    out["health"] = {k: health.get(k) for k in ("status", "raw_actions") if k in health}
    return out


def _pad_extent(image: np.ndarray, value: float) -> dict[str, int]:
    """Rows / columns at each border of a (3, H, W) image that are entirely ``value``."""
    flat = np.all(image == np.float32(value), axis=0)  # (H, W)
    rows, cols = flat.all(axis=1), flat.all(axis=0)

    def run(mask: np.ndarray) -> int:
        return int(np.argmin(mask)) if not mask.all() else int(mask.size)

    return {
        "top": run(rows),
        "bottom": run(rows[::-1]),
        "left": run(cols),
        "right": run(cols[::-1]),
    }


def _served_figures(
    workdir: Path, cases: list[dict[str, Any]], ours: dict[str, Any]
) -> dict[str, Any]:
    reference = dict(np.load(workdir / "lerobot_served.npz"))
    meta = json.loads((workdir / "lerobot_served.json").read_text())
    figures: dict[str, Any] = {}
    passed = True
    for case in cases:
        name = case["name"]
        served = ours["served"][name]
        chunk_select = compare(reference[f"{name}/select_action"], served)
        chunk_predict = compare(reference[f"{name}/predict_action_chunk"], served)
        same_bits = bool(np.array_equal(served, ours["infer"][name]))

        # What the model saw (issue 11 section 4).
        inputs = ours["inputs"][name]
        present = [i for i, cam in enumerate(("front", "wrist")) if cam in case["frames"]]
        image_diff = 0.0
        pads: dict[str, Any] = {}
        for k, camera_index in enumerate(present):
            theirs = reference[f"{name}/images/{k}"][0]
            mine = inputs.images[0, camera_index]
            image_diff = max(image_diff, float(np.max(np.abs(theirs - mine))))
            lerobot_pad, our_pad = _pad_extent(theirs, -1.0), _pad_extent(mine, -1.0)
            if any(lerobot_pad.values()):
                pads[("front", "wrist")[camera_index]] = {"lerobot": lerobot_pad, "ours": our_pad}
        missing = [i for i in range(inputs.images.shape[1]) if i not in present]
        missing_ok = all(
            not inputs.image_masks[0, i] and np.all(inputs.images[0, i] == np.float32(-1.0))
            for i in missing
        ) and meta["cases"][name]["num_images"] == len(present)
        masks_ok = all(bool(reference[f"{name}/image_masks/{k}"][0]) for k in range(len(present)))
        their_tokens = reference[f"{name}/tokens"][0][reference[f"{name}/token_masks"][0]]
        our_tokens = inputs.tokens[0][inputs.token_masks[0]]
        tokens_longest = bool(np.array_equal(their_tokens, our_tokens))
        tokens_max_length = bool(
            np.array_equal(reference[f"{name}/tokens_max_length"][0], inputs.tokens[0])
            and np.array_equal(
                reference[f"{name}/token_masks_max_length"][0], inputs.token_masks[0]
            )
        )
        state_diff = float(np.max(np.abs(reference[f"{name}/state"][0] - inputs.state[0])))
        task = meta["cases"][name]["task"]
        newline = bool(task and task[0].endswith("\n") and inputs.prompts[0] == task[0])

        preprocessing_ok = (
            image_diff <= 1e-6
            and missing_ok
            and masks_ok
            and tokens_longest
            and tokens_max_length
            and state_diff <= 1e-6
            and newline
            and all(p["lerobot"] == p["ours"] for p in pads.values())
        )
        ok = within(chunk_select) and within(chunk_predict) and same_bits and preprocessing_ok
        passed &= ok
        figures[name] = {
            "chunk_max_abs": max(chunk_select["max_abs"], chunk_predict["max_abs"]),
            "chunk_cos": min(chunk_select["cos"], chunk_predict["cos"]),
            "vs_select_action": chunk_select,
            "vs_predict_action_chunk": chunk_predict,
            "served_equals_infer": same_bits,
            "preprocessing": {
                "image_max_abs": image_diff,
                "padding": pads,
                "missing_camera": ("masked -1 vs dropped" if missing else None)
                if missing_ok
                else "MISMATCH",
                "tokens_equal_longest": tokens_longest,
                "tokens_equal_max_length": tokens_max_length,
                "valid_tokens": int(inputs.token_masks[0].sum()),
                "prompt_newline": newline,
                "state_max_abs": state_diff,
                "passed": preprocessing_ok,
            },
            "passed": ok,
        }

    # Negative controls: a drifted contract must fail on every case it changes (a square frame
    # has no padding; a prompt that already ends in a newline, or is truncated before it, keeps
    # its tokens), and leave the others alone.
    controls: dict[str, Any] = {}
    for drift, cases_hit in (
        (
            "image_centred",
            (
                "non_square",
                "missing_camera",
                "large_frames_no_prompt",
                "long_prompt_state_outside_stats",
            ),
        ),
        ("no_newline", ("square", "missing_camera", "large_frames_no_prompt")),
    ):
        per_case = {
            name: compare(reference[f"{name}/select_action"], ours["drift"][drift][name])
            for name in cases_hit
        }
        detected = all(not within(f) for f in per_case.values())
        passed &= detected
        controls[drift] = {
            "max_abs_min": min(f["max_abs"] for f in per_case.values()),
            "cos_max": max(f["cos"] for f in per_case.values()),
            "cases": list(cases_hit),
            "detected": detected,
        }
    return {
        "path": "reflex export (decomposed) -> reflex serve POST /act (PNG bytes, noise_seed) vs "
        "lerobot make_pre_post_processors + control_utils.predict_action (select_action) and "
        "predict_action_chunk",
        "units": "robot (unnormalized)",
        "export_gate": ours["gate"],
        "lerobot_preprocessor": meta["preprocessor"],
        "lerobot_postprocessor": meta["postprocessor"],
        "chunk_max_abs": max(f["chunk_max_abs"] for f in figures.values()),
        "chunk_cos": min(f["chunk_cos"] for f in figures.values()),
        "image_max_abs": max(f["preprocessing"]["image_max_abs"] for f in figures.values()),
        "state_max_abs": max(f["preprocessing"]["state_max_abs"] for f in figures.values()),
        "cases": figures,
        "negative_controls": controls,
        "passed": passed,
    }


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
    parser.add_argument(
        "--module-only", action="store_true", help="skip the served-path check (no export)"
    )
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
        served_cases = [] if args.module_only else _served_cases(TINY_SMOLVLA)
        if served_cases:
            request["served"] = _write_served_request(workdir, checkpoint, served_cases)
        (workdir / "request.json").write_text(json.dumps(request, indent=2))

        env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
        # The lerobot side runs while we export and serve (two single-threaded processes).
        log = open(workdir / "lerobot_side.log", "w+")  # noqa: SIM115 (read back below)
        reference_run = subprocess.Popen(
            # absolute() not resolve(): the venv's python is a symlink to the base interpreter.
            [str(args.reference_python.absolute()), str(HERE / "lerobot_side.py"), str(workdir)],
            cwd=workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        ours_error = None
        try:
            ours = _ours(checkpoint, cases, TINY_SMOLVLA.num_steps)
            served_ours = _served_ours(workdir, checkpoint, served_cases) if served_cases else {}
        except Exception as exc:  # reported as a failed check line, never a bare traceback
            ours_error = f"our side failed: {type(exc).__name__}: {exc}"
        finally:
            code = reference_run.wait()
        if ours_error is not None:
            sys.stderr.write(ours_error + "\n")
            print(json.dumps({"family": "smolvla", "passed": False, "error": ours_error[:2000]}))
            return 1
        if code != 0:
            log.seek(0)
            sys.stderr.write(log.read()[-12000:])
            print(
                json.dumps({"family": "smolvla", "passed": False, "error": "lerobot side failed"})
            )
            return 1
        log.close()
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
        served: dict[str, Any] | None = None
        if served_cases:
            served = _served_figures(workdir, served_cases, served_ours)
            passed &= served["passed"]
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
            **(
                {
                    "served_chunk_max_abs": served["chunk_max_abs"],
                    "served_chunk_cos": served["chunk_cos"],
                    "served": served,
                }
                if served is not None
                else {"served": "skipped (--module-only)"}
            ),
            "passed": passed,
        }
        print(json.dumps(line))
        return 0 if passed else 1


if __name__ == "__main__":
    sys.exit(main())
