"""``reflex doctor [DIR]``: is this machine, and this artifact, ready to serve?

Environment: which onnxruntime wheel is installed (two side by side break each other), which
execution providers really load (a trivial session per advertised provider, checked with
``get_providers()``), CPU/GPU, versions. With an artifact: its manifest, file hashes, parity
verdict, graph inputs/outputs against the manifest and the runtime contract, a timed dry run
through the real runtime, and the fit to an embodiment (dims, chunk size, cameras, gripper).
Each check is PASS / WARN / FAIL with a fix hint; any FAIL exits 1.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import sys
from collections.abc import Callable, Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import attrs

HELP = "check the environment and an exported artifact (providers, hashes, parity, dry run, embodiment fit)"

PASS, WARN, FAIL = "PASS", "WARN", "FAIL"

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


@attrs.frozen
class Check:
    """One finding. ``hint`` says how to fix a WARN or FAIL."""

    name: str
    status: str
    message: str
    hint: str | None = None
    details: dict[str, Any] = attrs.field(factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    parser.add_argument(
        "artifact_dir", metavar="DIR", type=Path, nargs="?", help="an exported artifact"
    )
    emb = parser.add_mutually_exclusive_group()
    emb.add_argument("--embodiment", metavar="NAME", help="check the artifact against this robot")
    emb.add_argument(
        "--custom-embodiment-config", metavar="PATH", type=Path, help="your own embodiment JSON"
    )
    parser.add_argument(
        "--providers",
        metavar="LIST",
        help="execution providers for the dry run, comma-separated (default: the best available)",
    )
    parser.add_argument(
        "--allow-cpu-fallback",
        action="store_true",
        help="accept the CPU when an asked-for GPU provider does not load",
    )
    parser.add_argument(
        "--trusted-keys",
        type=Path,
        metavar="DIR",
        help="check that one of these ed25519 public keys signed the artifact (as serve does)",
    )
    parser.add_argument("--runs", type=int, default=3, help="timed dry-run inferences (default 3)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, pm: Any) -> int:
    checks = environment_checks()
    checks += backend_checks(getattr(getattr(pm, "registry", None), "runtime_backends", {}))
    embodiment = None
    if args.embodiment or args.custom_embodiment_config:
        from reflex_core.embodiments import load_embodiment
        from reflex_core.errors import ConfigError

        try:
            embodiment = load_embodiment(
                name=args.embodiment,
                path=args.custom_embodiment_config,
                registry=getattr(pm, "registry", None),
            )
        except ConfigError as exc:
            checks.append(Check("embodiment", FAIL, str(exc), "fix the embodiment name or file"))
    if args.artifact_dir is not None:
        providers = [p for p in (args.providers or "").split(",") if p.strip()] or None
        checks += artifact_checks(
            args.artifact_dir,
            embodiment=embodiment,
            embodiment_requested=bool(args.embodiment or args.custom_embodiment_config),
            providers=providers,
            allow_cpu_fallback=args.allow_cpu_fallback,
            runs=max(1, args.runs),
            trusted_keys=args.trusted_keys,
        )
    report(checks, as_json=args.json)
    return 1 if any(c.status == FAIL for c in checks) else 0


def report(checks: Sequence[Check], *, as_json: bool, out: Any = None) -> None:
    stream = out or sys.stdout
    counts = {s: sum(c.status == s for c in checks) for s in (PASS, WARN, FAIL)}
    if as_json:
        payload = {
            "ok": counts[FAIL] == 0,
            "summary": {"pass": counts[PASS], "warn": counts[WARN], "fail": counts[FAIL]},
            "checks": [c.to_dict() for c in checks],
        }
        print(json.dumps(payload, indent=2, default=str), file=stream)
        return
    width = max((len(c.name) for c in checks), default=10) + 2
    for c in checks:
        print(f"{c.status}  {c.name.ljust(width)}{c.message}", file=stream)
        if c.hint and c.status != PASS:
            print(f"{'':6}{'':{width}}fix: {c.hint}", file=stream)
    print(f"\n{counts[PASS]} passed, {counts[WARN]} warnings, {counts[FAIL]} failed", file=stream)


# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------------
# Artifact
# ---------------------------------------------------------------------------------------------

_MONOLITHIC_INPUTS = ("images", "image_masks", "tokens", "token_masks", "state", "noise")


def _contract_problems(artifact: Any, sessions: Mapping[str, Any]) -> list[str]:
    """What the runtime contract needs from the graphs, checked on the live sessions."""
    problems: list[str] = []
    names = {
        g: ([i.name for i in s.get_inputs()], [o.name for o in s.get_outputs()])
        for g, s in sessions.items()
    }
    if artifact.mode == "decomposed":
        p_in, p_out = names["vlm_prefix"]
        e_in, e_out = names["expert_denoise"]
        unknown = [n for n in p_in if n not in _MONOLITHIC_INPUTS[:5]]
        if unknown:
            problems.append(f"vlm_prefix wants inputs the runtime does not produce: {unknown}")
        unfed = [n for n in e_in if n not in ("x_t", "t", "state") and n not in p_out]
        if unfed:
            problems.append(f"expert_denoise wants inputs nobody produces: {unfed}")
        if "velocity" not in e_out:
            problems.append("expert_denoise has no 'velocity' output")
    elif artifact.mode == "monolithic":
        p_in, p_out = names["policy"]
        unknown = [n for n in p_in if n not in _MONOLITHIC_INPUTS]
        if unknown:
            problems.append(f"policy wants inputs the runtime does not produce: {unknown}")
        if "actions" not in p_out:
            problems.append("policy has no 'actions' output")
    return problems


def _preprocessing_check(artifact: Any) -> Check:
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


def _integrity_checks(artifact: Any, trusted_keys: Path | None) -> tuple[Check, Check]:
    """The manifest's digest (every setting that changes an action) and who signed it."""
    from reflex_core.errors import ArtifactError, ConfigError

    try:
        digest = artifact.verify_integrity()
    except ArtifactError as exc:
        failed = Check("integrity", FAIL, exc.message, "re-export the model", exc.details)
        return failed, Check("signature", FAIL, "the manifest changed: no signature can hold")
    if digest is None:
        return (
            Check(
                "integrity",
                WARN,
                "schema_version 1 manifest: it carries no digest, so edits to it go unnoticed",
                "re-export with this reflex",
            ),
            Check("signature", WARN, "schema_version 1 artifacts cannot be signed"),
        )
    integrity = Check(
        "integrity", PASS, f"manifest digest {digest[:16]}... matches", details={"digest": digest}
    )
    try:
        if trusted_keys is not None:
            signer = artifact.require_signature(trusted_keys)
            return integrity, Check(
                "signature",
                PASS,
                f"signed by key {signer.key_id} (trusted as {signer.trusted_as})",
                details={"key_id": signer.key_id, "trusted_as": signer.trusted_as},
            )
        signer = artifact.signer()
    except (ArtifactError, ConfigError) as exc:
        return integrity, Check(
            "signature",
            FAIL,
            exc.message,
            "re-sign or re-export with --sign-key",
            {"slug": exc.slug},
        )
    if signer is None:
        return integrity, Check(
            "signature", PASS, "unsigned (reflex serve --trusted-keys would refuse it)"
        )
    return integrity, Check(
        "signature",
        PASS,
        f"signed by key {signer.key_id} (not checked against trusted keys: pass --trusted-keys)",
        details={"key_id": signer.key_id},
    )


