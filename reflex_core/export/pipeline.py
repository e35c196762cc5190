"""``reflex export`` as a library call: load -> export into a temp dir -> parity gate -> publish.

Nothing shippable ever appears at the output path unless the gate passed: the graphs are
written into a hidden temporary directory next to it (same filesystem, so publishing is one
``rename``). On a failed gate the temporary directory becomes ``DIR.failed/`` (graphs, manifest
with ``"passed": false`` and the parity report, for diagnosis; :meth:`Artifact.load` refuses it)
and :class:`~reflex_core.errors.ParityError` names the worst graph and case.
"""

from __future__ import annotations

import ctypes
import gc
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from reflex_core import __version__
from reflex_core.artifact.integrity import load_private_key, manifest_digest, seal, write_signature
from reflex_core.artifact.manifest import (
    CONFIG_FILE,
    MODE_GRAPHS,
    PARITY_FILE,
    SCHEMA_VERSION,
    TOKENIZER_FILE,
    Artifact,
    GraphSpec,
    normalization_to_json,
    sha256_file,
)
from reflex_core.errors import ConfigError, ParityError
from reflex_core.export.exporters import (
    BUILTIN_EXPORTERS,
    MONOLITHIC_LOOPS,
    PRECISIONS,
    ExportedGraph,
    ExportOptions,
)
from reflex_core.export.parity import (
    ParitySettings,
    compare_with_onnx,
    compute_references,
    library_versions,
)
from reflex_core.export.progress import SILENT, Progress
from reflex_core.export.stages import (
    AUTO_ISOLATE_BYTES,
    ISOLATION_MODES,
    checkpoint_weight_bytes,
    run_stage,
)

#: Library versions recorded in the manifest's ``exporter`` block.
EXPORTER_LIBRARIES = ("torch", "onnx", "onnxscript", "onnx-ir", "onnxruntime", "transformers")
#: Placeholder sha256 of a report that does not exist yet (parity pending).
_PENDING_SHA = "0" * 64


@attrs.frozen
class ExportRequest:
    """What to export and how (the ``reflex export`` flags).

    :ivar source: a built-in name (``tiny-pi05``), a checkpoint directory or a Hub repo id.
    :ivar output: the artifact directory to create.
    :ivar embodiment: an :class:`reflex_core.embodiments.EmbodimentConfig` recorded in the
        manifest (its dims must match the model), or None.
    :ivar num_steps: Euler steps; None keeps the checkpoint's ``num_inference_steps``.
    :ivar parity: gate settings; None uses the defaults of ``precision``.
    :ivar force: replace an existing non-empty output directory (only once the gate passed; a
        failed gate removes it so no stale artifact is served in its place).
    :ivar tokenizer_file: a tokenizer.json for checkpoints that ship none.
    :ivar preprocess: ``--preprocess KEY=VALUE`` overrides of the family's preprocessing
        contract (``{"image.pad_value": -1.0}``), recorded in the artifact.
    :ivar model_options: ``--model-option KEY=VALUE`` settings the family's loader declares.
    :ivar sign_key: an ed25519 private key (PEM): the artifact's digest is signed into
        ``signature.json`` (:mod:`reflex_core.artifact.integrity`).
    :ivar isolate: where the torch stages run (:mod:`reflex_core.export.stages`): ``process``
        (each in a fresh process: the export's peak memory is its largest stage's), ``inprocess``
        (all in this one), ``auto`` (``process`` for checkpoints of 1 GiB of weights or more).
    """

    source: str
    output: Path = attrs.field(converter=Path)
    mode: str = "decomposed"
    embodiment: Any = None
    num_steps: int | None = None
    precision: str = "fp32"
    opset: int | None = None
    parity: ParitySettings | None = None
    force: bool = False
    external_data: bool | None = None
    monolithic_loop: str = "loop"
    tokenizer_file: Path | None = None
    preprocess: Mapping[str, Any] = attrs.field(factory=dict)
    model_options: Mapping[str, Any] = attrs.field(factory=dict)
    sign_key: Path | None = None
    isolate: str = "auto"


@attrs.frozen(eq=False)
class ExportResult:
    """A published artifact (``graphs`` without their torch references: released for the gate)."""

    output: Path
    artifact: Artifact
    report: dict[str, Any]
    graphs: tuple[ExportedGraph, ...]
    timings: dict[str, float]


