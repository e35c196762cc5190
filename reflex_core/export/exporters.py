"""The two built-in export modes: ``decomposed`` and ``monolithic``.

An exporter takes a loaded policy (:class:`reflex_core.models.LoadedPolicy`), writes its ONNX
graphs into a directory and describes them (:class:`ExportedGraph`); the pipeline then runs the
parity gate and writes the manifest. Every graph comes with the torch module it was exported
from, called with the same flat inputs, so the gate can compare each graph with its reference.

Graphs are exported one at a time and their ONNX programs are dropped once saved, so peak memory
stays near the model's own size plus one graph.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs
import numpy as np

from reflex_core.artifact import TensorSpec
from reflex_core.errors import ConfigError, ReflexError
from reflex_core.export.compose import wants_external_data
from reflex_core.export.progress import SILENT, Progress

log = logging.getLogger(__name__)

PRECISIONS = ("fp32", "fp16")
MONOLITHIC_LOOPS = ("loop", "unrolled")
#: Upper bound of the dynamic batch axis (torch.export needs one; ORT ignores it).
MAX_BATCH = 4096
#: Example batch for tracing: 2, so torch.export does not specialize the batch axis to 1.
EXAMPLE_BATCH = 2


class ExportFailed(ReflexError):
    """torch.onnx could not export a graph (an unsupported op, a data-dependent branch)."""

    slug = "export-failed"


@attrs.frozen
class ExportOptions:
    """What every exporter receives.

    :ivar num_steps: Euler steps (baked into a monolithic graph; the decomposed runtime reads
        it from the manifest).
    :ivar opset: ONNX opset, None for torch's default.
    :ivar precision: ``fp32`` or ``fp16`` (weights and activations in half precision; the flow
        time, its sinusoidal embedding and RoPE stay fp32; graph inputs/outputs stay fp32).
    :ivar external_data: force (True) or forbid (False) ONNX external data; None uses it for
        graphs whose weights exceed 64 MB (saving those inline costs two extra copies in memory;
        above ~2 GB external data is required and used regardless).
    :ivar monolithic_loop: ``loop`` (the exported expert step inside an ONNX Loop) or
        ``unrolled`` (N copies of the expert traced from torch; slow to export).
    """

    num_steps: int
    opset: int | None = None
    precision: str = "fp32"
    external_data: bool | None = None
    monolithic_loop: str = "loop"
    progress: Progress = SILENT

    def __attrs_post_init__(self) -> None:
        if self.num_steps < 1:
            raise ConfigError(f"num_steps must be >= 1, got {self.num_steps}", field="num_steps")
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {PRECISIONS}, got {self.precision!r}",
                field="precision",
            )
        if self.monolithic_loop not in MONOLITHIC_LOOPS:
            raise ConfigError(
                f"monolithic_loop must be one of {MONOLITHIC_LOOPS}", field="monolithic_loop"
            )


@attrs.frozen(eq=False)
class ExportedGraph:
    """One ONNX graph an exporter wrote.

    :ivar name: the graph's role (``vlm_prefix``, ``expert_denoise``, ``policy``).
    :ivar file: file name inside the output directory.
    :ivar inputs: as declared by the ONNX file (names, shapes with ``batch``, numpy dtypes).
    :ivar reference: the fp32 torch module the graph was exported from (an fp16 graph is
        converted after export); ``reference(*feeds in torch_inputs order)`` returns the
        outputs in ``outputs`` order. The parity gate compares the graph with it.
    :ivar torch_inputs: the reference's positional input names.
    :ivar external_data_file: the ``.data`` file beside ``file`` (large graphs), or None.
    :ivar seconds: wall time of torch.onnx.export plus saving.
    :ivar notes: how it was exported (e.g. the monolithic loop form).
    :ivar reference_role: how :func:`rebuild_reference` rebuilds ``reference`` from a freshly
        loaded policy (``prefix``, ``step`` or ``policy``), so the gate's torch half can run in
        a process of its own (:mod:`reflex_core.export.stages`); None: only the exporter's own
        process has the reference, and the export stays in one process.
    """

    name: str
    file: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    reference: Any
    torch_inputs: tuple[str, ...]
    external_data_file: str | None = None
    seconds: float = 0.0
    notes: dict[str, Any] = attrs.field(factory=dict)
    reference_role: str | None = None


REFERENCE_ROLES = ("prefix", "step", "policy")


def rebuild_reference(policy: Any, graph: ExportedGraph, num_steps: int) -> Any:
    """The torch module ``graph`` was exported from, rebuilt from ``policy`` (a fresh load of
    the same checkpoint) by the graph's ``reference_role``."""
    graphs = policy.graphs
    if graph.reference_role == "prefix":
        return graphs.prefix
    if graph.reference_role == "step":
        return graphs.step
    if graph.reference_role == "policy":
        from reflex_core.export.wrappers import PolicyGraph

        flow = policy.io.flow
        return PolicyGraph(
            graphs, monolithic_inputs(graphs), flow.times(num_steps), flow.dt(num_steps)
        )
    raise ValueError(f"graph {graph.name!r} has no rebuildable reference")


