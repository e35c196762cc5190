"""A tiny random-weight pi0.5 checkpoint re-labelled for an env's embodiment: the chance baseline
of ``reflex eval`` and the model env plugins' tests export and serve.

It is the core's built-in ``tiny-pi05`` (seeded weights; the network does not depend on the
robot's dims: state and actions are padded to 32) re-labelled as a lerobot checkpoint for one
robot: ``config.json`` and the processors' features name the robot's cameras, its state and action
sizes, and the normalizer stats come from the embodiment document (mean/std as given, min/max and
quantiles from the action ranges, the state's from mean +- 2 std). Every env plugin binds it to
its own embodiment and camera with :func:`tiny_checkpoint_writer` (``reflex_metaworld.tiny``,
``reflex_aloha.tiny``, ``reflex_robosuite.tiny``). Needs ``reflex-core[export]``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

IMAGE_PREFIX = "observation.images."


def _stats(
    mean: Sequence[float], std: Sequence[float], low: Sequence[float], high: Sequence[float]
) -> dict[str, np.ndarray]:
    lo, hi = np.asarray(low, np.float32), np.asarray(high, np.float32)
    span = hi - lo
    out = {"mean": np.asarray(mean, np.float32), "std": np.asarray(std, np.float32),
           "min": lo, "max": hi}  # fmt: skip
    for name, q in (("q01", 0.01), ("q10", 0.1), ("q50", 0.5), ("q90", 0.9), ("q99", 0.99)):
        out[name] = lo + q * span
    return out


def _relabel_features(features: dict[str, Any], inputs: Mapping[str, Any]) -> None:
    """Swap a feature table's cameras and state for ``inputs``' (the new config's)."""
    for key in [k for k in features if k.startswith(IMAGE_PREFIX)]:
        del features[key]
    features.update({k: v for k, v in inputs.items() if k.startswith(IMAGE_PREFIX)})
    features["observation.state"] = inputs["observation.state"]


def write_tiny_checkpoint(
    directory: str | Path, embodiment: Mapping[str, Any], cameras: Sequence[str]
) -> Path:
    """Write the re-labelled checkpoint into ``directory``; ``reflex export DIR --embodiment
    NAME`` takes it.

    :param embodiment: the embodiment document (the dict an ``EmbodimentSource`` loads).
    :param cameras: the camera names the policy declares (``/health`` ``model.cameras``: the
        ones ``reflex eval`` renders and sends), in order.
    """
    from safetensors.numpy import load_file, save_file

    from reflex_core.models.tiny_checkpoints import write_builtin_checkpoint

    if not cameras:
        raise ValueError("a tiny checkpoint needs at least one camera")
    directory = Path(directory)
    write_builtin_checkpoint("tiny-pi05", directory)
    norm = embodiment["normalization"]
    state_dim, action_dim = len(norm["mean_state"]), int(embodiment["action_space"]["dim"])

    config = json.loads((directory / "config.json").read_text())
    inputs = config["input_features"]
    size = next((v["shape"] for k, v in inputs.items() if k.startswith(IMAGE_PREFIX)), [3, 32, 32])
    for key in [k for k in inputs if k.startswith(IMAGE_PREFIX)]:
        del inputs[key]
    for camera in cameras:
        inputs[IMAGE_PREFIX + camera] = {"type": "VISUAL", "shape": list(size)}
    inputs["observation.state"] = {"type": "STATE", "shape": [state_dim]}
    config.setdefault("output_features", {})["action"] = {"type": "ACTION", "shape": [action_dim]}
    config.pop("reflex_builtin", None)  # no longer the built-in's bytes
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")

    mean_s, std_s = norm["mean_state"], norm["std_state"]
    state = _stats(mean_s, std_s, [m - 2 * s for m, s in zip(mean_s, std_s, strict=True)],
                   [m + 2 * s for m, s in zip(mean_s, std_s, strict=True)])  # fmt: skip
    ranges = embodiment["action_space"]["ranges"]
    action = _stats(norm["mean_action"], norm["std_action"], [r[0] for r in ranges],
                    [r[1] for r in ranges])  # fmt: skip
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        processor = json.loads((directory / name).read_text())
        for step in processor.get("steps", []):
            cfg = step.get("config") or {}
            features = cfg.get("features")
            if features is not None:
                if any(k.startswith("observation.") for k in features):
                    _relabel_features(features, inputs)
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


def tiny_checkpoint_writer(
    embodiment: Callable[[], Mapping[str, Any]], cameras: Sequence[str]
) -> Callable[[str | Path], Path]:
    """An env plugin's ``write_tiny_checkpoint(directory)``: :func:`write_tiny_checkpoint` for
    the embodiment document ``embodiment()`` returns (its ``EmbodimentSource.load``) and
    ``cameras``."""
    cameras = list(cameras)

    def write(directory: str | Path) -> Path:
        """Write the checkpoint into ``directory`` (``reflex export DIR --embodiment NAME`` takes
        it)."""
        return write_tiny_checkpoint(directory, embodiment(), cameras)

    return write


def tiny_checkpoint_labels(directory: Path) -> dict[str, Any]:
    """What a tiny checkpoint's lerobot files say about the robot (for the env plugins' tests):
    ``images`` (the config's ``observation.images.*`` keys), ``state_shape``,
    ``action_shape``, ``stats`` (every tensor of the processors' state files, by name) and
    ``processor_images`` (the image features the processors' steps name)."""
    from safetensors.numpy import load_file

    config = json.loads((directory / "config.json").read_text())
    stats: dict[str, np.ndarray] = {}
    processor_images: list[str] = []
    for name in ("policy_preprocessor.json", "policy_postprocessor.json"):
        for step in json.loads((directory / name).read_text())["steps"]:
            if step.get("state_file"):
                stats.update(load_file(str(directory / step["state_file"])))
            features = (step.get("config") or {}).get("features", {})
            processor_images += [f for f in features if f.startswith("observation.images.")]
    return {
        "images": [k for k in config["input_features"] if k.startswith("observation.images.")],
        "state_shape": config["input_features"]["observation.state"]["shape"],
        "action_shape": config["output_features"]["action"]["shape"],
        "stats": stats,
        "processor_images": processor_images,
    }
