"""``reflex doctor``: environment and artifact checks, PASS/WARN/FAIL, exit status."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest

from reflex_core.cli import build_parser
from reflex_core.commands import doctor
from reflex_core.plugin.manager import make_plugin_manager


def run_doctor(capsys, *argv: str) -> tuple[int, dict]:
    pm = make_plugin_manager(load_entrypoints=False)
    args = build_parser(pm).parse_args(["doctor", *argv, "--json"])
    code = doctor.run(args, pm)
    payload = json.loads(capsys.readouterr().out)
    return code, payload


def by_name(payload: dict) -> dict[str, dict]:
    return {c["name"]: c for c in payload["checks"]}


def embodiment_file(
    tmp_path: Path,
    action_dim: int = 3,
    chunk: int = 4,
    cameras: tuple[str, ...] = ("base", "wrist"),
) -> Path:
    doc = {
        "schema_version": 1,
        "embodiment": "custom",
        "action_space": {
            "type": "continuous",
            "dim": action_dim,
            "ranges": [[-1, 1], [-1, 1], [0, 0.08], [-1, 1]][:action_dim],
        },
        "normalization": {
            "mean_action": [0.0] * action_dim,
            "std_action": [1.0] * action_dim,
            "mean_state": [0.0] * 4,
            "std_state": [1.0] * 4,
        },
        "gripper": {"component_idx": 2, "close_threshold": 0.6, "inverted": True},
        "cameras": [
            {"name": c, "resolution": [640, 480], "fps": 30, "color_space": "rgb8"} for c in cameras
        ],
        "control": {"frequency_hz": 10, "chunk_size": chunk, "rtc_execution_horizon": 2},
        "constraints": {
            "max_ee_velocity": 1.0,
            "max_gripper_velocity": 1.0,
            "collision_check": False,
        },
    }
    path = tmp_path / f"emb_{action_dim}_{chunk}_{'_'.join(cameras)}.json"
    path.write_text(json.dumps(doc))
    return path


def test_two_onnxruntime_wheels_side_by_side_fail() -> None:
    checks = doctor.environment_checks(
        distributions={"onnxruntime": "1.31.1", "onnxruntime-gpu": "1.31.1", "numpy": "2"}
    )
    wheel = next(c for c in checks if c.name == "onnxruntime wheel")
    assert wheel.status == "FAIL" and "pip uninstall -y onnxruntime onnxruntime-gpu" in wheel.hint
    single = doctor.environment_checks(distributions={"onnxruntime-gpu": "1.31.1"})
    wheel = next(c for c in single if c.name == "onnxruntime wheel")
    assert wheel.status == "PASS" and "GPU wheel" in wheel.message


def test_the_installed_wheel_is_found_by_distribution_name() -> None:
    wheels = doctor.installed_ort_wheels()
    assert list(wheels) == ["onnxruntime"]  # this venv: the CPU wheel only


def test_a_provider_that_is_advertised_but_does_not_load_is_reported() -> None:
    def cpu_only(model, sess_options, providers):
        return ort.InferenceSession(model, sess_options, providers=["CPUExecutionProvider"])

    probed = doctor.probe_providers(
        ["CUDAExecutionProvider", "CPUExecutionProvider", "AzureExecutionProvider"], cpu_only
    )
    assert probed["CPUExecutionProvider"] is None
    assert "fell back" in probed["CUDAExecutionProvider"]
    assert "AzureExecutionProvider" not in probed
    checks = doctor.environment_checks(
        available=["CUDAExecutionProvider", "CPUExecutionProvider"], session_factory=cpu_only
    )
    cuda = next(c for c in checks if c.name == "provider CUDAExecutionProvider")
    assert cuda.status == "WARN" and "--providers cpu" in cuda.hint
    # the real probe on this machine: the CPU provider loads
    assert doctor.probe_providers(["CPUExecutionProvider"]) == {"CPUExecutionProvider": None}


def test_a_good_artifact_passes(runtime_graphs, tmp_path, capsys) -> None:
    art = runtime_graphs.write_artifact(tmp_path / "art")
    code, payload = run_doctor(
        capsys, str(art), "--custom-embodiment-config", str(embodiment_file(tmp_path))
    )
    checks = by_name(payload)
    assert code == 0 and payload["ok"] is True
    for name in (
        "artifact",
        "hashes",
        "parity",
        "graph io",
        "dry run",
        "action dim",
        "state dim",
        "chunk size",
        "cameras",
        "gripper",
    ):
        assert checks[name]["status"] == "PASS", (name, checks[name])
    assert "inverted" in checks["gripper"]["message"] and "f <= 0.4" in checks["gripper"]["message"]
    assert checks["dry run"]["details"]["timings"]["steps"] == runtime_graphs.Dims().num_steps
    assert checks["cameras"]["message"] == "base, wrist"


def test_a_tampered_artifact_fails_and_skips_the_dry_run(runtime_graphs, tmp_path, capsys) -> None:
    art = runtime_graphs.write_artifact(tmp_path / "art")
    (art / "tokenizer.json").write_text((art / "tokenizer.json").read_text() + " ")
    code, payload = run_doctor(capsys, str(art))
    checks = by_name(payload)
    assert code == 1 and payload["ok"] is False
    assert (
        checks["hashes"]["status"] == "FAIL"
        and checks["hashes"]["details"]["file"] == "tokenizer.json"
    )
    assert checks["dry run"]["status"] == "FAIL" and "skipped" in checks["dry run"]["message"]
    assert checks["embodiment"]["status"] == "WARN"  # none given


def test_parity_failure_and_missing_artifact(runtime_graphs, tmp_path, capsys) -> None:
    failed = runtime_graphs.write_artifact(tmp_path / "failed", parity_passed=False)
    code, payload = run_doctor(capsys, str(failed))
    assert code == 1 and by_name(payload)["parity"]["status"] == "FAIL"
    code, payload = run_doctor(capsys, str(tmp_path / "missing"))
    assert code == 1 and by_name(payload)["artifact"]["details"]["slug"] == "artifact-missing"


def test_embodiment_mismatches(runtime_graphs, tmp_path, capsys) -> None:
    art = runtime_graphs.write_artifact(tmp_path / "art")
    code, payload = run_doctor(
        capsys,
        str(art),
        "--custom-embodiment-config",
        str(embodiment_file(tmp_path, action_dim=4, chunk=8, cameras=("top", "base"))),
    )
    checks = by_name(payload)
    assert code == 1
    assert checks["action dim"]["status"] == "FAIL"
    assert checks["chunk size"]["status"] == "WARN" and "8" in checks["chunk size"]["message"]
    assert checks["cameras"]["status"] == "WARN" and "'top'" in checks["cameras"]["message"]
    assert checks["dry run"]["status"] == "PASS"  # dry run without the mismatched embodiment


def test_environment_only_and_human_output(capsys) -> None:
    pm = make_plugin_manager(load_entrypoints=False)
    args = build_parser(pm).parse_args(["doctor"])
    assert doctor.run(args, pm) == 0
    out = capsys.readouterr().out
    assert "PASS  onnxruntime wheel" in out and "0 failed" in out


@pytest.mark.parametrize("providers", ["cuda"])
def test_dry_run_reports_unavailable_providers(runtime_graphs, tmp_path, capsys, providers) -> None:
    art = runtime_graphs.write_artifact(tmp_path / "art")
    code, payload = run_doctor(capsys, str(art), "--providers", providers)
    dry = by_name(payload)["dry run"]
    assert (
        code == 1 and dry["status"] == "FAIL" and dry["details"]["slug"] == "provider-unavailable"
    )
    code, payload = run_doctor(capsys, str(art), "--providers", providers, "--allow-cpu-fallback")
    assert by_name(payload)["dry run"]["status"] == "PASS"


def test_the_embodiment_recorded_at_export_is_checked(runtime_graphs, tmp_path, capsys) -> None:
    doc = json.loads(embodiment_file(tmp_path, chunk=6).read_text())
    art = runtime_graphs.write_artifact(tmp_path / "art", embodiment={"name": "custom", **doc})
    code, payload = run_doctor(capsys, str(art))
    checks = by_name(payload)
    assert code == 0
    assert (
        checks["embodiment"]["status"] == "PASS" and "recorded" in checks["embodiment"]["message"]
    )
    assert checks["chunk size"]["status"] == "WARN" and checks["gripper"]["status"] == "PASS"
    assert "worst: policy, case 0" in checks["parity"]["message"]


def test_doctor_reports_the_preprocessing_contract_and_its_provenance(
    runtime_graphs, tmp_path, capsys
) -> None:
    art = runtime_graphs.write_artifact(
        tmp_path / "art",
        preprocessing={"image": {"pad_value": -1.0}, "prompt": {"state_pad_to": 32}},
    )
    config = json.loads((art / "reflex_config.json").read_text())
    config["model"]["provenance"] = {
        "pipeline": "lerobot<0.5",
        "overrides": {"image.pad_value": -1.0},
    }
    from reflex_core.artifact.integrity import seal

    (art / "reflex_config.json").write_text(json.dumps(seal(config)))
    code, payload = run_doctor(capsys, str(art))
    check = by_name(payload)["preprocessing"]
    assert check["status"] == "PASS"
    assert "pad -1 (in [0, 1] units)" in check["message"]
    assert "padded to 32 first" in check["message"] and "pipeline lerobot<0.5" in check["message"]
    assert "overridden at export" in check["message"]
    assert check["details"]["preprocessing"]["image"]["pad_value"] == -1.0
    legacy = runtime_graphs.write_artifact(tmp_path / "legacy", schema_version=1)
    code, payload = run_doctor(capsys, str(legacy))
    assert "migrated from schema_version 1" in by_name(payload)["preprocessing"]["message"]
