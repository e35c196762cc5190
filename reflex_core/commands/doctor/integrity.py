"""Can the artifact be trusted: the manifest's digest, its signature, the file hashes and the
export's parity verdict. Any FAIL here means the dry run is skipped."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from reflex_core.commands.doctor.report import FAIL, PASS, WARN, Check


def verification_checks(artifact: Any, trusted_keys: Path | None) -> tuple[list[Check], bool]:
    """Integrity, signature, hashes and parity, in that order, and whether all of them hold."""
    from reflex_core.errors import ArtifactError

    integrity, signature = _integrity_checks(artifact, trusted_keys)
    checks = [integrity, signature]
    verified = FAIL not in (integrity.status, signature.status)
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
    return checks, verified


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