# ----------------------------------------------------------------------------------------------
# Shared helpers
# ----------------------------------------------------------------------------------------------


def example_inputs(
    policy: Any, names: Sequence[str], batch: int = EXAMPLE_BATCH
) -> tuple[Any, ...]:
    """Tracing examples for observation inputs (values do not matter, shapes and dtypes do)."""
    import torch

    gen = torch.Generator().manual_seed(0)
    n = len(policy.camera_names)
    h, w = policy.image_size
    length = policy.tokenizer.max_length
    token_masks = torch.arange(length)[None, :].expand(batch, length) < max(1, length // 2)
    make = {
        "images": lambda: torch.rand(batch, n, 3, h, w, generator=gen) * 2 - 1,
        "image_masks": lambda: torch.ones(batch, n, dtype=torch.bool),
        "tokens": lambda: torch.randint(0, 100, (batch, length), generator=gen, dtype=torch.int64),
        "token_masks": lambda: token_masks.contiguous(),
        "state": lambda: torch.randn(batch, policy.max_state_dim, generator=gen),
    }
    return tuple(make[name]() for name in names)


def _onnx_dtype_name(elem_type: int) -> str:
    from onnx import helper

    return str(np.dtype(helper.tensor_dtype_to_np_dtype(elem_type)))


def read_graph_io(path: Path) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...], int]:
    """Declared inputs, outputs and the default-domain opset of a saved ONNX file (weights in
    external data are not read)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)

    def specs(values: Sequence[Any]) -> tuple[TensorSpec, ...]:
        out = []
        for v in values:
            tt = v.type.tensor_type
            shape = tuple(
                d.dim_value if d.HasField("dim_value") else (d.dim_param or "?")
                for d in tt.shape.dim
            )
            out.append(TensorSpec(v.name, shape, _onnx_dtype_name(tt.elem_type)))
        return tuple(out)

    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 0)
    inputs, outputs = specs(model.graph.input), specs(model.graph.output)
    del model
    return inputs, outputs, int(opset)


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """Silence exporter chatter nobody can act on, keeping stderr for our own progress: a log
    warning per missing optional op library (torchvision), the optimizer's per-pass INFO logs,
    pytree deprecation notices raised from torch internals, and the note that two dynamic axes
    share the name ``batch``."""
    names = ["torch.onnx._internal.exporter._registration", "torch.onnx", "onnx_ir", "onnxscript"]
    saved = [(logging.getLogger(n), logging.getLogger(n).level) for n in names]
    for logger, _ in saved:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, message=".*LeafSpec.*")
            warnings.filterwarnings(
                "ignore", category=UserWarning, message=".*axis name.*will not be used.*"
            )
            yield
    finally:
        for logger, level in saved:
            logger.setLevel(level)


def export_graph(
    module: Any,
    args: tuple[Any, ...],
    path: Path,
    *,
    input_names: Sequence[str],
    output_names: Sequence[str],
    dynamic_shapes: Any,
    options: ExportOptions,
) -> tuple[str | None, float]:
    """``torch.onnx.export(dynamo=True)`` one module and save it; returns (external data file
    name or None, seconds)."""
    import torch

    start = time.perf_counter()
    try:
        with _quiet_exporter(), torch.no_grad():
            program = torch.onnx.export(
                module,
                args,
                dynamo=True,
                dynamic_shapes=dynamic_shapes,
                input_names=list(input_names),
                output_names=list(output_names),
                opset_version=options.opset,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:  # torch raises many types; the user needs the graph name
        raise ExportFailed(
            f"torch.onnx.export failed for graph {path.stem!r}: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}",
            details={"graph": path.stem},
        ) from exc
    assert program is not None
    if options.precision == "fp16":
        from reflex_core.export.fp16 import convert_program_to_fp16

        try:
            convert_program_to_fp16(program)
        except ReflexError:
            raise
        except Exception as exc:  # onnx_ir raises plain errors on graphs it cannot rewrite
            raise ExportFailed(
                f"fp16 conversion failed for graph {path.stem!r}: {type(exc).__name__}: {exc}"
            ) from exc
    data = path.with_name(path.name + ".data")
    program.save(str(path), external_data=wants_external_data(program.model, options.external_data))
    del program
    gc.collect()
    return (data.name if data.exists() else None), time.perf_counter() - start


def _batch_dim() -> Any:
    import torch

    return torch.export.Dim("batch", min=1, max=MAX_BATCH)


def batch_shapes(module: Any, args: Sequence[Any]) -> tuple[Any, ...]:
    """``dynamic_shapes`` making axis 0 of every argument the batch: one spec per parameter, and
    ONE nested tuple for a ``*args`` forward (torch.export's rule for varargs)."""
    import inspect

    batch = _batch_dim()
    specs = tuple({0: batch} for _ in args)
    params = list(inspect.signature(module.forward).parameters.values())
    if any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params):
        fixed = [p for p in params if p.kind is not inspect.Parameter.VAR_POSITIONAL]
        return (*specs[: len(fixed)], specs[len(fixed) :])
    return specs


