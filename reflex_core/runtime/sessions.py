"""onnxruntime sessions tuned for the machine.

Thread pools: every ORT session owns an intra-op pool whose workers keep spinning for a while
after ``run()`` returns. With a separate prefix and expert session on a small CPU, the prefix
pool's spinning steals the cores the first expert steps need (measured ~2x slower steps, see
notes/onnx-export-facts.md). So the prefix session does not spin (``allow_spinning=0``); the
expert session, called back to back N times, does. ``benchmarks/decomposed_vs_monolithic.py``
measures these choices against each other and against one process-wide shared pool.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import onnxruntime as ort

from reflex_core.errors import ArtifactError
from reflex_core.runtime.providers import ProviderPlan, check_session_providers, provider_options

log = logging.getLogger(__name__)

#: Graph roles and whether their intra-op workers spin after a run by default.
SPIN_BY_ROLE: dict[str, bool] = {"vlm_prefix": False, "expert_denoise": True, "policy": True}

SessionFactory = Callable[..., Any]

_global_pool_lock = threading.Lock()
_global_pool_threads: int | None = None


def default_thread_count(env: Mapping[str, str] | None = None) -> int:
    """Intra-op threads: ``OMP_NUM_THREADS`` when set to a positive integer, else usable cores."""
    environ = os.environ if env is None else env
    raw = environ.get("OMP_NUM_THREADS", "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not Linux
        return max(1, os.cpu_count() or 1)


def enable_global_thread_pool(threads: int) -> None:
    """Make every later session of this process share ONE intra-op pool (opt-in, process-wide).

    onnxruntime allows this once per process, before any session exists, and afterwards every
    session must opt in (``use_per_session_threads = False``): a per-session one fails to load.
    Only a process that owns all its sessions (``reflex serve``, the benchmark) should call it.
    """
    global _global_pool_threads
    with _global_pool_lock:
        if _global_pool_threads is not None:
            if _global_pool_threads != threads:
                raise RuntimeError(
                    f"the global ORT thread pool already has {_global_pool_threads} threads"
                )
            return
        ort.set_global_thread_pool_sizes(threads, 1)
        _global_pool_threads = threads


def global_thread_pool_enabled() -> bool:
    return _global_pool_threads is not None


def make_session_options(
    role: str,
    *,
    threads: int | None = None,
    allow_spinning: bool | None = None,
    memory_arena: bool = True,
) -> ort.SessionOptions:
    """Session options for one graph role (``vlm_prefix``, ``expert_denoise``, ``policy``).

    :param threads: intra-op threads; default :func:`default_thread_count`.
    :param allow_spinning: override :data:`SPIN_BY_ROLE`.
    :param memory_arena: onnxruntime's CPU memory arena. It keeps every block it grew to for
        the next call (fast when shapes repeat, as when serving) and grows by powers of two, so
        a few large calls leave it far above their need: the parity gate's batches held ~1.1 GB
        more with it on a real-size 450M-parameter checkpoint (3.88 vs 2.73 GB). Only where
        memory comes from changes; the arithmetic, and so every output, is the same.
    """
    so = ort.SessionOptions()
    so.enable_cpu_mem_arena = memory_arena
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.log_severity_level = 3  # errors only; provider fallbacks are checked explicitly
    if global_thread_pool_enabled():
        so.use_per_session_threads = False
        return so
    so.intra_op_num_threads = threads or default_thread_count()
    so.inter_op_num_threads = 1
    spin = SPIN_BY_ROLE.get(role, True) if allow_spinning is None else allow_spinning
    so.add_session_config_entry("session.intra_op.allow_spinning", "1" if spin else "0")
    return so


def open_session(
    path: Path,
    plan: ProviderPlan,
    *,
    role: str,
    threads: int | None = None,
    allow_spinning: bool | None = None,
    memory_arena: bool = True,
    cache_dir: Path | None = None,
    factory: SessionFactory | None = None,
) -> tuple[Any, list[str]]:
    """Create a session for one graph file and verify the providers it really runs on.

    :param factory: ``InferenceSession``-like callable (tests inject a fake).
    :returns: (session, warnings).
    :raises ArtifactError: ``artifact-graph-invalid`` when onnxruntime cannot load the file.
    :raises ConfigError: ``provider-unavailable`` (see :func:`check_session_providers`).
    """
    make = factory or ort.InferenceSession
    options = make_session_options(
        role, threads=threads, allow_spinning=allow_spinning, memory_arena=memory_arena
    )
    try:
        session = make(
            str(path),
            sess_options=options,
            providers=list(plan.providers),
            provider_options=provider_options(plan.providers, cache_dir),
        )
    except Exception as exc:  # onnxruntime raises its own exception types from C++
        raise ArtifactError(
            f"onnxruntime cannot load {path.name}: {exc}", slug="artifact-graph-invalid"
        ) from exc
    warnings = check_session_providers(plan, session.get_providers())
    for w in warnings:
        log.warning("%s: %s", path.name, w)
    return session, warnings


def input_names(session: Any) -> tuple[str, ...]:
    return tuple(i.name for i in session.get_inputs())


def output_names(session: Any) -> tuple[str, ...]:
    return tuple(o.name for o in session.get_outputs())


def declared_feeds(names: Sequence[str], feeds: Mapping[str, Any]) -> dict[str, Any]:
    """Keep only the feeds a session declares (an exporter may drop unused inputs).

    :raises ArtifactError: ``artifact-graph-io`` when the session wants an input nobody provides.
    """
    missing = [n for n in names if n not in feeds]
    if missing:
        raise ArtifactError(
            f"graph input(s) {missing} are not produced by the runtime (it feeds {sorted(feeds)})",
            slug="artifact-graph-io",
        )
    return {n: feeds[n] for n in names}


def device_of(providers: Sequence[str]) -> str:
    """The ORT device name where a session keeps tensors between runs."""
    return (
        "cuda"
        if any(p in ("CUDAExecutionProvider", "TensorrtExecutionProvider") for p in providers)
        else "cpu"
    )
