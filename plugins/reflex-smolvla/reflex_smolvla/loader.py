"""The SmolVLA loader: a lerobot checkpoint directory -> :class:`LoadedPolicy` (the family seam).

The preprocessing contract is lerobot 0.4.4's SmolVLA pipeline (``processor_smolvla.py`` and
``SmolVLAPolicy.prepare_images`` / ``prepare_state``):

- images: [0, 1], resized keeping the aspect ratio (bilinear, no antialias) into
  ``resize_imgs_with_padding`` (width, height) with 0 padding on the left and top (our
  ``pad_position="bottom_right"``), then mapped to [-1, 1]; cameras in ``input_features`` order;
  a camera the observation lacks is -1 with its mask False. lerobot drops a missing camera
  instead (or fills ``empty_cameras`` of them with -1, mask False): a masked camera is the same
  model input as a dropped one, because masked tokens are neither attended to nor counted in the
  RoPE positions (``cumsum(pad) - 1``);
- prompt: the task with a trailing newline (``smolvla_new_line_processor``), tokenized with the
  SmolVLM2 tokenizer, right-padded; ``pad_language_to="longest"`` (lerobot's default) and
  ``"max_length"`` give the same actions for the same reason, so the runtime always pads to
  ``tokenizer_max_length``;
- state: normalized (``normalization_mapping``, MEAN_STD by default), zero-padded to
  ``max_state_dim``, projected into the prefix as one token: the prefix graph takes ``state``;
- actions: the first ``action_dim`` of ``max_action_dim``, unnormalized.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from reflex_core.errors import CheckpointError
from reflex_core.models.family import FlowGraphs, LoadedPolicy, LoadOptions, TokenizerSource
from reflex_core.models.lerobot import (
    ACTION_FEATURE,
    POSTPROCESSOR_FILE,
    PREPROCESSOR_FILE,
    STATE_FEATURE,
    WEIGHTS_FILE,
    claims_type,
    normalization_entry,
    read_checkpoint,
    read_normalization,
    resolve_tokenizer,
)
from reflex_core.runtime.io_spec import FlowIO, ImageIO, IOSpec, PromptIO
from reflex_smolvla.config import (
    DEFAULT_PATCH_POSITIONS,
    PATCH_POSITION_RULES,
    SmolVLAPolicyConfig,
    parse_policy_config,
)

log = logging.getLogger(__name__)

FAMILY = "smolvla"
TOKENIZER_HINT = (
    "SmolVLA uses the SmolVLM2 tokenizer of its backbone (Hub repo "
    "HuggingFaceTB/SmolVLM2-500M-Video-Instruct, file tokenizer.json; lerobot checkpoints ship "
    "none): download it once (`hf download HuggingFaceTB/SmolVLM2-500M-Video-Instruct "
    "tokenizer.json --local-dir DIR`) and pass --tokenizer DIR/tokenizer.json, or put it in the "
    "checkpoint directory"
)
#: Pad tokens we look for in a tokenizer file (SmolVLM2 pads with <|im_end|>). Padding is masked,
#: so the id never changes an action; it only has to be a valid id.
_PAD_TOKENS = ("<|im_end|>", "<pad>", "<|endoftext|>")


matches = claims_type(FAMILY)


def vision_patch_positions(options: LoadOptions) -> tuple[str, str]:
    """The ``vision_patch_positions`` model option: ``(rule, "default" | "model-option")``.

    :raises CheckpointError: ``model-option-invalid`` for a value outside
        :data:`~reflex_smolvla.config.PATCH_POSITION_RULES`.
    """
    model_options = options.model_options or {}
    if "vision_patch_positions" not in model_options:
        return DEFAULT_PATCH_POSITIONS, "default"
    value = model_options["vision_patch_positions"]
    if not isinstance(value, str) or value not in PATCH_POSITION_RULES:
        raise CheckpointError(
            f"model option vision_patch_positions={value!r} is not one of "
            f"{list(PATCH_POSITION_RULES)} (the transformers release whose SmolVLM vision patch "
            f"position ids the checkpoint was trained with; lerobot 0.4.x: "
            f"{DEFAULT_PATCH_POSITIONS})",
            slug="model-option-invalid",
            status=400,
            field="model_option",
            details={"option": "vision_patch_positions", "allowed": list(PATCH_POSITION_RULES)},
        )
    return value, "model-option"


def smolvla_io_spec(policy_config: SmolVLAPolicyConfig) -> IOSpec:
    """The preprocessing contract of a SmolVLA checkpoint (module doc)."""
    arch = policy_config.arch
    return IOSpec(
        image=ImageIO(
            cameras=policy_config.cameras,
            height=arch.image_height,
            width=arch.image_width,
            pad_value=0.0,
            pad_position="bottom_right",
            range=(-1.0, 1.0),
            missing_fill=-1.0,
        ),
        prompt=PromptIO(template="{task}", task_suffix="\n"),
        flow=FlowIO(t_start=1.0, t_end=0.0),
    )


def _pad_id(tokenizer: Path | None) -> int:
    if tokenizer is None:
        return 0
    try:
        from tokenizers import Tokenizer

        loaded = Tokenizer.from_file(str(tokenizer))
    except Exception:  # an unreadable file is reported by the export's tokenizer step
        return 0
    for token in _PAD_TOKENS:
        token_id = loaded.token_to_id(token)
        if token_id is not None:
            return int(token_id)
    return 0


def read_smolvla_normalization(
    directory: Path, policy_config: SmolVLAPolicyConfig
) -> tuple[dict[str, Any], str]:
    """State/action normalization: the processor stats files (lerobot >= 0.4) or the normalizer
    buffers inside the weights file (lerobot <= 0.3). Returns ``(normalization, source)``."""
    from reflex_smolvla.checkpoint import legacy_stats

    if (directory / PREPROCESSOR_FILE).is_file() or (directory / POSTPROCESSOR_FILE).is_file():
        return (
            read_normalization(
                directory,
                policy_config.normalization_mapping,
                policy_config.state_dim,
                policy_config.action_dim,
            ),
            "processor",
        )
    stats = legacy_stats(directory / WEIGHTS_FILE)
    modes = policy_config.normalization_mapping
    if not stats:
        log.warning("%s has neither processor files nor normalizer buffers: no stats", directory)
    return (
        {
            "state": normalization_entry(
                STATE_FEATURE, modes["STATE"], stats, policy_config.state_dim
            ),
            "action": normalization_entry(
                ACTION_FEATURE, modes["ACTION"], stats, policy_config.action_dim
            ),
        },
        "weights-buffers" if stats else "none",
    )


def load_smolvla_checkpoint(directory: Path, options: LoadOptions) -> LoadedPolicy:
    """Load a SmolVLA checkpoint directory for export.

    :raises CheckpointError: ``checkpoint-not-found``, ``checkpoint-config-invalid``,
        ``checkpoint-unsupported``, ``checkpoint-mismatch``, ``checkpoint-stats-invalid``.
    """
    import torch

    from reflex_core.models.flow import KVPrefixGraph, KVStepGraph, NamedInputsSampler, kv_names
    from reflex_smolvla.checkpoint import load_weights
    from reflex_smolvla.graphs import PREFIX_INPUTS, step_inputs
    from reflex_smolvla.modeling import build_model

    directory = Path(directory)
    weights_path, config = read_checkpoint(directory)
    patch_positions, patch_positions_source = vision_patch_positions(options)
    policy_config = parse_policy_config(config, directory, patch_positions)
    normalization, stats_source = read_smolvla_normalization(directory, policy_config)

    arch = policy_config.arch
    with torch.no_grad():
        model = build_model(arch, device="meta")
        report = load_weights(model, weights_path)
    model.eval()

    # The checkpoint's own tokenizer, else its local backbone's (tiny-smolvla's vlm/).
    tokenizer = resolve_tokenizer(options.tokenizer_file, directory, policy_config.vlm_dir)
    layers = arch.num_vlm_layers
    graphs = FlowGraphs(
        prefix=KVPrefixGraph(model, layers).eval(),
        prefix_inputs=PREFIX_INPUTS,
        prefix_outputs=[*kv_names(layers), "prefix_mask", "features"],
        step=KVStepGraph(model, layers).eval(),
        step_inputs=step_inputs(layers),
        sample_actions=NamedInputsSampler(model.sample_actions, PREFIX_INPUTS),
        relative_outputs=("past_k_*", "past_v_*"),
    )
    return LoadedPolicy(
        family=FAMILY,
        graphs=graphs,
        io=smolvla_io_spec(policy_config),
        tokenizer=TokenizerSource(
            file=tokenizer,
            max_length=policy_config.tokenizer_max_length,
            pad_id=_pad_id(tokenizer),
            add_special_tokens=True,
            hint=TOKENIZER_HINT,
        ),
        checkpoint_dir=directory,
        source=options.source,
        config=dict(config),
        chunk_size=arch.chunk_size,
        action_dim=policy_config.action_dim,
        state_dim=policy_config.state_dim,
        max_action_dim=arch.max_action_dim,
        max_state_dim=arch.max_state_dim,
        num_steps=policy_config.num_steps,
        feature_dim=arch.vlm_width,
        normalization=normalization,
        provenance={
            "pipeline": "lerobot-smolvla",
            "weights_layout": report.layout,
            "stats_source": stats_source,
            "vlm": policy_config.vlm_source,
            "pad_language_to": policy_config.pad_language_to,
            "vision_patch_positions": arch.patch_positions,
            "vision_patch_positions_source": patch_positions_source,
        },
        details={
            "num_layers": layers,
            "num_expert_layers": arch.num_expert_layers,
            "attention_mode": str(config.get("attention_mode", "cross_attn")),
            "self_attn_every_n_layers": int(config.get("self_attn_every_n_layers", 2)),
            "tokens_per_image": arch.tokens_per_image,
            "weights_cast_from": list(report.cast_from),
        },
        load_report=report,
    )
