"""An export's torch stages, each in a fresh process of its own.

A process that has exported a large model through ``torch.onnx`` keeps much of what the exporter
allocated even after everything is released (the allocator's heap, exporter caches): measured on
the real-size SmolVLA (1.8 GB of weights), the export alone peaks at ~1.6x the model, but the
torch references computed after it in the same process reach 2.1x and the onnxruntime half on
top of that 3.5x. Run in fresh processes, each stage needs only what it needs, so the export's
peak is the largest single stage instead of their sum:

1. ``export``: load the checkpoint, write the graphs; returns the policy's facts (no model),
   the graphs (no torch references), the Euler steps and the gate's settings;
2. ``references``: load the checkpoint again, rebuild each graph's torch reference by its
   ``reference_role`` and compute the gate's torch half
   (:func:`reflex_core.export.parity.compute_references`);
3. the onnxruntime half runs in the calling process, which never imports torch.

Each stage is ``python -m reflex_core.export.stages STAGE JOB OUT``: the job and the result are
pickles inside the export's own temporary directory (a child of the caller, never read from
anywhere else). Progress lines and warnings pass through the caller's stream; a
:class:`~reflex_core.errors.ReflexError` raised in a stage is raised again in the caller with its
slug; a stage killed by a signal (the kernel's OOM killer) is ``export-stage-died``.
"""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

import attrs

from reflex_core.errors import ConfigError, ReflexError
from reflex_core.export.progress import SILENT, Progress

STAGES = ("export", "references")
ISOLATION_MODES = ("auto", "process", "inprocess")
#: ``auto`` isolates checkpoints whose weight files add up to at least this many bytes: below
#: it, the extra process start-ups (a few seconds each) cost more than the memory they save.
AUTO_ISOLATE_BYTES = 1 << 30


def checkpoint_weight_bytes(directory: Path) -> int:
    """The size of a checkpoint directory's weight files (``*.safetensors``, ``*.bin``)."""
    return sum(
        p.stat().st_size
        for pattern in ("*.safetensors", "*.bin")
        for p in Path(directory).glob(pattern)
        if p.is_file()
    )


def _forward(pipe: Any, stream: Any) -> None:
    """Copy a child's stderr to ``stream`` as it comes (``\\r`` tickers included)."""
    while True:
        chunk = os.read(pipe.fileno(), 4096)
        if not chunk:
            return
        stream.write(chunk.decode("utf-8", errors="replace"))
        stream.flush()


def run_stage(stage: str, job: dict[str, Any], workdir: Path, progress: Progress = SILENT) -> Any:
    """Run ``stage`` on ``job`` in a fresh Python process; returns what the stage returned.

    :raises ReflexError: whatever the stage raised (same class, slug and details), or
        ``export-stage-failed`` / ``export-stage-died``.
    """
    job_file = workdir / f".stage-{stage}.job.pkl"
    out_file = workdir / f".stage-{stage}.out.pkl"
    job = {**job, "progress": {"enabled": progress.enabled, "live": progress.live}}
    with open(job_file, "wb") as f:
        pickle.dump(job, f, protocol=pickle.HIGHEST_PROTOCOL)
    argv = [sys.executable, "-m", "reflex_core.export.stages", stage, str(job_file), str(out_file)]
    stream = progress.stream if progress.enabled else sys.stderr
    with subprocess.Popen(argv, stdin=subprocess.DEVNULL, stderr=subprocess.PIPE) as proc:
        forwarder = threading.Thread(target=_forward, args=(proc.stderr, stream), daemon=True)
        forwarder.start()
        code = proc.wait()
        forwarder.join()
    job_file.unlink(missing_ok=True)
    try:
        if code < 0:
            raise ReflexError(
                f"the export's {stage!r} stage was killed by signal {-code}"
                + (" (out of memory?)" if -code == 9 else ""),
                slug="export-stage-died",
                status=500,
                details={"stage": stage, "signal": -code},
            )
        if not out_file.is_file():
            raise ReflexError(
                f"the export's {stage!r} stage exited with status {code} and no result",
                slug="export-stage-failed",
                status=500,
                details={"stage": stage, "exit_code": code},
            )
        with open(out_file, "rb") as f:
            result = pickle.load(f)
    finally:
        out_file.unlink(missing_ok=True)
    progress.timings.update(result.get("timings", {}))
    if "error" in result:
        raise result["error"]
    return result["value"]


