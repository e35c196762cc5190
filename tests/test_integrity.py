"""Nothing that changes an action may change unnoticed: the manifest digest, ed25519 signatures,
and a parity gate in robot units (issue 16, "Integrity")."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reflex_core.artifact import CONFIG_FILE, Artifact
from reflex_core.artifact.integrity import SIGNATURE_FILE, generate_keypair, seal, write_signature
from reflex_core.errors import ArtifactError, ConfigError, ParityError

pytestmark = pytest.mark.slow  # works on copies of a session-cached export

REFLEX = str(Path(sys.executable).with_name("reflex"))


@pytest.fixture
def artifact(tiny_pi05_decomposed: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(tiny_pi05_decomposed, tmp_path / "art"))


def _edit(path: Path, edit: Callable[[dict[str, Any]], None], *, reseal: bool) -> None:
    config = json.loads((path / CONFIG_FILE).read_text())
    edit(config)
    (path / CONFIG_FILE).write_text(json.dumps(seal(config) if reseal else config))


def _scale_q99(config: dict[str, Any]) -> None:
    action = config["normalization"]["action"]
    action["q99"] = [10 * v for v in action["q99"]]


def _slug(path: Path, **kwargs: Any) -> ArtifactError:
    with pytest.raises(ArtifactError) as exc:
        Artifact.load(path, **kwargs)
    return exc.value


def test_a_hand_edited_stat_is_refused_naming_file_and_field(artifact: Path) -> None:
    _edit(artifact, _scale_q99, reseal=False)
    error = _slug(artifact)
    assert error.slug == "artifact-config-tampered"
    assert error.details == {"file": CONFIG_FILE, "fields": ["normalization.action"]}
    assert "reflex_config.json" in error.message and "normalization.action" in error.message
    Artifact.load(artifact, verify=False)  # readable for diagnosis, never served

    from reflex_core.runtime import load_policy

    with pytest.raises(ArtifactError) as exc:
        load_policy(artifact)
    assert exc.value.slug == "artifact-config-tampered"


@pytest.mark.parametrize(
    ("edit", "fields"),
    [
        (lambda c: c["preprocessing"]["image"].update(pad_value=-1.0), ["preprocessing.image"]),
        (lambda c: c["preprocessing"]["prompt"].update(template="{task}"), ["preprocessing.prompt"]),
        (lambda c: c.update(chunk_size=c["chunk_size"] + 1), ["chunk_size"]),
        (lambda c: c.pop("integrity"), ["integrity"]),
        (lambda c: c.update(extra_field=1), ["extra_field"]),
    ],
)
def test_every_field_is_covered(artifact: Path, edit: Any, fields: list[str]) -> None:
    _edit(artifact, edit, reseal=False)
    error = _slug(artifact)
    assert error.slug == "artifact-config-tampered" and error.details["fields"] == fields


def test_serve_and_doctor_refuse_a_tampered_manifest(artifact: Path) -> None:
    _edit(artifact, _scale_q99, reseal=False)
    served = subprocess.run(
        [REFLEX, "serve", str(artifact), "--port", "0"], capture_output=True, text=True, timeout=120
    )
    assert served.returncode != 0
    assert "artifact-config-tampered" in served.stderr and "normalization.action" in served.stderr
    doctor = subprocess.run(
        [REFLEX, "doctor", str(artifact), "--json"], capture_output=True, text=True, timeout=120
    )
    assert doctor.returncode == 1
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["integrity"]["status"] == "FAIL"
    assert checks["integrity"]["details"]["fields"] == ["normalization.action"]


def test_signatures_bind_the_artifact_to_a_trusted_key(artifact: Path, tmp_path: Path) -> None:
    trusted_dir, other_dir = tmp_path / "trusted", tmp_path / "other"
    trusted_dir.mkdir()
    other_dir.mkdir()
    key, public = generate_keypair(tmp_path / "lab")
    shutil.copy(public, trusted_dir / "lab.pem")
    other_key, other_public = generate_keypair(tmp_path / "intruder")
    shutil.copy(other_public, other_dir / "intruder.pem")
    with pytest.raises(ConfigError) as refused:
        generate_keypair(tmp_path / "lab")  # never overwrites a key
    assert refused.value.slug == "output-exists"

    assert _slug(artifact, trusted_keys=trusted_dir).slug == "artifact-unsigned"
    Artifact.load(artifact)  # without trusted keys nothing changes

    from reflex_core.artifact.integrity import load_private_key

    loaded = Artifact.load(artifact)
    digest = loaded.verify_integrity()
    assert digest is not None
    write_signature(artifact, digest, load_private_key(key))
    signer = Artifact.load(artifact, trusted_keys=trusted_dir).require_signature(trusted_dir)
    assert signer.trusted_as == "lab.pem"
    assert _slug(artifact, trusted_keys=other_dir).slug == "artifact-signer-untrusted"

    # An edit that also recomputes the digest gets past the digest, never past the signature.
    _edit(artifact, _scale_q99, reseal=True)
    Artifact.load(artifact)
    assert _slug(artifact, trusted_keys=trusted_dir).slug == "artifact-signature-invalid"

    # A forged signature.json (right digest, wrong key bytes) does not verify either.
    digest = Artifact.load(artifact).verify_integrity()
    doc = json.loads((artifact / SIGNATURE_FILE).read_text())
    write_signature(artifact, str(digest), load_private_key(other_key))
    forged = json.loads((artifact / SIGNATURE_FILE).read_text())
    forged["public_key"] = doc["public_key"]
    (artifact / SIGNATURE_FILE).write_text(json.dumps(forged))
    assert _slug(artifact, trusted_keys=trusted_dir).slug == "artifact-signature-invalid"


def test_cli_keygen_export_sign_serve_and_doctor(tmp_path: Path) -> None:
    keygen = subprocess.run(
        [REFLEX, "keygen", str(tmp_path / "lab")], capture_output=True, text=True, timeout=60
    )
    assert keygen.returncode == 0, keygen.stderr
    trusted = tmp_path / "keys"
    trusted.mkdir()
    shutil.copy(tmp_path / "lab.pem", trusted / "lab.pem")
    out = tmp_path / "export"
    export = subprocess.run(
        [REFLEX, "export", "tiny-pi05", "-o", str(out), "--sign-key", str(tmp_path / "lab.key"),
         "--parity-cases", "1", "-q"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert export.returncode == 0, export.stderr
    assert (out / SIGNATURE_FILE).is_file()
    doctor = subprocess.run(
        [REFLEX, "doctor", str(out), "--trusted-keys", str(trusted), "--json", "--runs", "1"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    checks = {c["name"]: c for c in json.loads(doctor.stdout)["checks"]}
    assert checks["signature"]["status"] == "PASS"
    assert "trusted as lab.pem" in checks["signature"]["message"]

    bad_key = tmp_path / "not-a-key"
    bad_key.write_text("nope")
    refused = subprocess.run(
        [REFLEX, "export", "tiny-pi05", "-o", str(tmp_path / "x"), "--sign-key", str(bad_key)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert refused.returncode != 0 and "sign-key-invalid" in refused.stderr
    assert not (tmp_path / "x").exists()


def test_the_gate_compares_robot_units_through_the_manifest(
    tiny_checkpoint: Any, tmp_path: Path
) -> None:
    """A manifest whose stats are not the checkpoint's fails the gate, even though every graph
    matches its torch reference."""
    from reflex_core.export.parity import ParitySettings
    from reflex_core.export.pipeline import ExportRequest, export_artifact

    def corrupt_stats(directory: Path, graphs: Any) -> None:
        _edit(directory, _scale_q99, reseal=True)

    request = ExportRequest(
        source="tiny-pi05",
        output=tmp_path / "out",
        parity=ParitySettings(cases=2, threads=1),
    )
    with pytest.raises(ParityError) as exc:
        export_artifact(request, policy=tiny_checkpoint("tiny-pi05"), after_export=corrupt_stats)
    report = json.loads(Path(exc.value.details["report"]).read_text())
    assert report["worst"]["output"] == "actions_robot"
    assert all(g["passed"] for g in report["graphs"].values())
    case = report["end_to_end"]["cases"][0]["outputs"]
    assert case["actions"]["passed"] and not case["actions_robot"]["passed"]
    assert not (tmp_path / "out").exists()


def test_a_clean_export_passes_in_robot_units(tiny_pi05_decomposed: Path) -> None:
    report = Artifact.load(tiny_pi05_decomposed).parity_report()
    for case in report["end_to_end"]["cases"]:
        robot = case["outputs"]["actions_robot"]
        assert robot["passed"] and robot["max_abs_error"] < 1e-4
        assert np.isfinite(robot["ref_max_abs"])
