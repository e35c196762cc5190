"""``Artifact.load``: the manifest, hashes and the parity verdict of a real exported artifact.

Every test works on a copy of a session-cached export (tests/conftest_artifacts.py) and then
breaks exactly one thing.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from reflex_core.artifact import CONFIG_FILE, PARITY_FILE, Artifact, sha256_file
from reflex_core.errors import ArtifactError

pytestmark = pytest.mark.slow  # the first test of a session exports the tiny models


@pytest.fixture
def copy_of(tmp_path: Path) -> Callable[[Path], Path]:
    count = iter(range(100))

    def make(source: Path) -> Path:
        return Path(shutil.copytree(source, tmp_path / f"{source.name}-{next(count)}"))

    return make


def _edit_config(
    path: Path, edit: Callable[[dict[str, Any]], None], *, reseal: bool = True
) -> None:
    """Edit the manifest; ``reseal`` recomputes its integrity digest, as an export that wrote
    those values would have (``reseal=False`` is a hand edit after export)."""
    from reflex_core.artifact.integrity import seal

    config = json.loads((path / CONFIG_FILE).read_text())
    edit(config)
    (path / CONFIG_FILE).write_text(json.dumps(seal(config) if reseal else config))


def _slug(path: Path, **kwargs: Any) -> str:
    with pytest.raises(ArtifactError) as exc:
        Artifact.load(path, **kwargs)
    return exc.value.slug


def test_load_exposes_the_manifest(tiny_pi05_decomposed: Path) -> None:
    a = Artifact.load(tiny_pi05_decomposed)
    config = json.loads((tiny_pi05_decomposed / CONFIG_FILE).read_text())
    assert a.schema_version == 2 and a.mode == "decomposed" and a.family == "pi05"
    assert (a.chunk_size, a.action_dim, a.state_dim) == (
        config["chunk_size"], config["action_dim"], config["state_dim"],
    )  # fmt: skip
    assert a.max_action_dim == 32 and a.feature_dim == 64
    assert a.model["details"] == {"num_layers": 2}
    assert a.model["provenance"]["pipeline"] == "reflex-builtin"
    assert a.cameras == ["front", "wrist"]
    assert (a.image.height, a.image.width, a.image.range) == (32, 32, (-1.0, 1.0))
    assert a.tokenizer_path == tiny_pi05_decomposed / "tokenizer.json"
    assert a.tokenizer.pad_id == 0 and a.tokenizer.padding_side == "right"
    assert a.prompt.template == "Task: {task}, State: {state};\nAction: "
    assert a.prompt.state_bins == 256 and a.prompt.clean_task and a.prompt.state_pad_to is None
    assert (a.image.pad_value, a.image.pad_position, a.image.missing_fill) == (0.0, "center", -1.0)
    assert (a.flow.t_start, a.flow.t_end) == (1.0, 0.0)
    state = a.normalization["state"]
    assert state is not None and state["mode"] == "QUANTILES"
    assert state["q01"].dtype == np.float32 and state["q01"].shape == (a.state_dim,)
    assert a.graph_path("expert_denoise") == tiny_pi05_decomposed / "expert_denoise.onnx"
    assert a.graphs["vlm_prefix"].output_names[-2:] == ["prefix_mask", "features"]
    assert a.parity["passed"] is True and a.parity_report()["passed"] is True
    assert a.config_sha256 == sha256_file(tiny_pi05_decomposed / CONFIG_FILE)
    with pytest.raises(ArtifactError) as exc:
        a.graph_path("policy")
    assert exc.value.slug == "artifact-schema"


@pytest.mark.parametrize(
    "file", ["expert_denoise.onnx", "vlm_prefix.onnx", "tokenizer.json", PARITY_FILE]
)
def test_a_changed_file_is_a_hash_mismatch(
    tiny_pi05_decomposed: Path, copy_of: Callable[[Path], Path], file: str
) -> None:
    path = copy_of(tiny_pi05_decomposed)
    data = bytearray((path / file).read_bytes())
    data[len(data) // 2] ^= 0x01  # one bit
    (path / file).write_bytes(bytes(data))
    with pytest.raises(ArtifactError) as exc:
        Artifact.load(path)
    assert exc.value.slug == "artifact-hash-mismatch"
    assert exc.value.details["file"] == file
    Artifact.load(path, verify=False)  # the export pipeline's own view still reads it


def test_a_changed_external_data_file_is_a_hash_mismatch(
    tiny_pi05_monolithic: Path, copy_of: Callable[[Path], Path]
) -> None:
    path = copy_of(tiny_pi05_monolithic)
    artifact = Artifact.load(path)
    data_file = artifact.graphs["policy"].external_data_file
    assert data_file is not None
    with open(path / data_file, "r+b") as f:
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0x80]))
    with pytest.raises(ArtifactError) as exc:
        Artifact.load(path)
    assert exc.value.slug == "artifact-hash-mismatch" and exc.value.details["file"] == data_file
    (path / data_file).unlink()
    assert _slug(path, verify=False) == "artifact-missing"


def test_the_runtime_refuses_a_tampered_artifact(
    tiny_pi05_decomposed: Path, copy_of: Callable[[Path], Path]
) -> None:
    from reflex_core.runtime import load_policy

    path = copy_of(tiny_pi05_decomposed)
    with open(path / "expert_denoise.onnx", "ab") as f:
        f.write(b"\0")
    with pytest.raises(ArtifactError) as exc:
        load_policy(path)
    assert exc.value.slug == "artifact-hash-mismatch"


def test_a_failed_parity_verdict_is_refused(
    tiny_pi05_decomposed: Path, copy_of: Callable[[Path], Path]
) -> None:
    # The manifest says failed (what the export pipeline writes into DIR.failed).
    path = copy_of(tiny_pi05_decomposed)
    _edit_config(path, lambda c: c["parity"].update(passed=False))
    assert _slug(path) == "artifact-parity-failed"
    # The report says failed, and its hash in the manifest was updated to match.
    path2 = copy_of(tiny_pi05_decomposed)
    report = json.loads((path2 / PARITY_FILE).read_text())
    report["passed"] = False
    report["worst"] = {**report["worst"], "graph": "expert_denoise", "case": 2}
    (path2 / PARITY_FILE).write_text(json.dumps(report))
    _edit_config(path2, lambda c: c["parity"].update(sha256=sha256_file(path2 / PARITY_FILE)))
    with pytest.raises(ArtifactError) as exc:
        Artifact.load(path2)
    assert exc.value.slug == "artifact-parity-failed"
    assert "graph 'expert_denoise', case 2" in exc.value.message
    Artifact.load(path2, verify=False)


def test_missing_pieces(tmp_path: Path, tiny_pi05_decomposed: Path, copy_of: Any) -> None:
    assert _slug(tmp_path / "nowhere") == "artifact-missing"
    assert _slug(tmp_path) == "artifact-missing"  # a directory without a manifest
    path = copy_of(tiny_pi05_decomposed)
    (path / "vlm_prefix.onnx").unlink()
    assert _slug(path, verify=False) == "artifact-missing"


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda c: c.update(schema_version=3), "schema_version 3"),
        (lambda c: c["preprocessing"]["image"].update(pad_position="left"), "pad_position"),
        (lambda c: c["preprocessing"]["prompt"].update(template="{task} {robot}"), "robot"),
        (lambda c: c["preprocessing"]["prompt"].update(state_bins=None), "state_bins"),
        (lambda c: c["preprocessing"]["flow"].update(t_end=1.0), "t_start and t_end"),
        (lambda c: c["preprocessing"].pop("flow"), "flow"),
        (lambda c: c.pop("chunk_size"), "chunk_size"),
        (lambda c: c["graphs"]["vlm_prefix"].update(file="../vlm_prefix.onnx"), "relative path"),
        (lambda c: c["graphs"]["expert_denoise"].update(sha256="xyz"), "sha256"),
        (lambda c: c.update(mode="monolithic"), "needs graphs ['policy']"),
        (lambda c: c.update(action_dim=99), "exceeds max_action_dim"),
        (lambda c: c["normalization"].update(state={"mode": "ZSCORE"}), "normalization"),
        (lambda c: c.update(precision="int4"), "precision"),
    ],
)
def test_an_invalid_manifest_is_a_schema_error(
    tiny_pi05_decomposed: Path, copy_of: Callable[[Path], Path], edit: Any, message: str
) -> None:
    path = copy_of(tiny_pi05_decomposed)
    _edit_config(path, edit)
    with pytest.raises(ArtifactError) as exc:
        Artifact.load(path, verify=False)
    assert exc.value.slug == "artifact-schema"
    assert message in exc.value.message


def test_unreadable_manifest(tiny_pi05_decomposed: Path, copy_of: Callable[[Path], Path]) -> None:
    path = copy_of(tiny_pi05_decomposed)
    (path / CONFIG_FILE).write_text("{not json")
    assert _slug(path) == "artifact-schema"


def _as_schema_1(config: dict[str, Any]) -> None:
    """What reflex wrote before the preprocessing contract (schema_version 1)."""
    pre = config.pop("preprocessing")
    config["schema_version"] = 1
    config["num_layers"] = config["model"].pop("details")["num_layers"]
    config["model"].pop("provenance")
    config["cameras"] = pre["image"]["cameras"]
    config["image"] = {
        "height": pre["image"]["height"],
        "width": pre["image"]["width"],
        "resize": "resize_with_pad",
        "range": [-1, 1],
    }
    config["prompt"] = {"format": "pi05", "state_bins": 256}
    for key in ("add_special_tokens",):
        config["tokenizer"].pop(key)


def test_a_schema_1_artifact_is_migrated_and_still_serves(
    tiny_pi05_decomposed: Path, copy_of: Callable[[Path], Path]
) -> None:
    from reflex_core.runtime import load_policy
    from reflex_core.wire.types import Observation

    path = copy_of(tiny_pi05_decomposed)
    current = Artifact.load(path)
    _edit_config(path, _as_schema_1)
    old = Artifact.load(path)  # hashes and parity verdict are unchanged: it verifies
    assert old.schema_version == 2 and old.config["migrated_from"] == 1
    assert old.io == current.io and old.tokenizer == current.tokenizer
    assert old.model["details"] == {"num_layers": 2}
    obs = Observation(
        state=np.linspace(-0.5, 0.5, current.state_dim, dtype=np.float32),
        images={"front": np.full((40, 30, 3), 90, np.uint8)},
        prompt="pick up the cube",
    )
    noise = np.random.default_rng(0).standard_normal(
        (1, current.chunk_size, current.max_action_dim), dtype=np.float32
    )
    a = load_policy(tiny_pi05_decomposed, providers=["cpu"]).infer([obs], noise).actions
    b = load_policy(path, providers=["cpu"]).infer([obs], noise).actions
    assert np.array_equal(a, b)


def test_a_schema_1_manifest_missing_a_field_is_refused_with_a_hint(
    tiny_pi05_decomposed: Path, copy_of: Callable[[Path], Path]
) -> None:
    path = copy_of(tiny_pi05_decomposed)
    _edit_config(path, lambda c: (_as_schema_1(c), c.pop("prompt")))
    with pytest.raises(ArtifactError) as exc:
        Artifact.load(path, verify=False)
    assert exc.value.slug == "artifact-schema" and "re-export" in exc.value.message