def _expected_dims(artifact: Any) -> dict[str, dict[int, int]]:
    """Fixed axes (axis -> size) each named input must have, from the manifest's scalars."""
    n = len(artifact.cameras)
    return {
        "images": {1: n, 2: 3, 3: artifact.image.height, 4: artifact.image.width},
        "image_masks": {1: n},
        "tokens": {1: artifact.tokenizer.max_length},
        "token_masks": {1: artifact.tokenizer.max_length},
        "state": {1: artifact.max_state_dim},
        "noise": {1: artifact.chunk_size, 2: artifact.max_action_dim},
        "x_t": {1: artifact.chunk_size, 2: artifact.max_action_dim},
    }


def _io_problems(artifact: Any, sessions: Mapping[str, Any]) -> list[str]:
    """Graph inputs/outputs as loaded vs as the manifest records them, plus fixed dims."""
    problems: list[str] = []
    expected = _expected_dims(artifact)
    for name, session in sessions.items():
        spec = artifact.graphs[name]
        live_in = [i.name for i in session.get_inputs()]
        live_out = [o.name for o in session.get_outputs()]
        if live_in != spec.input_names:
            problems.append(f"{name}: inputs {live_in} but the manifest says {spec.input_names}")
        if live_out != spec.output_names:
            problems.append(f"{name}: outputs {live_out} but the manifest says {spec.output_names}")
        for arg in session.get_inputs():
            for axis, size in expected.get(arg.name, {}).items():
                shape = list(arg.shape)
                got = shape[axis] if axis < len(shape) else None
                if isinstance(got, int) and got != size:
                    problems.append(
                        f"{name}: input {arg.name} axis {axis} is {got}, the manifest implies {size}"
                    )
    return problems


