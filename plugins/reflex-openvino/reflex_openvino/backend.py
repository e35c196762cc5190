"""The OpenVINO runtime as a Reflex runtime backend: ``--providers openvino[-bf16|-int8]``.

It reads the artifact's own ONNX files (no second export), compiles them for the CPU, and hands
the runners sessions with onnxruntime's surface (:class:`~reflex_openvino.session.OVSession`).

Precision is never silent:

- ``openvino`` runs fp32 (``INFERENCE_PRECISION_HINT=f32``; without it OpenVINO picks bf16 by
  itself on CPUs that have it);
- ``openvino-bf16`` needs a CPU with bf16 (OpenVINO's ``OPTIMIZATION_CAPABILITIES`` lists
  ``BF16``: AVX512-BF16 or AMX); elsewhere OpenVINO would quietly run fp32, so the probe refuses
  it and the compiled model's precision is checked again after compiling. The precision-sensitive
  parts stay fp32 (:func:`reflex_openvino.precision.keep_fp32`);
- ``openvino-int8`` runs the statically quantized graphs ``reflex openvino gate --precision int8``
  calibrated and wrote.

``bf16`` and ``int8`` change the numbers, so they are served only after their precision gate
passed for this very artifact, on this backend version and CPU
(:mod:`reflex_openvino.gate` writes ``DIR/backends/openvino/<precision>/gate_report.json``);
without it, or when it failed, loading is refused (``precision-gate-missing`` /
``precision-gate-failed`` / ``precision-gate-stale``).
"""

from __future__ import annotations

import json
import os
from functools import cache
from pathlib import Path
from typing import Any

from reflex_core.errors import ConfigError

#: backend name -> precision
BACKENDS: dict[str, str] = {"openvino": "fp32", "openvino-bf16": "bf16", "openvino-int8": "int8"}
#: OpenVINO's name of each precision (``INFERENCE_PRECISION_HINT``); int8 graphs run with f32
#: as the precision of what is not quantized.
HINTS: dict[str, str] = {"fp32": "f32", "bf16": "bf16", "int8": "f32"}
#: the ``OPTIMIZATION_CAPABILITIES`` entry each precision needs.
CAPABILITY: dict[str, str] = {"fp32": "FP32", "bf16": "BF16", "int8": "INT8"}
GATED = ("bf16", "int8")
GATE_REPORT = "gate_report.json"


def gate_dir(artifact_dir: Path, precision: str) -> Path:
    """Where the gate of one precision keeps its report (and, for int8, its graphs)."""
    return Path(artifact_dir) / "backends" / "openvino" / precision


@cache
def _core() -> Any:
    import openvino as ov

    return ov.Core()