ExporterFn = Callable[[Any, Path, ExportOptions], Sequence[ExportedGraph]]
AfterExportHook = Callable[[Path, Sequence[ExportedGraph]], None]


def _exporter(mode: str, registry: Any) -> ExporterFn:
    table: Mapping[str, Any]
    if registry is not None:
        table = {name: exp.export for name, exp in registry.exporters.items()}
    else:
        table = {name: fn for name, (fn, _) in BUILTIN_EXPORTERS.items()}
    if mode not in table:
        raise ConfigError(
            f"unknown export mode {mode!r}; installed modes: {', '.join(sorted(table))}",
            slug="export-mode-unknown",
            field="mode",
        )
    return table[mode]


def _check_request(request: ExportRequest) -> None:
    if request.precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}", field="precision")
    if request.monolithic_loop not in MONOLITHIC_LOOPS:
        raise ConfigError(
            f"monolithic_loop must be one of {', '.join(MONOLITHIC_LOOPS)}",
            field="monolithic_loop",
        )
    if request.num_steps is not None and request.num_steps < 1:
        raise ConfigError("--num-steps must be >= 1", field="num_steps")
    if request.isolate not in ISOLATION_MODES:
        raise ConfigError(f"--isolate must be one of {', '.join(ISOLATION_MODES)}", field="isolate")
    if request.parity is not None:
        p = request.parity
        if p.cases < 1:
            raise ConfigError("--parity-cases must be >= 1", field="parity_cases")
        if not (p.max_abs > 0 and 0 < p.min_cos <= 1 and p.kv_max_rel >= 0):
            raise ConfigError(
                "parity thresholds must be positive (cosine in (0, 1])", field="parity_threshold"
            )
    out = request.output
    if out.exists() and not out.is_dir():
        raise ConfigError(
            f"output {str(out)!r} exists and is not a directory", slug="output-exists"
        )
    if out.is_dir() and any(out.iterdir()) and not request.force:
        raise ConfigError(
            f"output directory {str(out)!r} is not empty; pass --force to replace it",
            slug="output-exists",
            field="output",
        )


def check_embodiment(policy: Any, embodiment: Any) -> None:
    """The embodiment recorded in an artifact must fit the model's real dims."""
    if embodiment is None:
        return
    problems = []
    if int(embodiment.action_dim) != int(policy.action_dim):
        problems.append(
            f"action_dim {embodiment.action_dim} (the model outputs {policy.action_dim})"
        )
    if int(embodiment.state_dim) != int(policy.state_dim):
        problems.append(f"state_dim {embodiment.state_dim} (the model takes {policy.state_dim})")
    if problems:
        raise ConfigError(
            f"embodiment {embodiment.name!r} does not fit this checkpoint: " + "; ".join(problems),
            slug="embodiment-mismatch",
            field="embodiment",
        )


def _embodiment_json(embodiment: Any) -> dict[str, Any] | None:
    if embodiment is None:
        return None
    raw = dict(getattr(embodiment, "raw", {}) or {})
    return {"name": str(embodiment.name), **{k: v for k, v in raw.items() if k != "name"}}


def _model_name(source: str) -> str:
    path = Path(source).expanduser()
    return path.resolve().name if path.is_dir() else source