def artifact_checks(
    directory: Path,
    *,
    embodiment: Any = None,
    embodiment_requested: bool = False,
    providers: Sequence[str] | None = None,
    allow_cpu_fallback: bool = False,
    runs: int = 3,
    trusted_keys: Path | None = None,
) -> list[Check]:
    """Manifest, integrity digest, signature, hashes, parity, graph I/O, a timed dry run and
    the embodiment fit."""
    import numpy as np

    from reflex_core.artifact import Artifact
    from reflex_core.errors import ArtifactError, ReflexError

    checks: list[Check] = []
    try:
        artifact = Artifact.load(directory, verify=False)
    except ArtifactError as exc:
        checks.append(
            Check(
                "artifact",
                FAIL,
                exc.message,
                "export it again with `reflex export`",
                {"slug": exc.slug},
            )
        )
        return checks
    checks.append(
        Check(
            "artifact",
            PASS,
            f"{artifact.model.get('name')} ({artifact.family}), {artifact.mode}, {artifact.precision}, "
            f"opset {artifact.opset}, exported by reflex {artifact.reflex_version}",
            details={"config_sha256": artifact.config_sha256},
        )
    )
    checks.append(_preprocessing_check(artifact))
    verified = True
    integrity, signature = _integrity_checks(artifact, trusted_keys)
    checks.extend([integrity, signature])
    if FAIL in (integrity.status, signature.status):
        verified = False
    try:
        artifact.verify_hashes()
        checks.append(
            Check("hashes", PASS, f"{len(list(artifact.files()))} files match their sha256")
        )
    except ArtifactError as exc:
        verified = False
        checks.append(
            Check(
                "hashes",
                FAIL,
                exc.message,
                "re-export; never edit artifact files by hand",
                exc.details,
            )
        )
    try:
        artifact.verify_parity()
        summary = artifact.parity_report()
        worst = summary.get("worst") or {}
        checks.append(
            Check(
                "parity",
                PASS,
                "the export parity gate passed" + _worst_text(worst),
                details={"worst": worst},
            )
        )
    except ArtifactError as exc:
        verified = False
        checks.append(
            Check("parity", FAIL, exc.message, "fix the export until its parity gate passes")
        )

    emb = embodiment
    if emb is None and not embodiment_requested and artifact.embodiment is not None:
        from reflex_core.embodiments import EmbodimentConfig
        from reflex_core.errors import ConfigError

        recorded = dict(artifact.embodiment)
        name = recorded.pop("name", None)  # the manifest adds it beside the config document
        try:
            emb = EmbodimentConfig.from_dict(recorded, name=name)
        except (ConfigError, KeyError, TypeError) as exc:
            checks.append(
                Check("embodiment", WARN, f"the artifact's embodiment record is not usable: {exc}")
            )
        else:
            checks.append(
                Check(
                    "embodiment",
                    PASS,
                    f"{name!r}, recorded in the artifact at export (serve with --embodiment "
                    f"{name} to apply it)",
                )
            )
    checks += embodiment_checks(artifact, emb)

    if not verified:
        checks.append(
            Check("dry run", FAIL, "skipped: the artifact is not verified", "see the checks above")
        )
        return checks
    from reflex_core.runtime import load_policy

    try:
        policy = load_policy(
            artifact,
            embodiment=emb if emb is not None and emb_fits(artifact, emb) else None,
            providers=providers,
            allow_cpu_fallback=allow_cpu_fallback,
        )
    except ReflexError as exc:
        hint = (
            "serve with --providers cpu or --allow-cpu-fallback, or fix the GPU libraries"
            if exc.slug.startswith("provider")
            else "re-export the model"
        )
        checks.append(
            Check("dry run", FAIL, f"the runtime cannot load it: {exc}", hint, {"slug": exc.slug})
        )
        return checks
    problems = _io_problems(artifact, policy.runner.sessions) + _contract_problems(
        artifact, policy.runner.sessions
    )
    checks.append(
        Check(
            "graph io",
            FAIL if problems else PASS,
            "; ".join(problems)
            if problems
            else "graph inputs/outputs match the manifest and the runtime contract",
            "re-export with this reflex version" if problems else None,
        )
    )
    try:
        warm = policy.warmup()
        outputs = [policy.infer([policy.dummy_observation()]) for _ in range(runs)]
    except ReflexError as exc:
        checks.append(Check("dry run", FAIL, f"inference failed: {exc}", "re-export the model"))
        return checks
    total = statistics.median(o.timings["total_ms"] for o in outputs)
    finite = all(np.isfinite(o.actions).all() for o in [warm, *outputs])
    timing = outputs[-1].timings
    parts = [f"median {total:.1f} ms over {runs} runs (warm-up {warm.timings['total_ms']:.1f} ms)"]
    if timing.get("prefix_ms") is not None:
        parts.append(
            f"prefix {timing['prefix_ms']:.1f} ms + {timing['steps']} expert steps {timing['expert_ms']:.1f} ms"
        )
    parts.append(f"actions {tuple(outputs[-1].actions.shape)}")
    parts.append(
        "providers " + ", ".join(sorted({p for v in policy.info["providers"].values() for p in v}))
    )
    checks.append(
        Check(
            "dry run",
            PASS if finite else FAIL,
            "; ".join(parts) if finite else "the policy produced NaN or Inf actions",
            None if finite else "check the export's parity report and the normalization stats",
            {"median_total_ms": total, "timings": timing, "providers": policy.info["providers"]},
        )
    )
    return checks


