"""The built-in export modes, registered through the same hook a third-party exporter uses.

Importing this module imports no torch (``reflex serve`` imports every built-in plugin): the
exporters load :mod:`reflex_core.export.exporters` when they run.
"""

from __future__ import annotations

from reflex_core.plugin.registry import Exporter, lazy, registers

reflex_register_exporters = registers(
    Exporter(
        name="decomposed",
        export=lazy("reflex_core.export.exporters:export_decomposed"),
        description=(
            "vlm_prefix.onnx (images + prompt -> per-layer KV, once per observation) and "
            "expert_denoise.onnx (one Euler step); the runtime runs the loop (default)"
        ),
    ),
    Exporter(
        name="monolithic",
        export=lazy("reflex_core.export.exporters:export_monolithic"),
        description="policy.onnx: the prefix and the whole Euler loop (an ONNX Loop) in one graph",
    ),
)