def build_manifest(
    policy: Any,
    request: ExportRequest,
    graphs: Sequence[ExportedGraph],
    directory: Path,
    *,
    num_steps: int,
    parity_sha256: str,
    passed: bool,
    hash_graphs: bool = True,
) -> dict[str, Any]:
    """reflex_config.json (schema_version 2) for the files in ``directory``.

    :param hash_graphs: False writes placeholder graph hashes (the pending manifest the gate
        reads without verifying: hashing multi-GB graphs twice would cost a minute).
    """

    def digest(name: str | None) -> str | None:
        if name is None:
            return None
        return sha256_file(directory / name) if hash_graphs else _PENDING_SHA

    specs = {}
    for g in graphs:
        specs[g.name] = GraphSpec(
            name=g.name,
            file=g.file,
            sha256=str(digest(g.file)),
            inputs=g.inputs,
            outputs=g.outputs,
            external_data_file=g.external_data_file,
            external_data_sha256=digest(g.external_data_file),
        ).to_dict()
    opsets = {g.notes.get("opset") for g in graphs if g.notes.get("opset")}
    versions = library_versions()
    return {
        "schema_version": SCHEMA_VERSION,
        "reflex_version": __version__,
        "model": {
            "family": policy.family,
            "source": str(request.source),
            "name": _model_name(str(request.source)),
            "provenance": dict(policy.provenance),
            "details": dict(policy.details),
        },
        "mode": artifact_mode(graphs, request.mode),
        "precision": request.precision,
        "opset": int(max(opsets)) if opsets else int(request.opset or 0),
        "graphs": specs,
        "num_steps": int(num_steps),
        "chunk_size": int(policy.chunk_size),
        "action_dim": int(policy.action_dim),
        "state_dim": int(policy.state_dim),
        "max_action_dim": int(policy.max_action_dim),
        "max_state_dim": int(policy.max_state_dim),
        "feature_dim": int(policy.feature_dim),
        "preprocessing": policy.io.to_json(),
        "tokenizer": {
            "file": TOKENIZER_FILE,
            "sha256": sha256_file(directory / TOKENIZER_FILE),
            "max_length": int(policy.tokenizer.max_length),
            "pad_id": int(policy.tokenizer.pad_id),
            "padding_side": "right",
            "add_special_tokens": bool(policy.tokenizer.add_special_tokens),
        },
        "normalization": normalization_to_json(policy.normalization or {}),
        "embodiment": _embodiment_json(request.embodiment),
        "exporter": {
            **{name: versions.get(name) for name in EXPORTER_LIBRARIES},
            "python": versions["python"],
        },
        "parity": {"report": PARITY_FILE, "sha256": parity_sha256, "passed": bool(passed)},
        "build": {
            "exporter": request.mode,
            "graphs": {g.name: {"export_seconds": round(g.seconds, 2), **g.notes} for g in graphs},
        },
    }


def artifact_mode(graphs: Sequence[ExportedGraph], exporter_name: str) -> str:
    """The manifest's ``mode`` is the graph layout the runtime must run, whichever exporter
    (built-in or plugin) produced it; an unknown layout keeps the exporter's name."""
    names = {g.name for g in graphs}
    for mode, layout in MODE_GRAPHS.items():
        if names == set(layout):
            return mode
    return exporter_name


