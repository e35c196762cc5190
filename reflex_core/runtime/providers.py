"""Which onnxruntime execution providers to ask for, and whether we really got them.

The decision is a pure function of (what this onnxruntime build offers, what the user asked for,
whether a CPU fallback is acceptable), so it is testable without a GPU. After a session exists,
:func:`check_session_providers` compares what it really runs on: the GPU wheel advertises
``CUDAExecutionProvider`` on machines without CUDA, and a session asked for it silently runs on
the CPU (notes/onnx-export-facts.md). That is an error here unless the caller allowed it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

import attrs

from reflex_core.errors import ConfigError

log = logging.getLogger(__name__)

TENSORRT = "TensorrtExecutionProvider"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"

#: Automatic choice, best first. Other providers (OpenVINO, CoreML, ...) are used only when asked.
PREFERENCE: tuple[str, ...] = (TENSORRT, CUDA, CPU)

#: Providers that are not compute devices: never chosen automatically, never a "GPU".
_NOT_COMPUTE = frozenset({"AzureExecutionProvider"})

#: Short names accepted by ``--providers``.
ALIASES: dict[str, str] = {
    "trt": TENSORRT,
    "tensorrt": TENSORRT,
    "cuda": CUDA,
    "gpu": CUDA,
    "cpu": CPU,
}


def is_accelerator(provider: str) -> bool:
    """True for a provider that runs on something other than the host CPU."""
    return provider != CPU and provider not in _NOT_COMPUTE


def resolve_name(name: str, known: Sequence[str] | None = None) -> str:
    """Map ``cuda`` / ``trt`` / ``cpu`` (any case) to ORT's provider name.

    :param known: every provider name this onnxruntime knows (``get_all_providers()``); when
        given, an unknown name is a ConfigError ``provider-unknown``.
    """
    stripped = name.strip()
    full = ALIASES.get(stripped.lower(), stripped)
    if known is not None and full not in known:
        raise ConfigError(
            f"unknown execution provider {name!r}; known: {', '.join(known)}",
            slug="provider-unknown",
            field="providers",
        )
    return full


@attrs.frozen
class ProviderPlan:
    """What to pass to ``InferenceSession(providers=...)`` and what must really load.

    :ivar providers: in priority order; CPU is always last so unsupported nodes can fall back.
    :ivar required: accelerators the caller explicitly asked for: each must load.
    :ivar any_of: accelerators chosen automatically: at least one must load.
    :ivar dropped: asked-for providers this build lacks, dropped because CPU fallback is allowed.
    :ivar allow_cpu_fallback: whether running on the CPU instead is acceptable.
    """

    providers: tuple[str, ...]
    required: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    allow_cpu_fallback: bool = False

    @property
    def auto(self) -> bool:
        return not self.required


def choose_providers(
    available: Sequence[str],
    requested: Sequence[str] | None = None,
    *,
    allow_cpu_fallback: bool = False,
    known: Sequence[str] | None = None,
) -> ProviderPlan:
    """Decide the providers for a session.

    :param available: ``onnxruntime.get_available_providers()`` (what this build offers).
    :param requested: ``--providers`` (names or aliases) or None for automatic: TensorRT, then
        CUDA, then CPU, whichever the build offers.
    :param allow_cpu_fallback: accept running on the CPU when an asked-for accelerator is
        missing; otherwise that is a ConfigError ``provider-unavailable``.
    :param known: all provider names this onnxruntime knows, to reject typos.
    """
    avail = [p for p in available if p not in _NOT_COMPUTE]
    if not requested:
        chosen = [p for p in PREFERENCE if p in avail and p != CPU]
        return ProviderPlan(
            providers=(*chosen, CPU),
            any_of=tuple(chosen),
            allow_cpu_fallback=allow_cpu_fallback,
        )
    names: list[str] = []
    for raw in requested:
        full = resolve_name(raw, known)
        if full not in names:
            names.append(full)
    missing = [p for p in names if p not in avail and p != CPU]
    if missing and not allow_cpu_fallback:
        raise ConfigError(
            f"execution provider(s) {missing} are not available in this onnxruntime build "
            f"(it offers {list(available)}). Install the matching onnxruntime package "
            "(onnxruntime-gpu for CUDA/TensorRT), choose other --providers, or pass "
            "--allow-cpu-fallback.",
            slug="provider-unavailable",
            field="providers",
            details={"missing": missing, "available": list(available)},
        )
    kept = [p for p in names if p not in missing and p != CPU]
    return ProviderPlan(
        providers=(*kept, CPU),
        required=tuple(p for p in kept if is_accelerator(p)),
        dropped=tuple(missing),
        allow_cpu_fallback=allow_cpu_fallback,
    )


def choose_backend(
    requested: Sequence[str] | None,
    backends: Collection[str],
    *,
    unavailable: Mapping[str, str] | None = None,
    allow_cpu_fallback: bool = False,
) -> tuple[str | None, list[str]]:
    """Which runtime backend (a plugin's, not onnxruntime) ``--providers`` names, if any.

    A backend is never chosen automatically: only a ``--providers`` list naming it, alone (a
    backend runs whole graphs, so mixing it with onnxruntime providers means nothing), selects
    it. One that cannot run here (``unavailable[name]`` says why) is ``provider-unavailable``,
    unless ``allow_cpu_fallback``: then onnxruntime's CPU provider runs instead, with a warning.

    :param requested: ``--providers`` as given (names are matched case-insensitively).
    :param backends: the registered backend names.
    :param unavailable: backend name -> why it cannot run (only the named one is consulted).
    :returns: (the backend's name or None for onnxruntime, warnings).
    :raises ConfigError: ``provider-conflict`` (a backend mixed with other providers),
        ``provider-unavailable``.
    """
    by_lower = {b.lower(): b for b in backends}
    names = [n.strip() for n in requested or () if n.strip()]
    named = [by_lower[n.lower()] for n in names if n.lower() in by_lower]
    if not named:
        return None, []
    if len(names) > 1:
        raise ConfigError(
            f"--providers {','.join(names)}: the runtime backend {named[0]!r} runs whole graphs "
            "and must be named alone",
            slug="provider-conflict",
            field="providers",
        )
    backend = named[0]
    why = (unavailable or {}).get(backend)
    if why is None:
        return backend, []
    message = f"runtime backend {backend!r} cannot run here: {why}"
    if not allow_cpu_fallback:
        raise ConfigError(
            message + " (or choose other --providers, or pass --allow-cpu-fallback)",
            slug="provider-unavailable",
            field="providers",
            details={"backend": backend, "reason": why},
        )
    return None, [message + "; using onnxruntime's CPU provider"]


def check_session_providers(plan: ProviderPlan, actual: Sequence[str]) -> list[str]:
    """Compare a created session's ``get_providers()`` with the plan.

    :returns: warnings (a fallback that was allowed).
    :raises ConfigError: ``provider-unavailable`` when an explicitly asked-for accelerator did not
        load, or automatic mode chose accelerators and none loaded, and CPU fallback is not
        allowed.
    """
    warnings = [
        f"{p} is not available in this onnxruntime build; using the CPU" for p in plan.dropped
    ]
    loaded = set(actual)
    if plan.required:
        failed = [p for p in plan.required if p not in loaded]
    elif plan.any_of and not loaded.intersection(plan.any_of):
        failed = list(plan.any_of)
    else:
        failed = []
    if not failed:
        return warnings
    message = (
        f"execution provider(s) {failed} did not load (the session runs on {list(actual)}); "
        "check the CUDA / cuDNN / TensorRT libraries, or pass --providers CPUExecutionProvider "
        "or --allow-cpu-fallback"
    )
    if not plan.allow_cpu_fallback:
        raise ConfigError(
            message,
            slug="provider-unavailable",
            field="providers",
            details={"failed": failed, "actual": list(actual)},
        )
    warnings.append(message)
    return warnings


def provider_options(
    providers: Sequence[str], cache_dir: Path | None = None
) -> list[dict[str, Any]]:
    """Per-provider options, aligned with ``providers``.

    TensorRT builds an engine per graph on first use (minutes for a real model); caching it under
    ``cache_dir`` makes later starts fast. Other providers use their defaults.
    """
    options: list[dict[str, Any]] = []
    for p in providers:
        if p == TENSORRT and cache_dir is not None:
            options.append(
                {"trt_engine_cache_enable": "True", "trt_engine_cache_path": str(cache_dir)}
            )
        else:
            options.append({})
    return options


def describe(available: Sequence[str], loaded: Mapping[str, Sequence[str]]) -> dict[str, Any]:
    """A summary for /health, ``reflex doctor`` and logs."""
    return {"available": list(available), "sessions": {k: list(v) for k, v in loaded.items()}}
