"""``reflex doctor DIR``: every check of an exported artifact, in the order they print."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from reflex_core.commands.doctor.embodiment import embodiment_checks, recorded_embodiment
from reflex_core.commands.doctor.graphs import dry_run_checks
from reflex_core.commands.doctor.integrity import verification_checks
from reflex_core.commands.doctor.preprocessing import preprocessing_check
from reflex_core.commands.doctor.report import FAIL, PASS, Check


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
    from reflex_core.artifact import Artifact
    from reflex_core.errors import ArtifactError

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
    checks.append(preprocessing_check(artifact))
    verification, verified = verification_checks(artifact, trusted_keys)
    checks += verification

    emb = embodiment
    if emb is None and not embodiment_requested:
        emb, recorded = recorded_embodiment(artifact)
        if recorded is not None:
            checks.append(recorded)
    checks += embodiment_checks(artifact, emb)

    if not verified:
        checks.append(
            Check("dry run", FAIL, "skipped: the artifact is not verified", "see the checks above")
        )
        return checks
    return checks + dry_run_checks(
        artifact, emb, providers=providers, allow_cpu_fallback=allow_cpu_fallback, runs=runs
    )
