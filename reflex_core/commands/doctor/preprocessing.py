"""What the runtime will do to each observation, as the artifact records it."""

from __future__ import annotations

from typing import Any

from reflex_core.commands.doctor.report import PASS, Check


def preprocessing_check(artifact: Any) -> Check:
    """What the runtime will do to each observation, and which training pipeline it follows."""
    io = artifact.io
    image, prompt = io.image, io.prompt
    provenance = dict(artifact.model.get("provenance") or {})
    parts = [
        f"images {image.height}x{image.width} resize-with-pad {image.pad_position}, "
        f"pad {image.pad_value:g} (in [0, 1] units), range [{image.range[0]:g}, {image.range[1]:g}]",
        f"prompt {prompt.template!r}"
        + (f", state as {prompt.state_bins} bins" if prompt.uses_state else "")
        + (f" padded to {prompt.state_pad_to} first" if prompt.state_pad_to else ""),
        f"flow t {io.flow.t_start:g} -> {io.flow.t_end:g}",
    ]
    if provenance.get("pipeline"):
        parts.append(f"pipeline {provenance['pipeline']}")
    if provenance.get("overrides"):
        parts.append(f"overridden at export: {provenance['overrides']}")
    if provenance.get("model_options"):
        parts.append(f"model options: {provenance['model_options']}")
    if artifact.config.get("migrated_from"):
        parts.append(f"migrated from schema_version {artifact.config['migrated_from']}")
    return Check(
        "preprocessing",
        PASS,
        "; ".join(parts),
        details={"preprocessing": io.to_json(), "provenance": provenance},
    )
