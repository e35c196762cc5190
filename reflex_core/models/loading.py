"""The pi0 / pi0.5 loader: a checkpoint directory -> :class:`LoadedPolicy` (the family seam).

Registered by the built-in plugin :mod:`reflex_core.builtin.models` through the same hook a
third-party family uses; ``reflex export`` reaches it only through the registry
(:mod:`reflex_core.models.resolve`).

The preprocessing contract follows the pipeline the checkpoint was trained with, read from the
checkpoint itself (notes/reference-implementations.md, "Preprocessing differences"):

- keys without the ``model.`` prefix: an openpi port (``lerobot/pi05_base``...): images padded
  with black (0 in [0, 1]), the pi0.5 prompt bins the unpadded state (``openpi``);
- ``model.``-prefixed keys, a config without the fields lerobot added after 0.4.4
  (``use_relative_actions``): lerobot 0.4.x, which pads the [0, 1] image with -1.0 (so -3.0 after
  mapping to [-1, 1]) and bins the state zero-padded to ``max_state_dim`` (``lerobot<0.5``);
- ``model.``-prefixed keys with those fields: lerobot >= 0.5 bins the unpadded state; its resize
  still pads the [0, 1] image with -1.0 (``lerobot>=0.5``);
- our built-in tiny checkpoints use openpi's conventions.

``reflex export --preprocess image.pad_value=0 --preprocess prompt.state_pad_to=null`` overrides
either choice; the artifact records the result and why (``provenance``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reflex_core.models.config import FAMILIES, PiPolicyConfig, parse_policy_config
from reflex_core.models.family import FlowGraphs, LoadedPolicy, LoadOptions, TokenizerSource
from reflex_core.models.lerobot import (
    LEROBOT_PREFIX,
    claims_type,
    read_checkpoint,
    read_normalization,
    resolve_tokenizer,
    weight_keys,
)
from reflex_core.runtime.io_spec import FlowIO, ImageIO, IOSpec, PromptIO

#: What real pi checkpoints need and do not ship.
TOKENIZER_HINT = (
    "pi0 / pi0.5 use the PaliGemma tokenizer (Hub repo google/paligemma-3b-pt-224, gated): "
    "download its tokenizer.json and pass --tokenizer PATH"
)
#: Config fields lerobot added after 0.4.4 (notes/lerobot-pi-checkpoints.md §2).
LEROBOT_05_FIELDS = ("use_relative_actions", "relative_exclude_joints", "action_feature_names")
PI05_TEMPLATE = "Task: {task}, State: {state};\nAction: "
STATE_BINS = 256


#: ``matches("pi0")`` / ``matches("pi05")``: the loader's claim on a ``config.json``.
matches = claims_type


def detect_pipeline(config: Mapping[str, Any], keys: list[str]) -> str:
    """Which preprocessing pipeline wrote (and trained) this checkpoint (module doc)."""
    if isinstance(config.get("reflex_builtin"), Mapping):
        return "reflex-builtin"
    if not any(k.startswith(LEROBOT_PREFIX) for k in keys):
        return "openpi"
    if any(field in config for field in LEROBOT_05_FIELDS):
        return "lerobot>=0.5"
    return "lerobot<0.5"


def pi_io_spec(policy_config: PiPolicyConfig, pipeline: str) -> IOSpec:
    """The preprocessing contract of a pi0 / pi0.5 checkpoint trained with ``pipeline``."""
    height, width = policy_config.image_size
    lerobot = pipeline.startswith("lerobot")
    image = ImageIO(
        cameras=policy_config.camera_names,
        height=height,
        width=width,
        pad_value=-1.0 if lerobot else 0.0,
        pad_position="center",
        range=(-1.0, 1.0),
        missing_fill=-1.0,
    )
    if policy_config.family == "pi05":
        prompt = PromptIO(
            template=PI05_TEMPLATE,
            clean_task=True,
            state_bins=STATE_BINS,
            state_pad_to=policy_config.max_state_dim if pipeline == "lerobot<0.5" else None,
        )
    else:
        prompt = PromptIO(template="{task}", task_suffix="\n")
    return IOSpec(image=image, prompt=prompt, flow=FlowIO(t_start=1.0, t_end=0.0))


def load_pi_checkpoint(directory: Path, options: LoadOptions) -> LoadedPolicy:
    """Load a pi0 / pi0.5 checkpoint directory for export (both on-disk layouts).

    :raises CheckpointError: ``checkpoint-not-found``, ``checkpoint-config-invalid``,
        ``checkpoint-unsupported``, ``checkpoint-mismatch``, ``checkpoint-stats-invalid``.
    """
    import torch

    from reflex_core.models.checkpoint import load_model_weights
    from reflex_core.models.flow import KVPrefixGraph, NamedInputsSampler, kv_names
    from reflex_core.models.modeling import build_model
    from reflex_core.models.pi_graphs import PREFIX_INPUTS, SAMPLE_INPUTS, PiExpertGraph

    directory = Path(directory)
    weights_path, config = read_checkpoint(directory)
    policy_config = parse_policy_config(config)
    normalization = read_normalization(
        directory,
        policy_config.normalization_mapping,
        policy_config.state_dim,
        policy_config.action_dim,
    )
    pipeline = detect_pipeline(config, weight_keys(weights_path))

    arch = policy_config.architecture
    with torch.no_grad():
        model = build_model(arch, device="meta")
        report = load_model_weights(model, weights_path)
    model.eval()

    tokenizer = resolve_tokenizer(options.tokenizer_file, directory)
    layers = arch.vlm.depth
    kv = kv_names(layers)
    uses_state = policy_config.family != "pi05"  # pi0.5 reads the state from the prompt
    step_inputs = ["x_t", "t", *(["state"] if uses_state else []), "prefix_mask", *kv]
    graphs = FlowGraphs(
        prefix=KVPrefixGraph(model, layers).eval(),
        prefix_inputs=PREFIX_INPUTS,
        prefix_outputs=[*kv, "prefix_mask", "features"],
        step=PiExpertGraph(model, layers, policy_config.max_state_dim, uses_state).eval(),
        step_inputs=step_inputs,
        sample_actions=NamedInputsSampler(model.sample_actions, SAMPLE_INPUTS),
        relative_outputs=("past_k_*", "past_v_*"),
    )
    return LoadedPolicy(
        family=policy_config.family,
        graphs=graphs,
        io=pi_io_spec(policy_config, pipeline),
        tokenizer=TokenizerSource(
            file=tokenizer,
            max_length=policy_config.tokenizer_max_length,
            pad_id=0,
            add_special_tokens=True,
            hint=TOKENIZER_HINT,
        ),
        checkpoint_dir=directory,
        source=options.source,
        config=dict(config),
        chunk_size=policy_config.chunk_size,
        action_dim=policy_config.action_dim,
        state_dim=policy_config.state_dim,
        max_action_dim=policy_config.max_action_dim,
        max_state_dim=policy_config.max_state_dim,
        num_steps=policy_config.num_steps,
        feature_dim=arch.vlm.width,
        normalization=normalization,
        provenance={"pipeline": pipeline, "weights_layout": report.layout},
        details={"num_layers": layers},
        load_report=report,
    )


__all__ = ["FAMILIES", "detect_pipeline", "load_pi_checkpoint", "matches", "pi_io_spec"]