def _finite(value: Any) -> Any:
    """JSON has no inf/NaN: a non-finite metric (a NaN output, a shape mismatch) becomes null."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def _write_json(path: Path, value: Any) -> None:
    text = json.dumps(_finite(value), indent=2, allow_nan=False)
    path.write_text(text + "\n", encoding="utf-8")


def _publish(tmp: Path, output: Path) -> None:
    """Move the verified directory into place (replacing ``output`` if it exists)."""
    if output.is_dir() and not any(output.iterdir()):
        output.rmdir()
    if output.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".old", dir=output.parent))
        old.rmdir()
        output.rename(old)
        tmp.rename(output)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(output)


def _fail(tmp: Path, output: Path, force: bool) -> Path:
    failed = output.with_name(output.name + ".failed")
    if failed.exists():
        shutil.rmtree(failed)
    tmp.rename(failed)
    if force and output.exists():
        shutil.rmtree(output)  # the user asked to replace it: never leave the old one to be served
    return failed


def export_artifact(
    request: ExportRequest,
    *,
    registry: Any = None,
    progress: Progress = SILENT,
    after_export: AfterExportHook | None = None,
    policy: Any = None,
) -> ExportResult:
    """Export ``request.source`` into ``request.output`` and gate it.

    :param registry: the plugin registry (its model loaders and exporters); None loads the
        installed plugins.
    :param after_export: called with (temporary dir, graphs) after the graphs are written and
        before the gate (tests corrupt a weight here to prove the gate catches it).
    :param policy: an already loaded :class:`reflex_core.models.family.LoadedPolicy` (skips
        loading).
    :raises ConfigError: bad options, ``output-exists``, ``embodiment-mismatch``,
        ``tokenizer-missing``, ``export-mode-unknown``, ``preprocess-override-invalid``.
    :raises CheckpointError: ``model-family-unknown`` / ``model-family-ambiguous`` and the
        loader's own slugs.
    :raises ParityError: slug ``parity-failed``; ``details`` holds the report path and the worst
        (graph, case, output).
    """
    _check_request(request)
    # A bad key fails before minutes of export, not after.
    sign_key = load_private_key(request.sign_key) if request.sign_key is not None else None
    if registry is None:
        from reflex_core.plugin.manager import make_plugin_manager

        registry = make_plugin_manager().registry
    exporter = _exporter(request.mode, registry)
    output = request.output.expanduser().absolute()
    output.parent.mkdir(parents=True, exist_ok=True)

    isolated = _isolated(request, registry, policy)
    tmp = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=output.parent))
    os.chmod(tmp, 0o755)  # mkdtemp makes it 0700; the artifact is read by the server's user
    published = False
    try:
        if isolated:
            exported = run_stage("export", {"request": request, "tmp": str(tmp)}, tmp, progress)
            policy, graphs = exported["policy"], exported["graphs"]
            num_steps, settings = exported["num_steps"], exported["settings"]
        else:
            if policy is None:
                policy = _load(request, registry, progress)
            num_steps, settings, options = prepare(policy, request, progress)
            graphs = tuple(exporter(policy, tmp, options))
            _check_graphs(graphs, tmp)
        shutil.copyfile(policy.tokenizer.file, tmp / TOKENIZER_FILE)
        _write_json(tmp / PARITY_FILE, {"schema_version": 1, "passed": False, "status": "pending"})
        _write_json(
            tmp / CONFIG_FILE,
            seal(
                build_manifest(
                    policy,
                    request,
                    graphs,
                    tmp,
                    num_steps=num_steps,
                    parity_sha256=_PENDING_SHA,
                    passed=False,
                    hash_graphs=False,
                )
            ),
        )
        if after_export is not None:
            after_export(tmp, graphs)
        if isolated:
            job = {
                "request": request,
                "tmp": str(tmp),
                "graphs": graphs,
                "num_steps": num_steps,
                "settings": settings,
            }
            references = run_stage("references", job, tmp, progress)
        else:
            references = compute_references(
                policy, tmp, graphs, settings, num_steps=num_steps, progress=progress
            )
            # The torch model goes before onnxruntime loads the graphs: the two never coexist.
            policy, graphs = release_torch(policy, graphs)
        report = compare_with_onnx(
            references, tmp, graphs, settings, precision=request.precision, progress=progress
        )
        del references
        report["source"] = str(request.source)
        report["mode"] = artifact_mode(graphs, request.mode)
        _write_json(tmp / PARITY_FILE, report)
        manifest = build_manifest(
            policy,
            request,
            graphs,
            tmp,
            num_steps=num_steps,
            parity_sha256=sha256_file(tmp / PARITY_FILE),
            passed=bool(report["passed"]),
        )
        manifest = seal(manifest)
        _write_json(tmp / CONFIG_FILE, manifest)
        if not report["passed"]:
            failed = _fail(tmp, output, request.force)
            published = True  # tmp was moved; nothing left to clean
            worst = report["worst"]
            raise ParityError(
                f"parity gate FAILED: graph {worst['graph']!r}, case {worst['case']}, output "
                f"{worst['output']!r}: max abs error {worst['max_abs_error']:.3g} (allowed "
                f"{worst['allowed_abs']:.3g}), cosine {worst['cosine']:.9f} (min "
                f"{settings.min_cos}). Nothing was written to {str(output)!r}; the failed "
                f"export and its report are in {str(failed)!r} "
                f"(see {str(failed / PARITY_FILE)!r})",
                details={"report": str(failed / PARITY_FILE), "worst": worst},
            )
        if sign_key is not None:
            write_signature(tmp, manifest_digest(manifest), sign_key)
        Artifact.load(tmp, verify=True)  # exactly what `reflex serve` will check
        _publish(tmp, output)
        published = True
    finally:
        if not published:
            shutil.rmtree(tmp, ignore_errors=True)
    return ExportResult(
        output=output,
        artifact=Artifact.load(output, verify=False),
        report=report,
        graphs=graphs,
        timings=dict(progress.timings),
    )


def _load(request: ExportRequest, registry: Any, progress: Progress) -> Any:
    from reflex_core.models.family import LoadOptions
    from reflex_core.models.resolve import load_checkpoint

    options = LoadOptions(
        source=str(request.source),
        tokenizer_file=request.tokenizer_file,
        embodiment=request.embodiment,
        preprocess=dict(request.preprocess),
        model_options=dict(request.model_options),
    )
    with progress.step(f"loading {request.source}"):
        return load_checkpoint(request.source, registry, options)


def prepare(
    policy: Any, request: ExportRequest, progress: Progress
) -> tuple[int, ParitySettings, ExportOptions]:
    """Check a loaded policy against the request; the Euler steps, gate settings and exporter
    options that follow from both.

    :raises ConfigError: ``tokenizer-missing``, ``embodiment-mismatch``.
    """
    tokenizer = policy.tokenizer.file
    if tokenizer is None or not Path(tokenizer).is_file():
        raise ConfigError(
            f"checkpoint {request.source!r} ships no tokenizer.json. {policy.tokenizer.hint}".strip(),
            slug="tokenizer-missing",
            field="tokenizer",
            details={"family": policy.family, "hint": policy.tokenizer.hint},
        )
    check_embodiment(policy, request.embodiment)
    num_steps = int(request.num_steps or policy.num_steps)
    settings = request.parity or ParitySettings.for_precision(request.precision)
    settings = attrs.evolve(
        settings,
        relative_outputs=tuple(
            dict.fromkeys([*settings.relative_outputs, *policy.graphs.relative_outputs])
        ),
    )
    options = ExportOptions(
        num_steps=num_steps,
        opset=request.opset,
        precision=request.precision,
        external_data=request.external_data,
        monolithic_loop=request.monolithic_loop,
        progress=progress,
    )
    return num_steps, settings, options


def _isolated(request: ExportRequest, registry: Any, policy: Any) -> bool:
    """Whether the torch stages run in processes of their own (``request.isolate``).

    A stage process loads the checkpoint itself with the installed plugins (the same
    environment), so an already loaded policy keeps everything in this process.
    """
    if request.isolate == "inprocess":
        return False
    if policy is not None:
        if request.isolate == "process":
            raise ConfigError(
                "isolate='process' loads the checkpoint in a fresh process: it cannot take an "
                "already loaded policy",
                slug="export-isolation-unsupported",
                field="isolate",
            )
        return False
    if request.isolate == "process":
        return True
    from reflex_core.models.resolve import resolve_checkpoint_dir

    directory = resolve_checkpoint_dir(request.source, registry)
    return checkpoint_weight_bytes(directory) >= AUTO_ISOLATE_BYTES


def release_torch(
    policy: Any, graphs: Sequence[ExportedGraph]
) -> tuple[Any, tuple[ExportedGraph, ...]]:
    """Drop this pipeline's references to the torch model and hand its memory back to the OS.

    Returns the policy without its model (the manifest needs only its facts) and the graphs
    without their torch references. A model the caller still holds (``policy=`` passed to
    :func:`export_artifact`) stays alive; the CLI passes none.
    """
    if attrs.has(type(policy)) and any(a.name == "graphs" for a in attrs.fields(type(policy))):
        policy = attrs.evolve(policy, graphs=None)
    graphs = tuple(attrs.evolve(g, reference=None) for g in graphs)
    gc.collect()
    _trim_heap()
    return policy, graphs


def _trim_heap() -> None:
    """glibc keeps freed chunks below its mmap threshold (up to 32 MB: most weight tensors) in
    the heap; without ``malloc_trim`` the freed model would still count as resident."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc: nothing to trim, or the allocator returns memory itself


def _check_graphs(graphs: Sequence[ExportedGraph], directory: Path) -> None:
    """An exporter (possibly a plugin) must describe real, distinct files in the directory."""
    if not graphs:
        raise ConfigError("the exporter wrote no graph", slug="export-failed")
    names = [g.name for g in graphs]
    if len(set(names)) != len(names):
        raise ConfigError(
            f"the exporter returned duplicate graph names {names}", slug="export-failed"
        )
    for g in graphs:
        for f in (g.file, g.external_data_file):
            if f is not None and not (directory / f).is_file():
                raise ConfigError(
                    f"the exporter described {f!r} but did not write it", slug="export-failed"
                )
