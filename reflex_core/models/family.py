"""The model-family seam: what a family's loader hands ``reflex export``.

A family (pi0, pi0.5, SmolVLA, GR00T, a third party's) registers a
:class:`reflex_core.plugin.registry.ModelLoader` through ``reflex_register_model_loaders``. Its
``load(checkpoint_dir, options)`` returns a :class:`LoadedPolicy`: the torch graphs to trace
(:class:`FlowGraphs`) plus every fact the artifact records (dims, the preprocessing contract
:class:`~reflex_core.runtime.io_spec.IOSpec`, normalization statistics, the tokenizer). The
exporters, the parity gate and the runtime only ever see these, never a family name.

torch-free at import (the plugin modules that register loaders are imported when serving).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import attrs

from reflex_core.runtime.io_spec import IOSpec

#: The inputs a prefix graph may take, built by the runtime from the observation:
#: ``images`` float32 (B, N, 3, H, W) in the image range, ``image_masks`` bool (B, N),
#: ``tokens`` int64 (B, L), ``token_masks`` bool (B, L), ``state`` float32 (B, max_state_dim)
#: normalized and zero-padded.
OBSERVATION_INPUTS = ("images", "image_masks", "tokens", "token_masks", "state")
#: The inputs the runtime feeds a denoising step besides prefix outputs: ``x_t`` float32
#: (B, chunk_size, max_action_dim), ``t`` float32 (B,), and optionally ``state``.
STEP_OWN_INPUTS = ("x_t", "t", "state")


@attrs.frozen(eq=False)
class FlowGraphs:
    """A flow-matching policy cut into the two graphs the exporters trace.

    :ivar prefix: a torch module, ``forward(*prefix_inputs) -> tuple`` in ``prefix_outputs``
        order: run once per observation (the VLM: per-layer KV cache, backbone features...).
        An output named ``features`` (float32 (B, F)) is the pooled observation feature the
        A2C2 wedge reads; ``prefix_mask`` and the rest are free names.
    :ivar prefix_inputs: names from :data:`OBSERVATION_INPUTS`, in ``forward`` order.
    :ivar step: a torch module, ``forward(*step_inputs) -> velocity`` (B, chunk_size,
        max_action_dim): one denoising step.
    :ivar step_inputs: ``x_t``, ``t``, optionally ``state``, and prefix output names.
    :ivar sample_actions: the eager end-to-end reference, ``(inputs, noise, num_steps) ->
        actions`` where ``inputs`` maps :data:`OBSERVATION_INPUTS` names to tensors: the whole
        Euler loop as the family's own code runs it (the parity gate compares the runtime's
        result with it).
    :ivar relative_outputs: fnmatch patterns of prefix outputs whose error is judged relative to
        their scale (KV caches, hidden states); ``features`` always is.
    """

    prefix: Any
    prefix_inputs: tuple[str, ...] = attrs.field(converter=tuple)
    prefix_outputs: tuple[str, ...] = attrs.field(converter=tuple)
    step: Any
    step_inputs: tuple[str, ...] = attrs.field(converter=tuple)
    sample_actions: Callable[[Mapping[str, Any], Any, int], Any]
    relative_outputs: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    def __attrs_post_init__(self) -> None:
        unknown = [n for n in self.prefix_inputs if n not in OBSERVATION_INPUTS]
        if unknown:
            raise ValueError(f"prefix inputs {unknown} are not among {OBSERVATION_INPUTS}")
        if "x_t" not in self.step_inputs:
            raise ValueError("the denoising step must take x_t")
        stray = [
            n for n in self.step_inputs if n not in STEP_OWN_INPUTS and n not in self.prefix_outputs
        ]
        if stray:
            raise ValueError(f"step inputs {stray} are neither own inputs nor prefix outputs")


@attrs.frozen
class TokenizerSource:
    """The tokenizer a checkpoint needs.

    :ivar file: a ``tokenizer.json`` (the checkpoint's own, or ``--tokenizer``), or None when
        none was found: export then fails with ``tokenizer-missing`` and prints ``hint``.
    :ivar hint: which tokenizer the family needs and where to get it (real lerobot repos ship
        none), e.g. the PaliGemma or SmolVLM2 tokenizer's Hub id.
    """

    file: Path | None
    max_length: int
    pad_id: int = 0
    add_special_tokens: bool = True
    hint: str = ""


@attrs.frozen
class LoadOptions:
    """What ``reflex export`` passes a loader besides the checkpoint directory.

    :ivar source: what the user named (built-in name, directory or Hub id).
    :ivar tokenizer_file: ``--tokenizer``, or None.
    :ivar embodiment: the ``--embodiment`` config, or None (GR00T picks its per-embodiment
        weights from it).
    :ivar preprocess: ``--preprocess KEY=VALUE`` overrides of the contract (applied by the core
        after the loader returns; a loader may read them, e.g. to warn).
    :ivar model_options: ``--model-option KEY=VALUE``: settings of the model itself that are not
        preprocessing (a graph constant a checkpoint's training version fixed); only keys the
        loader declared in ``ModelLoader.model_options`` get here.
    """

    source: str
    tokenizer_file: Path | None = None
    embodiment: Any = None
    preprocess: Mapping[str, Any] = attrs.field(factory=dict)
    model_options: Mapping[str, Any] = attrs.field(factory=dict)


@attrs.frozen(eq=False)
class LoadedPolicy:
    """A checkpoint loaded for export: its graphs and every fact the artifact records.

    ``normalization`` is ``{"state": entry, "action": entry}`` where an entry is
    ``{"mode": "QUANTILES"|"MEAN_STD"|..., <stat>: np.ndarray (dim,) float32}`` with the stats
    the mode needs, ``{"mode": "IDENTITY"}``, or None when the checkpoint has no statistics.

    :ivar io: the preprocessing contract (cameras, image size, prompt, flow schedule).
    :ivar provenance: facts about how the contract was chosen (e.g. ``{"pipeline":
        "lerobot<0.5"}``), recorded in the artifact and shown by ``reflex doctor``.
    :ivar details: family-specific facts recorded in the artifact's ``model`` block.
    """

    family: str
    graphs: FlowGraphs | None
    io: IOSpec
    tokenizer: TokenizerSource
    checkpoint_dir: Path
    source: str
    config: Mapping[str, Any]
    chunk_size: int
    action_dim: int
    state_dim: int
    max_action_dim: int
    max_state_dim: int
    num_steps: int
    feature_dim: int
    normalization: Mapping[str, Mapping[str, Any] | None]
    provenance: Mapping[str, Any] = attrs.field(factory=dict)
    details: Mapping[str, Any] = attrs.field(factory=dict)
    load_report: Any = None

    # Convenience views the exporters and the gate use.
    @property
    def camera_names(self) -> tuple[str, ...]:
        return self.io.image.cameras

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.io.image.height, self.io.image.width)