def _worst_text(worst: Mapping[str, Any]) -> str:
    """``" (worst: expert_denoise velocity, case 2, max abs 1.7e-06 of 0.0001 allowed)"``."""
    if not worst:
        return ""
    where = " ".join(str(worst[k]) for k in ("graph", "output") if worst.get(k) is not None)
    text = f" (worst: {where}"
    if worst.get("case") is not None:
        text += f", case {worst['case']}"
    if isinstance(worst.get("max_abs_error"), int | float):
        text += f", max abs {worst['max_abs_error']:.2e}"
        if worst.get("allowed_abs") is not None:
            text += f" of {worst['allowed_abs']:g} allowed"
    return text + ")"


def emb_fits(artifact: Any, emb: Any) -> bool:
    """Whether the runtime accepts this embodiment for this artifact (dims only)."""
    return (
        int(emb.action_dim) == artifact.action_dim and int(emb.state_dim) <= artifact.max_state_dim
    )


def embodiment_checks(artifact: Any, emb: Any) -> list[Check]:
    """Dims, chunk size, cameras and gripper of ``emb`` against ``artifact``."""
    if emb is None:
        return [
            Check(
                "embodiment",
                WARN,
                "no embodiment: the server returns actions without robot mapping (no gripper "
                "block) and says raw_actions in /health",
                "pass --embodiment NAME or --custom-embodiment-config PATH",
            )
        ]
    checks: list[Check] = []
    label = f"embodiment {emb.name!r}"
    recorded = (artifact.embodiment or {}).get("name")
    if recorded and recorded != emb.name:
        checks.append(
            Check(
                "embodiment",
                WARN,
                f"the artifact was exported for {recorded!r}, checking against {emb.name!r}",
            )
        )
    if emb.action_dim != artifact.action_dim:
        checks.append(
            Check(
                "action dim",
                FAIL,
                f"{label} has action_dim {emb.action_dim}, the model outputs {artifact.action_dim}",
                "export the model for this robot (reflex export --embodiment NAME)",
            )
        )
    else:
        checks.append(Check("action dim", PASS, f"{emb.action_dim} on both sides"))
    state_stats = artifact.normalization.get("state")
    stats_len = None
    if state_stats is not None and state_stats.get("mode") != "IDENTITY":
        stats_len = len(next(v for k, v in state_stats.items() if k != "mode"))
    if emb.state_dim > artifact.max_state_dim:
        checks.append(
            Check(
                "state dim",
                FAIL,
                f"{label} has state_dim {emb.state_dim}; the model takes at most {artifact.max_state_dim}",
                "use a matching embodiment",
            )
        )
    elif stats_len is not None and stats_len != emb.state_dim:
        checks.append(
            Check(
                "state dim",
                FAIL,
                f"{label} has state_dim {emb.state_dim} but the artifact's state statistics have {stats_len}",
                "use the embodiment the model was trained for",
            )
        )
    elif emb.state_dim != artifact.state_dim:
        checks.append(
            Check(
                "state dim",
                WARN,
                f"{label} has state_dim {emb.state_dim}, the checkpoint {artifact.state_dim}; states are zero-padded to {artifact.max_state_dim}",
                "check that the state layout matches the training data",
            )
        )
    else:
        checks.append(Check("state dim", PASS, f"{emb.state_dim} on both sides"))
    if emb.control.chunk_size != artifact.chunk_size:
        checks.append(
            Check(
                "chunk size",
                WARN,
                f"{label} control.chunk_size {emb.control.chunk_size} differs from the model's "
                f"{artifact.chunk_size}: chunks have {artifact.chunk_size} steps",
                "set control.chunk_size to the model's chunk_size, or plan execution for it",
            )
        )
    else:
        checks.append(Check("chunk size", PASS, f"{artifact.chunk_size} steps"))
    robot = list(emb.camera_names)
    model = list(artifact.cameras)
    extra = [c for c in robot if c not in model and not (c == "image" and model)]
    absent = [c for c in model if c not in robot]
    if extra or absent:
        msg = []
        if extra:
            msg.append(
                f"the robot's cameras {extra} are unknown to the model (requests sending them get 422 unknown-camera)"
            )
        if absent:
            msg.append(
                f"the model's cameras {absent} are not on the robot (they will be masked out)"
            )
        checks.append(
            Check(
                "cameras",
                WARN,
                "; ".join(msg),
                "name the robot's cameras as the model's: " + ", ".join(model),
            )
        )
    else:
        checks.append(Check("cameras", PASS, ", ".join(model)))
    g = emb.gripper
    if g is None:
        checks.append(Check("gripper", PASS, "no gripper dimension"))
    elif g.component_idx >= artifact.action_dim:
        checks.append(
            Check(
                "gripper",
                FAIL,
                f"gripper index {g.component_idx} is outside the model's {artifact.action_dim} action dims",
                "fix gripper.component_idx",
            )
        )
    else:
        lo, hi = (float(x) for x in emb.action_ranges[g.component_idx])
        joint = emb.joint_names[g.component_idx] if g.component_idx < len(emb.joint_names) else "?"
        rule = (
            f"inverted: closed (-> {lo}) when f <= {1 - g.close_threshold:g}, else {hi}"
            if g.inverted
            else f"closed (-> {hi}) when f >= {g.close_threshold:g}, else {lo}"
        )
        checks.append(
            Check(
                "gripper", PASS, f"dim {g.component_idx} ({joint}), range [{lo:g}, {hi:g}], {rule}"
            )
        )
    action_src = "artifact" if artifact.normalization.get("action") else "embodiment mean/std"
    state_src = "artifact" if artifact.normalization.get("state") else "embodiment mean/std"
    checks.append(Check("normalization", PASS, f"state: {state_src}; actions: {action_src}"))
    return checks
