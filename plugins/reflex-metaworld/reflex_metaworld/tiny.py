"""A tiny random-weight pi0.5 checkpoint for the ``sawyer-metaworld`` embodiment: the chance
baseline of ``reflex eval`` (and the model its tests export and serve).

It is the core's built-in ``tiny-pi05`` (seeded weights; the network does not depend on the
robot's dims: state and actions are padded to 32) re-labelled as a lerobot checkpoint for this
robot: ``config.json`` and the processors' features say one ``corner`` camera, a 21-value state
and 4 actions, and the normalizer stats are the embodiment's. Needs ``reflex-core[export]``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from reflex_metaworld.embodiment import sawyer_metaworld

CAMERA = "corner"


def _features(config: dict[str, Any], state_dim: int, action_dim: int) -> None:
    inputs = config["input_features"]
    size = None
    for key in [k for k in inputs if k.startswith("observation.images.")]:
        size = inputs.pop(key)["shape"]
    inputs[f"observation.images.{CAMERA}"] = {"type": "VISUAL", "shape": size or [3, 32, 32]}
    inputs["observation.state"] = {"type": "STATE", "shape": [state_dim]}
    config.setdefault("output_features", {})["action"] = {"type": "ACTION", "shape": [action_dim]}


def _stats(
    mean: list[float], std: list[float], low: list[float], high: list[float]
) -> dict[str, np.ndarray]:
    lo, hi = np.asarray(low, np.float32), np.asarray(high, np.float32)
    span = hi - lo
    out = {"mean": np.asarray(mean, np.float32), "std": np.asarray(std, np.float32),
           "min": lo, "max": hi}  # fmt: skip
    for name, q in (("q01", 0.01), ("q10", 0.1), ("q50", 0.5), ("q90", 0.9), ("q99", 0.99)):
        out[name] = lo + q * span
    return out


def write_tiny_checkpoint(directory: str | Path) -> Path:
    """Write the checkpoint into ``directory`` (``reflex export DIR --embodiment
    sawyer-metaworld`` takes it)."""
    from safetensors.numpy import load_file, save_file

    from reflex_core.models.tiny_checkpoints import write_builtin_checkpoint

    directory = Path(directory)
    write_builtin_checkpoint("tiny-pi05", directory)
    emb = sawyer_metaworld()
    norm = emb["normalization"]
    state_dim, action_dim = len(norm["mean_state"]), emb["action_space"]["dim"]

    config = json.loads((directory / "config.json").read_text())
    _features(config, state_dim, action_dim)
    config.pop("reflex_builtin", None)  # no longer the built-in's bytes
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    mean_s, std_s = norm["mean_state"], norm["std_state"]
    state = _stats(mean_s, std_s, [m - 2 * s for m, s in zip(mean_s, std_s, strict=True)],
                   [m + 2 * s for m, s in zip(mean_s, std_s, strict=True)])  # fmt: skip
    ranges = emb["action_space"]["ranges"]
    action = _stats(norm["mean_action"], norm["std_action"], [r[0] for r in ranges],
                    [r[1] for r in ranges])  # fmt: skip
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        processor = json.loads((directory / name).read_text())
        for step in processor.get("steps", []):
            cfg = step.get("config") or {}
            if "features" in cfg:
                features = cfg["features"]
                if any(k.startswith("observation.") for k in features):
                    for key in [k for k in features if k.startswith("observation.images.")]:
                        del features[key]
                    features[f"observation.images.{CAMERA}"] = config["input_features"][
                        f"observation.images.{CAMERA}"
                    ]
                    features["observation.state"] = config["input_features"]["observation.state"]
                if "action" in features:
                    features["action"] = config["output_features"]["action"]
            state_file = step.get("state_file")
            if state_file:
                tensors = load_file(str(directory / state_file))
                out: dict[str, np.ndarray] = {}
                for key in tensors:
                    feature, _, stat = key.rpartition(".")
                    source = state if feature == "observation.state" else action
                    out[key] = source[stat]
                save_file(out, str(directory / state_file))
        (directory / name).write_text(json.dumps(processor, indent=2) + "\n")
    return directory
