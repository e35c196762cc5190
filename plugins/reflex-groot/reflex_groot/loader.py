"""The GR00T N1.5 loader: a lerobot checkpoint directory -> :class:`LoadedPolicy`.

Preprocessing contract (lerobot 0.4.4 ``processor_groot.py`` and the Eagle processor):

- cameras in sorted feature-key order; each frame *stretched* to the vision tower's size as
  Eagle's image processor does with one tile (torchvision's antialiased bicubic on the uint8
  frame: the contract's ``stretch`` resize), then scaled to [0, 1] and mapped to [-1, 1] (the
  processor's mean = std = 0.5);
- the prompt: the Eagle chat turn with the image placeholders (:func:`reflex_groot.prompt.
  prompt_template`), right-padded (lerobot pads on the left at batch > 1; padding is masked
  here, so every sample gets what it gets alone);
- state and action: min/max to [-1, 1] before zero padding to ``max_state_dim`` /
  ``max_action_dim`` (``normalize_min_max`` of the pack step, stats from its ``state_file``);
  actions sliced to the feature's dim and un-normalized;
- flow: t from 0 to 1 in ``num_inference_timesteps`` Euler steps.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reflex_core.models.family import FlowGraphs, LoadedPolicy, LoadOptions, TokenizerSource
from reflex_core.models.lerobot import (
    POSTPROCESSOR_FILE,
    PREPROCESSOR_FILE,
    claims_type,
    load_stats,
    normalization_entry,
    processor_step,
    read_checkpoint,
    resolve_tokenizer,
)
from reflex_core.runtime.io_spec import FlowIO, ImageIO, IOSpec, PromptIO
from reflex_groot.config import (
    GROOT_TYPE,
    PACK_STEP,
    UNPACK_STEP,
    GrootPolicyConfig,
    parse_policy_config,
    resolve_embodiment,
)
from reflex_groot.prompt import PAD_ID, prompt_template

TOKENIZER_HINT = (
    "GR00T N1.5 uses the Eagle 2.5 tokenizer (Qwen3 BPE plus <img>, </img>, <IMG_CONTEXT>...: "
    "vocab.json, merges.txt and added_tokens.json of the Hub repo "
    "lerobot/eagle2hg-processor-groot-n1p5). Save it as one tokenizer.json, e.g. "
    "AutoTokenizer.from_pretrained(<that dir>).backend_tokenizer.save('tokenizer.json'), and "
    "pass --tokenizer PATH"
)
#: <|endoftext|> in the Qwen3 vocabulary (the Eagle tokenizer's pad).
QWEN_PAD_ID = 151643
#: Prompt-token budget for the task text beyond the fixed chat and image tokens.
TASK_TOKENS = 32
#: The task lerobot 0.4.4's GR00T processor gives an observation without one.
DEFAULT_TASK = "Perform the task."


matches = claims_type(GROOT_TYPE)


def io_spec(policy: GrootPolicyConfig) -> IOSpec:
    size = policy.image_size
    return IOSpec(
        image=ImageIO(
            cameras=policy.cameras,
            height=size,
            width=size,
            resize="stretch",
            range=(-1.0, 1.0),
            missing_fill=-1.0,
        ),
        prompt=PromptIO(
            template=prompt_template(len(policy.cameras), policy.arch.eagle.tokens_per_image),
            # lerobot's GrootPackInputsStep: no task, or an empty one, becomes this
            default_task=DEFAULT_TASK,
        ),
        flow=FlowIO(t_start=0.0, t_end=1.0),
    )


def max_length(policy: GrootPolicyConfig) -> int:
    # "<image i><img>" ~ 6 tokens, "</img>" 1, the chat frame ~ 12.
    return len(policy.cameras) * (policy.arch.eagle.tokens_per_image + 8) + 16 + TASK_TOKENS


def read_normalization(
    directory: Path, policy: GrootPolicyConfig
) -> dict[str, dict[str, Any] | None]:
    pack = processor_step(directory, PREPROCESSOR_FILE, PACK_STEP)
    unpack = processor_step(directory, POSTPROCESSOR_FILE, UNPACK_STEP)
    enabled = bool(((pack or {}).get("config") or {}).get("normalize_min_max", True))
    pre_stats = load_stats(directory, pack)
    post_stats = load_stats(directory, unpack) or pre_stats
    if not enabled:
        return {"state": {"mode": "IDENTITY"}, "action": {"mode": "IDENTITY"}}

    def entry(feature: str, stats: Mapping[str, Any], dim: int) -> dict[str, Any] | None:
        if f"{feature}.min" not in stats or f"{feature}.max" not in stats:
            return None  # lerobot leaves a feature without stats unnormalized
        return normalization_entry(feature, "MIN_MAX", stats, dim)

    return {
        "state": entry("observation.state", pre_stats, policy.state_dim),
        "action": entry("action", post_stats, policy.action_dim),
    }


def load_groot_checkpoint(directory: Path, options: LoadOptions) -> LoadedPolicy:
    """Load a GR00T N1.5 checkpoint for export.

    :raises CheckpointError: ``checkpoint-not-found``, ``checkpoint-config-invalid``,
        ``groot-base-unknown``, ``groot-option-unsupported``, ``groot-embodiment-unknown``,
        ``checkpoint-mismatch``, ``checkpoint-stats-invalid``.
    """
    import torch

    from reflex_core.models.flow import NamedInputsSampler
    from reflex_groot.graphs import (
        PREFIX_INPUTS,
        PREFIX_OUTPUTS,
        STEP_INPUTS,
        GrootPrefixGraph,
        GrootStepGraph,
    )
    from reflex_groot.modeling import GrootModel
    from reflex_groot.weights import load_weights

    directory = Path(directory)
    weights, config = read_checkpoint(directory)
    pack = processor_step(directory, PREPROCESSOR_FILE, PACK_STEP)
    policy = parse_policy_config(config, directory, pack)
    tag, slot = resolve_embodiment(policy, options.embodiment)
    normalization = read_normalization(directory, policy)

    with torch.no_grad():
        with torch.device("meta"):
            model = GrootModel(policy.arch)
        report = load_weights(model, weights)
        category = model.keep_embodiment(slot)
    model.eval()

    tokenizer = resolve_tokenizer(options.tokenizer_file, directory)
    builtin = isinstance(config.get("reflex_builtin"), Mapping)
    head = policy.arch.head
    graphs = FlowGraphs(
        prefix=GrootPrefixGraph(model, category).eval(),
        prefix_inputs=PREFIX_INPUTS,
        prefix_outputs=PREFIX_OUTPUTS,
        step=GrootStepGraph(model, category).eval(),
        step_inputs=STEP_INPUTS,
        sample_actions=NamedInputsSampler(model.sample_actions, PREFIX_INPUTS, category),
        relative_outputs=("backbone_features", "state_features"),
    )
    return LoadedPolicy(
        family=GROOT_TYPE,
        graphs=graphs,
        io=io_spec(policy),
        tokenizer=TokenizerSource(
            file=tokenizer,
            max_length=max_length(policy),
            pad_id=PAD_ID if builtin else QWEN_PAD_ID,
            add_special_tokens=False,
            hint=TOKENIZER_HINT,
        ),
        checkpoint_dir=directory,
        source=options.source,
        config=dict(config),
        chunk_size=head.action_horizon,
        action_dim=policy.action_dim,
        state_dim=policy.state_dim,
        max_action_dim=head.action_dim,
        max_state_dim=head.max_state_dim,
        num_steps=head.num_inference_timesteps,
        feature_dim=policy.arch.backbone_dim,
        normalization=normalization,
        provenance={
            "pipeline": "lerobot-0.4-groot",
            "base_config": policy.base_source,
            "eagle_config": policy.eagle_source,
            "weights_layout": report.layout,
            "image_resize": "stretch: Eagle's one-tile resize (torchvision bicubic, antialiased, "
            "on the uint8 frame)",
            "normalization": "min/max to [-1, 1]; lerobot maps a zero-range dim to 0",
        },
        details={
            "embodiment_tag": tag,
            "embodiment_id": slot,
            "embodiment_mapping": dict(policy.embodiment_mapping),
            "tokens_per_image": policy.arch.eagle.tokens_per_image,
            "select_layer": policy.arch.select_layer,
            "num_timestep_buckets": head.num_timestep_buckets,
        },
        load_report=report,
    )