def capabilities() -> list[str]:
    """What OpenVINO says this CPU can run (``FP32``, ``BF16``, ``INT8``...)."""
    return [str(c) for c in _core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")]


def version() -> str:
    import openvino as ov

    return str(ov.__version__)


def cpu_name() -> str:
    return str(_core().get_property("CPU", "FULL_DEVICE_NAME"))


def probe(precision: str) -> str | None:
    """None when ``precision`` can run here, else why not (never raises)."""
    try:
        import openvino  # noqa: F401
    except ImportError as exc:
        return f"the openvino package is not installed ({exc}); pip install openvino"
    try:
        caps = capabilities()
    except Exception as exc:  # a broken install raises from C++
        return f"OpenVINO cannot use the CPU: {exc}"
    need = CAPABILITY[precision]
    if need not in caps:
        return (
            f"this CPU ({cpu_name()}) has no {need} support (OpenVINO reports "
            f"{', '.join(caps)}); OpenVINO would run fp32 instead. {precision} needs "
            + ("AVX512-BF16 or AMX" if precision == "bf16" else "an x86 CPU with int8 kernels")
        )
    return None


def cache_dir() -> Path:
    base = Path(os.environ.get("REFLEX_CACHE_DIR") or Path.home() / ".cache" / "reflex")
    return base / "openvino"


def read_gate(artifact: Any, precision: str) -> dict[str, Any]:
    """The passing gate report of ``precision`` for this artifact, or a ConfigError saying why
    it may not be served."""
    path = gate_dir(artifact.directory, precision) / GATE_REPORT
    hint = f"run `reflex openvino gate {artifact.directory} --precision {precision}` first"
    if not path.is_file():
        raise ConfigError(
            f"openvino-{precision}: no precision gate report for this artifact ({path}); "
            f"{precision} changes the actions, so it is served only after its gate passed: {hint}",
            slug="precision-gate-missing",
            field="providers",
        )
    report = json.loads(path.read_text(encoding="utf-8"))
    stale = {
        "artifact": (report.get("artifact_config_sha256"), artifact.config_sha256),
        "openvino": (report.get("openvino"), version()),
        "cpu": (report.get("cpu"), cpu_name()),
    }
    changed = {k: v for k, v in stale.items() if v[0] != v[1]}
    if changed:
        raise ConfigError(
            f"openvino-{precision}: the gate report was made for another "
            + ", ".join(f"{k} ({v[0]!r}, now {v[1]!r})" for k, v in changed.items())
            + f"; {hint}",
            slug="precision-gate-stale",
            field="providers",
        )
    if not report.get("passed"):
        worst = report.get("worst", {})
        raise ConfigError(
            f"openvino-{precision} failed its precision gate for this artifact (worst case: max "
            f"abs {worst.get('max_abs_error')} allowed {worst.get('allowed_abs')}, cos "
            f"{worst.get('cosine')} min {report.get('thresholds', {}).get('min_cos')}); it is "
            "not served. Serve fp32 (--providers openvino or cpu)",
            slug="precision-gate-failed",
            field="providers",
            details={"report": str(path)},
        )
    return report


def graph_file(artifact: Any, role: str, precision: str) -> Path:
    """The ONNX (fp32, bf16) or quantized IR (int8) file of ``role``."""
    if precision == "int8":
        path = gate_dir(artifact.directory, "int8") / f"{role}.xml"
        if not path.is_file():
            raise ConfigError(
                f"openvino-int8: the quantized graph {path} is missing; run `reflex openvino "
                f"gate {artifact.directory} --precision int8`",
                slug="precision-gate-missing",
                field="providers",
            )
        return path
    return Path(artifact.graph_path(role))


def compile_graph(
    path: Path, precision: str, *, threads: int | None, role: str, use_cache: bool = True
) -> tuple[Any, list[str]]:
    """Read and compile one graph; fails when OpenVINO would not run the precision asked.

    :returns: (the compiled model, the graph's output names in order).
    """
    from reflex_core.runtime.sessions import default_thread_count
    from reflex_openvino.precision import keep_fp32
    from reflex_openvino.session import output_names

    core = _core()
    model = core.read_model(str(path))
    if precision == "bf16":
        keep_fp32(model)
    config: dict[str, Any] = {
        "INFERENCE_NUM_THREADS": int(threads or default_thread_count()),
        "NUM_STREAMS": 1,
        "PERFORMANCE_HINT": "LATENCY",
        "INFERENCE_PRECISION_HINT": HINTS[precision],
        # a shared robot computer: do not pin the inference threads to cores
        "ENABLE_CPU_PINNING": False,
    }
    if use_cache:
        directory = cache_dir()
        directory.mkdir(parents=True, exist_ok=True)
        config["CACHE_DIR"] = str(directory)
    names = output_names(model)
    compiled = core.compile_model(model, "CPU", config)
    got = str(compiled.get_property("INFERENCE_PRECISION_HINT")).replace("<Type: '", "")
    want = {"f32": "float32", "bf16": "bfloat16"}[HINTS[precision]]
    if want not in got:
        raise ConfigError(
            f"OpenVINO compiled {path.name} for {got.rstrip(chr(39) + '>')} instead of {want}",
            slug="provider-unavailable",
            field="providers",
        )
    return compiled, names


def open_session(
    artifact: Any,
    role: str,
    *,
    threads: int | None = None,
    precision: str = "fp32",
    require_gate: bool = True,
    observer: Any = None,
    path: Path | None = None,
) -> Any:
    """An :class:`~reflex_openvino.session.OVSession` for graph ``role`` of ``artifact``."""
    from reflex_openvino.session import OVSession

    why = probe(precision)
    if why is not None:
        raise ConfigError(
            f"openvino-{precision}: {why}", slug="provider-unavailable", field="providers"
        )
    if precision in GATED and require_gate:
        read_gate(artifact, precision)
    graph = path or graph_file(artifact, role, precision)
    compiled, names = compile_graph(graph, precision, threads=threads, role=role)
    name = "openvino" if precision == "fp32" else f"openvino-{precision}"
    label = f"{name} (OpenVINO {version()}, CPU, {precision})"
    return OVSession(compiled, label, observer, names)


def backend_specs() -> list[Any]:
    """The three :class:`~reflex_core.plugin.registry.RuntimeBackend` registrations."""
    from functools import partial

    from reflex_core.plugin.registry import RuntimeBackend

    descriptions = {
        "fp32": "OpenVINO runtime on the artifact's ONNX graphs, fp32",
        "bf16": "OpenVINO, bf16 matrix math (AMX / AVX512-BF16), norms, softmax and time "
        "embedding in fp32; served after its precision gate passed",
        "int8": "OpenVINO, static int8 weights and activations of the linear layers (calibrated "
        "by `reflex openvino gate --precision int8`); served after its gate passed",
    }
    return [
        RuntimeBackend(
            name=name,
            probe=partial(probe, precision),
            open_session=partial(open_session, precision=precision),
            description=descriptions[precision],
        )
        for name, precision in BACKENDS.items()
    ]
