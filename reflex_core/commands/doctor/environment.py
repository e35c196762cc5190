"""The checks that need no artifact: the onnxruntime wheel, which execution providers really
load (a trivial session per advertised provider, checked with ``get_providers()``), the
hardware, versions, and the runtime backends plugins registered."""

from __future__ import annotations

import os
import platform
import shutil
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from reflex_core.commands.doctor.report import FAIL, PASS, WARN, Check

#: Distributions that each ship the ``onnxruntime`` import package: at most one may be installed.
ORT_WHEELS = (
    "onnxruntime",
    "onnxruntime-gpu",
    "onnxruntime-directml",
    "onnxruntime-openvino",
    "onnxruntime-qnn",
    "onnxruntime-rocm",
    "onnxruntime-silicon",
    "onnxruntime-training",
    "ort-nightly",
    "ort-nightly-gpu",
)

# A serialized ONNX model: y = Identity(x), x float[1] (opset 13). Built with onnx.helper; kept
# as bytes because serving installs do not have the onnx package.
_PROBE_MODEL = (
    b'\x08\x07\x12\rreflex-doctor:;\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x05probeZ\x0f\n\x01x'
    b"\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02"
    b"\x08\x01B\x04\n\x00\x10\r"
)


def installed_ort_wheels(distributions: Mapping[str, str] | None = None) -> dict[str, str]:
    """``{distribution: version}`` of the onnxruntime wheels installed (names normalized)."""
    if distributions is None:
        distributions = {}
        for dist in metadata.distributions():
            name = (dist.metadata["Name"] or "").lower().replace("_", "-")
            distributions[name] = dist.version
    return {n: v for n, v in distributions.items() if n in ORT_WHEELS}


def probe_providers(
    available: Sequence[str], session_factory: Callable[..., Any] | None = None
) -> dict[str, str | None]:
    """Create a trivial session per provider; ``{provider: None if it loaded, else the reason}``."""
    import onnxruntime as ort

    make = session_factory or ort.InferenceSession
    results: dict[str, str | None] = {}
    for provider in available:
        if provider == "AzureExecutionProvider":  # a remote-call provider, not a compute device
            continue
        options = ort.SessionOptions()
        options.log_severity_level = 4
        asked = (
            [provider] if provider == "CPUExecutionProvider" else [provider, "CPUExecutionProvider"]
        )
        try:
            session = make(_PROBE_MODEL, sess_options=options, providers=asked)
        except Exception as exc:  # a provider library that fails to load raises from C++
            results[provider] = f"session creation failed: {exc}"
            continue
        loaded = session.get_providers()
        results[provider] = None if provider in loaded else f"the session fell back to {loaded}"
    return results


def _gpu_hint() -> str:
    if Path("/proc/driver/nvidia/version").exists() or shutil.which("nvidia-smi"):
        return "NVIDIA driver present"
    return "no NVIDIA GPU detected"


def backend_checks(backends: Mapping[str, Any]) -> list[Check]:
    """One check per runtime backend a plugin registered: can it run on this machine?

    A backend is used only when ``--providers`` names it, so one that cannot run is a WARN
    (serving with it would be ``provider-unavailable``), not a FAIL.
    """
    checks = []
    for name, spec in sorted(backends.items()):
        try:
            why = spec.probe()
        except Exception as exc:  # a probe must not raise; report it if one does
            why = f"its probe raised {type(exc).__name__}: {exc}"
        if why is None:
            checks.append(
                Check(f"runtime backend {name}", PASS, f"can run here (--providers {name})")
            )
        else:
            checks.append(
                Check(
                    f"runtime backend {name}",
                    WARN,
                    f"cannot run here: {why}",
                    f"--providers {name} would be refused (provider-unavailable); choose another",
                )
            )
    return checks


def environment_checks(
    *,
    distributions: Mapping[str, str] | None = None,
    available: Sequence[str] | None = None,
    session_factory: Callable[..., Any] | None = None,
) -> list[Check]:
    """The checks that need no artifact (arguments are injectable for tests)."""
    import numpy as np
    import onnxruntime as ort

    from reflex_core import __version__
    from reflex_core.runtime.sessions import default_thread_count

    checks: list[Check] = []
    wheels = installed_ort_wheels(distributions)
    if len(wheels) > 1:
        listed = ", ".join(f"{n} {v}" for n, v in sorted(wheels.items()))
        checks.append(
            Check(
                "onnxruntime wheel",
                FAIL,
                f"several onnxruntime wheels are installed side by side ({listed}); they "
                "overwrite each other's files and the result is broken",
                "pip uninstall -y " + " ".join(sorted(wheels)) + ", then install exactly one "
                "(onnxruntime for CPU, onnxruntime-gpu for CUDA/TensorRT)",
                {"wheels": wheels},
            )
        )
    elif not wheels:
        checks.append(
            Check(
                "onnxruntime wheel",
                WARN,
                f"onnxruntime {ort.__version__} imports but no known wheel owns it",
                "reinstall with pip install onnxruntime (or onnxruntime-gpu)",
            )
        )
    else:
        ((name, version),) = wheels.items()
        flavour = (
            "GPU wheel" if name.endswith("gpu") else "CPU wheel" if name == "onnxruntime" else name
        )
        checks.append(
            Check(
                "onnxruntime wheel",
                PASS,
                f"{name} {version} ({flavour})",
                details={"wheels": wheels},
            )
        )

    avail = list(ort.get_available_providers() if available is None else available)
    probed = probe_providers(avail, session_factory)
    loaded = [p for p, why in probed.items() if why is None]
    for provider, why in probed.items():
        if why is None:
            checks.append(Check(f"provider {provider}", PASS, "loads"))
        else:
            checks.append(
                Check(
                    f"provider {provider}",
                    WARN,
                    f"advertised by this onnxruntime but does not load ({why})",
                    "install the CUDA / cuDNN / TensorRT libraries this onnxruntime build needs, "
                    "or serve with --providers cpu (the default choice would fail: a GPU "
                    "provider that does not load is an error, never a silent CPU fallback)",
                )
            )
    gpu = [p for p in loaded if p != "CPUExecutionProvider"]
    checks.append(
        Check(
            "hardware",
            PASS,
            f"{platform.machine()}, {os.cpu_count()} CPU cores "
            f"(ORT threads: {default_thread_count()}), {_gpu_hint()}, "
            + (f"GPU providers: {', '.join(gpu)}" if gpu else "CPU only"),
            details={"loaded_providers": loaded, "available_providers": avail},
        )
    )
    versions = {
        "reflex": __version__,
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "numpy": np.__version__,
    }
    for dist in ("tokenizers", "torch"):
        try:
            versions[dist] = metadata.version(dist)
        except metadata.PackageNotFoundError:
            versions[dist] = None
    checks.append(
        Check(
            "versions",
            PASS,
            ", ".join(f"{k} {v}" for k, v in versions.items() if v is not None),
            details=versions,
        )
    )
    return checks