def _describe(
    name: str,
    out_dir: Path,
    reference: Any,
    torch_inputs: Sequence[str],
    external: str | None,
    seconds: float,
    notes: dict[str, Any] | None = None,
    *,
    role: str | None = None,
) -> ExportedGraph:
    inputs, outputs, opset = read_graph_io(out_dir / f"{name}.onnx")
    return ExportedGraph(
        name=name,
        file=f"{name}.onnx",
        inputs=inputs,
        outputs=outputs,
        reference=reference,
        torch_inputs=tuple(torch_inputs),
        external_data_file=external,
        seconds=seconds,
        notes={"opset": opset, **(notes or {})},
        reference_role=role,
    )


def _export_traced(
    name: str,
    module: Any,
    args: tuple[Any, ...],
    input_names: Sequence[str],
    output_names: Sequence[str],
    out_dir: Path,
    options: ExportOptions,
    *,
    role: str,
    notes: dict[str, Any] | None = None,
    label: str | None = None,
) -> ExportedGraph:
    """Trace ``module`` on ``args`` into ``NAME.onnx`` (batch axis dynamic) and describe it."""
    with options.progress.step(label or f"exporting {name}.onnx"):
        external, seconds = export_graph(
            module,
            args,
            out_dir / f"{name}.onnx",
            input_names=input_names,
            output_names=output_names,
            dynamic_shapes=batch_shapes(module, args),
            options=options,
        )
    return _describe(name, out_dir, module, input_names, external, seconds, notes, role=role)


# ----------------------------------------------------------------------------------------------
# Decomposed
# ----------------------------------------------------------------------------------------------


def _step_example(policy: Any, prefix_outputs: Mapping[str, Any], state: Any) -> tuple[Any, ...]:
    """Tracing examples for the step's inputs: x_t, t, state and the real prefix outputs."""
    import torch

    graphs = policy.graphs
    gen = torch.Generator().manual_seed(1)
    own = {
        "x_t": torch.randn(EXAMPLE_BATCH, policy.chunk_size, policy.max_action_dim, generator=gen),
        "t": torch.full((EXAMPLE_BATCH,), 0.5),
        "state": state,
    }
    return tuple(own[name] if name in own else prefix_outputs[name] for name in graphs.step_inputs)


def export_decomposed(policy: Any, out_dir: Path, options: ExportOptions) -> list[ExportedGraph]:
    """``vlm_prefix.onnx`` (once per observation) and ``expert_denoise.onnx`` (one Euler step),
    traced from the family's :class:`~reflex_core.models.family.FlowGraphs`."""
    import torch

    out_dir = Path(out_dir)
    graphs = policy.graphs

    prefix_args = example_inputs(policy, graphs.prefix_inputs)
    prefix = _export_traced(
        "vlm_prefix",
        graphs.prefix,
        prefix_args,
        graphs.prefix_inputs,
        graphs.prefix_outputs,
        out_dir,
        options,
        role="prefix",
    )

    with torch.no_grad():
        outputs = graphs.prefix(*prefix_args)
    prefix_outputs = dict(zip(graphs.prefix_outputs, outputs, strict=True))
    (state,) = example_inputs(policy, ["state"])
    step_args = _step_example(policy, prefix_outputs, state)
    step = _export_traced(
        "expert_denoise",
        graphs.step,
        step_args,
        graphs.step_inputs,
        ["velocity"],
        out_dir,
        options,
        role="step",
    )
    return [prefix, step]