# ----------------------------------------------------------------------------------------------
# The stages (in the child)
# ----------------------------------------------------------------------------------------------


def stage_export(job: dict[str, Any], progress: Progress) -> dict[str, Any]:
    from reflex_core.export import pipeline
    from reflex_core.plugin.manager import make_plugin_manager

    request, tmp = job["request"], Path(job["tmp"])
    registry = make_plugin_manager().registry
    policy = pipeline._load(request, registry, progress)
    num_steps, settings, options = pipeline.prepare(policy, request, progress)
    graphs = tuple(pipeline._exporter(request.mode, registry)(policy, tmp, options))
    pipeline._check_graphs(graphs, tmp)
    missing = [g.name for g in graphs if g.reference_role is None]
    if missing:
        raise ConfigError(
            f"exporter {request.mode!r} gives graphs {missing} no reference_role, so their "
            "torch references cannot be rebuilt in another process: export with "
            "--isolate inprocess",
            slug="export-isolation-unsupported",
            field="isolate",
        )
    policy, graphs = pipeline.release_torch(policy, graphs)
    return {"policy": policy, "graphs": graphs, "num_steps": num_steps, "settings": settings}


def stage_references(job: dict[str, Any], progress: Progress) -> Any:
    from reflex_core.export.exporters import rebuild_reference
    from reflex_core.export.parity import compute_references
    from reflex_core.export.pipeline import _load
    from reflex_core.plugin.manager import make_plugin_manager

    request, tmp = job["request"], Path(job["tmp"])
    num_steps = job["num_steps"]
    registry = make_plugin_manager().registry
    policy = _load(request, registry, progress)
    graphs = [
        attrs.evolve(g, reference=rebuild_reference(policy, g, num_steps)) for g in job["graphs"]
    ]
    return compute_references(
        policy, tmp, graphs, job["settings"], num_steps=num_steps, progress=progress
    )


_STAGE_FUNCTIONS = {"export": stage_export, "references": stage_references}


#: glibc's ``M_MMAP_THRESHOLD``: blocks from this size up are mapped on their own and go back to
#: the system when freed. glibc raises the threshold by itself after each large free, up to
#: 32 MB, so a torch forward's activations then come from the heap and stay resident after it:
#: fixed at 1 MiB, the real-size SmolVLA references stage peaked 0.37 GB lower (monolithic
#: export 2.07x -> 1.86x the model; the page faults of fresh mappings cost some time instead).
MMAP_THRESHOLD_BYTES = 1 << 20
_M_MMAP_THRESHOLD = -3  # mallopt's parameter number (malloc.h)


def release_large_blocks() -> bool:
    """Make freed large blocks return to the system (glibc only; elsewhere a no-op).

    :returns: whether the allocator took the setting.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if not sys.platform.startswith("linux") or name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))
    except (OSError, AttributeError):  # not glibc (musl has no mallopt)
        return False


def main(argv: list[str] | None = None) -> int:
    stage, job_file, out_file = argv if argv is not None else sys.argv[1:]
    release_large_blocks()  # a fresh process: set before torch allocates anything
    with open(job_file, "rb") as f:
        job = pickle.load(f)
    progress = Progress(sys.stderr, **job["progress"])
    result: dict[str, Any]
    try:
        result = {"value": _STAGE_FUNCTIONS[stage](job, progress)}
    except ReflexError as exc:
        result = {"error": exc}
    except Exception as exc:  # the caller needs the message; the traceback goes to stderr
        traceback.print_exc()
        result = {
            "error": ReflexError(
                f"the export's {stage!r} stage failed: {type(exc).__name__}: {exc}",
                slug="export-stage-failed",
                status=500,
                details={"stage": stage},
            )
        }
    result["timings"] = dict(progress.timings)
    try:
        payload = pickle.dumps(result, protocol=pickle.HIGHEST_PROTOCOL)
    except Exception as exc:  # an exception carrying something unpicklable
        payload = pickle.dumps(
            {
                "error": ReflexError(
                    f"the export's {stage!r} stage failed: {result.get('error', exc)}",
                    slug="export-stage-failed",
                    status=500,
                    details={"stage": stage},
                ),
                "timings": result["timings"],
            }
        )
    tmp = Path(out_file).with_suffix(".partial")
    tmp.write_bytes(payload)
    tmp.rename(out_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
