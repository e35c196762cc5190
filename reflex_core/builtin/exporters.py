"""The built-in export modes, registered through the same hook a third-party exporter uses.

Importing this module imports no torch (``reflex serve`` imports every built-in plugin): the
exporters load :mod:`reflex_core.export.exporters` when they run.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.registry import Exporter


def _decomposed(policy: Any, out_dir: Path, options: Any) -> Any:
    from reflex_core.export.exporters import export_decomposed

    return export_decomposed(policy, out_dir, options)


def _monolithic(policy: Any, out_dir: Path, options: Any) -> Any:
    from reflex_core.export.exporters import export_monolithic

    return export_monolithic(policy, out_dir, options)


@hookimpl
def reflex_register_exporters(register: Callable[[Exporter], None]) -> None:
    register(
        Exporter(
            name="decomposed",
            export=_decomposed,
            description=(
                "vlm_prefix.onnx (images + prompt -> per-layer KV, once per observation) and "
                "expert_denoise.onnx (one Euler step); the runtime runs the loop (default)"
            ),
        )
    )
    register(
        Exporter(
            name="monolithic",
            export=_monolithic,
            description="policy.onnx: the prefix and the whole Euler loop (an ONNX Loop) in one graph",
        )
    )