# ----------------------------------------------------------------------------------------------
# Monolithic
# ----------------------------------------------------------------------------------------------


def monolithic_inputs(graphs: Any) -> list[str]:
    """The monolithic graph's inputs: the prefix's, then observation inputs only the step takes
    (pi0's state), then the noise."""
    extra = [
        n
        for n in graphs.step_inputs
        if n not in graphs.prefix_outputs
        and n not in ("x_t", "t")
        and n not in graphs.prefix_inputs
    ]
    return [*graphs.prefix_inputs, *extra, "noise"]


def export_monolithic(policy: Any, out_dir: Path, options: ExportOptions) -> list[ExportedGraph]:
    """``policy.onnx``: the prefix once and the whole Euler loop in one graph.

    ``monolithic_loop="loop"`` (default) exports the prefix and one denoising step and joins
    them with an ONNX ``Loop`` (:mod:`reflex_core.export.compose`): the export costs what the
    decomposed mode costs. ``"unrolled"`` traces the N-step loop from torch (N copies of the
    step; export time grows N-fold).
    """
    import shutil

    from reflex_core.export.compose import compose_monolithic
    from reflex_core.export.wrappers import PolicyGraph

    out_dir = Path(out_dir)
    graphs = policy.graphs
    flow = policy.io.flow
    names = monolithic_inputs(graphs)
    reference = PolicyGraph(
        graphs, names, flow.times(options.num_steps), flow.dt(options.num_steps)
    )
    notes: dict[str, Any] = {"loop": options.monolithic_loop, "num_steps": options.num_steps}
    path = out_dir / "policy.onnx"
    output_names = ["actions"] + (["features"] if "features" in graphs.prefix_outputs else [])

    if options.monolithic_loop == "unrolled":
        import torch

        gen = torch.Generator().manual_seed(2)
        noise = torch.randn(EXAMPLE_BATCH, policy.chunk_size, policy.max_action_dim, generator=gen)
        args = (*example_inputs(policy, names[:-1]), noise)
        return [
            _export_traced(
                "policy",
                reference,
                args,
                names,
                output_names,
                out_dir,
                options,
                role="policy",
                notes=notes,
                label=f"exporting policy.onnx (unrolled, {options.num_steps} steps)",
            )
        ]

    parts_dir = out_dir / ".parts"
    parts_dir.mkdir(exist_ok=True)
    try:
        parts = export_decomposed(policy, parts_dir, options)
        start = time.perf_counter()
        with options.progress.step(
            f"joining them into policy.onnx (Loop of {options.num_steps} steps)"
        ):
            try:
                with _quiet_exporter():
                    external = compose_monolithic(
                        parts_dir / "vlm_prefix.onnx",
                        parts_dir / "expert_denoise.onnx",
                        path,
                        times=flow.times(options.num_steps),
                        dt=flow.dt(options.num_steps),
                        external_data=options.external_data,
                    )
            except ReflexError:
                raise
            except Exception as exc:  # onnx_ir raises plain errors on malformed graphs
                raise ExportFailed(
                    f"joining vlm_prefix and expert_denoise into policy.onnx failed: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
        seconds = sum(g.seconds for g in parts) + time.perf_counter() - start
        notes["parts_seconds"] = {g.name: round(g.seconds, 2) for g in parts}
    finally:
        shutil.rmtree(parts_dir, ignore_errors=True)
    return [_describe("policy", out_dir, reference, names, external, seconds, notes, role="policy")]


#: name -> (export function, one-line description): what the built-in plugin registers.
BUILTIN_EXPORTERS: dict[str, tuple[Callable[..., list[ExportedGraph]], str]] = {
    "decomposed": (
        export_decomposed,
        "vlm_prefix.onnx (once per observation) + expert_denoise.onnx (one Euler step per call)",
    ),
    "monolithic": (
        export_monolithic,
        "policy.onnx: the prefix and the whole Euler loop in one graph",
    ),
}
