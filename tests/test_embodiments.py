"""Embodiment configs: presets, both validation layers, --embodiment resolution, the CLI."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs
import numpy as np
import pytest

from reflex_core.cli import main
from reflex_core.embodiments import (
    EmbodimentConfig,
    apply_gripper,
    format_errors,
    load_embodiment,
    preset_names,
    presets_dir,
    validate_embodiment_config,
)
from reflex_core.embodiments import validate as validate_module
from reflex_core.embodiments.presets import read_preset
from reflex_core.errors import ConfigError
from reflex_core.plugin.hookspecs import hookimpl
from reflex_core.plugin.manager import make_plugin_manager
from reflex_core.plugin.registry import EmbodimentSource

REPO = Path(__file__).resolve().parents[1]
GENERATOR = REPO / "scripts" / "emit_embodiment_presets.py"

# Adding a robot: add its slug here and its dict to the generator (docs/embodiments.md).
ALL_PRESETS = ["franka", "so100", "ur5"]


def franka() -> dict[str, Any]:
    return read_preset("franka")


def issue_set(document: Any) -> set[tuple[str, str, str]]:
    _, issues = validate_embodiment_config(document)
    return {(i.slug, i.severity, i.field) for i in issues}


# -- presets ----------------------------------------------------------------------------------


def test_shipped_presets_are_exactly_all_presets() -> None:
    assert preset_names() == sorted(ALL_PRESETS)
    for name in ALL_PRESETS:
        assert read_preset(name)["embodiment"] == name  # each preset names itself


@pytest.mark.parametrize("name", ["kinova-gen3", "fr3-lab", "so101", "custom", "a.b_c", "x" * 64])
def test_the_embodiment_name_is_a_slug_not_a_closed_list(name: str) -> None:
    """A new robot (a preset or a plugin's) carries its own name: the schema holds the name to a
    slug pattern instead of listing every robot, so adding one needs no schema change."""
    document = franka()
    document["embodiment"] = name
    assert issue_set(document) == set()
    assert EmbodimentConfig.from_dict(document).name == name


@pytest.mark.parametrize("name", ["", "Franka", "my robot", "-arm", "arm-", "x" * 65, "arm\n", 7])
def test_an_embodiment_name_that_is_not_a_slug_is_a_schema_violation(name: Any) -> None:
    document = franka()
    document["embodiment"] = name
    assert issue_set(document) == {("schema-violation", "error", "embodiment")}


@pytest.mark.parametrize("name", ALL_PRESETS)
def test_preset_loads_and_validates_cleanly(name: str) -> None:
    cfg = EmbodimentConfig.load_preset(name)
    ok, issues = validate_embodiment_config(cfg)
    assert ok and issues == [], format_errors(issues)
    assert cfg.name == name and cfg.schema_version == 1
    assert cfg.action_dim == len(cfg.joint_names) == cfg.action_ranges.shape[0]
    assert cfg.action_ranges.shape == (cfg.action_dim, 2)
    assert np.all(cfg.action_ranges[:, 0] < cfg.action_ranges[:, 1])
    # State = the same joint positions as the action, gripper included.
    assert cfg.state_dim == cfg.action_dim == len(cfg.normalization.mean_state)
    assert cfg.gripper is not None and cfg.gripper.component_idx == cfg.action_dim - 1
    lo, hi = cfg.action_ranges.T
    np.testing.assert_allclose(cfg.normalization.mean_action, (lo + hi) / 2, atol=1e-6)
    np.testing.assert_allclose(cfg.normalization.std_action, (hi - lo) / 4, atol=1e-6)
    assert cfg.constraints.max_joint_velocity is not None
    assert cfg.constraints.max_joint_velocity.shape == (cfg.action_dim,)
    assert cfg.control.rtc_execution_horizon <= cfg.control.chunk_size
    assert cfg.to_dict() == json.loads((presets_dir() / f"{name}.json").read_text())


def test_franka_is_a_seven_joint_panda_with_its_documented_limits() -> None:
    cfg = EmbodimentConfig.load_preset("franka")
    assert cfg.joint_names == [f"panda_joint{i}" for i in range(1, 8)] + ["panda_finger_joint1"]
    assert cfg.action_ranges.tolist() == [
        [-2.8973, 2.8973],
        [-1.7628, 1.7628],
        [-2.8973, 2.8973],
        [-3.0718, -0.0698],
        [-2.8973, 2.8973],
        [-0.0175, 3.7525],
        [-2.8973, 2.8973],
        [0.0, 0.04],
    ]
    assert cfg.constraints.max_joint_velocity.tolist() == [2.175] * 4 + [2.61] * 3 + [0.2]
    assert cfg.gripper.inverted  # finger opening: 0 m is closed
    assert cfg.camera_names == ["wrist", "front"]


def test_ur5_and_so100_joint_names_and_limits() -> None:
    ur5 = EmbodimentConfig.load_preset("ur5")
    assert ur5.joint_names[:3] == ["shoulder_pan_joint", "shoulder_lift_joint", "elbow_joint"]
    assert ur5.action_ranges[2].tolist() == [-math.pi, math.pi]
    assert ur5.action_ranges[0].tolist() == [-2 * math.pi, 2 * math.pi]
    assert not ur5.gripper.inverted  # Robotiq finger_joint: 0.8 rad is closed
    so100 = EmbodimentConfig.load_preset("so100")
    assert so100.joint_names == [
        "shoulder_pan",
        "shoulder_lift",
        "elbow_flex",
        "wrist_flex",
        "wrist_roll",
        "gripper",
    ]
    assert so100.control.frequency_hz == 30


def test_config_is_frozen_and_its_arrays_read_only() -> None:
    cfg = EmbodimentConfig.load_preset("franka")
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        cfg.name = "other"  # type: ignore[misc]
    with pytest.raises(ValueError):
        cfg.action_ranges[0, 0] = 0.0
    document = cfg.to_dict()
    document["action_space"]["dim"] = 3
    assert cfg.raw["action_space"]["dim"] == 8


def test_optional_fields_absent_still_load() -> None:
    document = franka()
    del document["joint_names"], document["constraints"]["max_joint_velocity"]
    document["gripper"] = None
    document["embodiment"] = "custom"
    cfg = EmbodimentConfig.from_dict(document)
    assert cfg.joint_names == [f"action_{i}" for i in range(8)]
    assert cfg.constraints.max_joint_velocity is None and cfg.gripper is None
    assert cfg.name == "custom"
    actions = np.ones((2, 8), dtype=np.float32)
    assert apply_gripper(actions, cfg) is actions


# -- validation: one slug per crafted bad config ---------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = document
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        target[int(last) if last.isdigit() else last] = value

    return mutate


def _pop(path: str) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path.split("."):
            target = target[part]
        target.pop()

    return mutate


def _append(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(document: dict[str, Any]) -> None:
        target: Any = document
        for part in path.split("."):
            target = target[part]
        target.append(value)

    return mutate


def _pop_key(section: str, key: str) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        del doc[section][key]

    return mutate


def _ee_kind_with_gripper_at(idx: int) -> Callable[[dict[str, Any]], None]:
    def mutate(doc: dict[str, Any]) -> None:
        doc["action_space"]["kind"] = "ee_delta"
        doc["gripper"]["component_idx"] = idx

    return mutate


BAD_CONFIGS = [
    ("schema-violation", "cameras[0].resolution[0]", _set("cameras.0.resolution.0", 16)),
    ("schema-violation", "action_space.dim", _set("action_space.dim", True)),
    ("schema-violation", "normalization.std_action[1]", _set("normalization.std_action.1", 0)),
    ("schema-violation", "normalization.std_action[1]", _set("normalization.std_action.1", 101)),
    ("schema-violation", "gripper.close_threshold", _set("gripper.close_threshold", 1.5)),
    ("schema-violation", "cameras[1].color_space", _set("cameras.1.color_space", "yuv420")),
    ("schema-violation", "control.chunk_size", _set("control.chunk_size", 201)),
    ("schema-violation", "constraints.max_ee_velocity", _set("constraints.max_ee_velocity", 11)),
    ("schema-violation", "action_space.type", _set("action_space.type", "discrete")),
    ("schema-violation", "embodiment", _set("embodiment", "KUKA iiwa")),
    ("schema-violation", "schema_version", _set("schema_version", 2)),
    ("schema-violation", "gripper.inverted_", _set("gripper.inverted_", True)),
    ("schema-violation", "joint_names", _set("joint_names.1", "panda_joint1")),
    ("action-ranges-length-mismatch", "action_space.ranges", _pop("action_space.ranges")),
    ("action-range-inverted", "action_space.ranges[3]", _set("action_space.ranges.3", [1, -1])),
    ("action-range-inverted", "action_space.ranges[0]", _set("action_space.ranges.0", [1, 1])),
    (
        "norm-mean-action-length-mismatch",
        "normalization.mean_action",
        _append("normalization.mean_action", 0.0),
    ),
    (
        "norm-std-action-length-mismatch",
        "normalization.std_action",
        _pop("normalization.std_action"),
    ),
    ("norm-state-length-mismatch", "normalization.std_state", _pop("normalization.std_state")),
    ("gripper-idx-out-of-range", "gripper.component_idx", _set("gripper.component_idx", 8)),
    ("duplicate-camera-name", "cameras[1].name", _set("cameras.1.name", "wrist")),
    (
        "rtc-horizon-exceeds-chunk",
        "control.rtc_execution_horizon",
        _set("control.rtc_execution_horizon", 51),
    ),
    ("joint-names-length-mismatch", "joint_names", _pop("joint_names")),
    (
        "max-joint-velocity-length-mismatch",
        "constraints.max_joint_velocity",
        _pop("constraints.max_joint_velocity"),
    ),
    ("schema-violation", "action_space.kind", _set("action_space.kind", "torque")),
    ("schema-violation", "kinematics.ee_link", _pop_key("kinematics", "ee_link")),
    ("ee-gripper-in-position", "gripper.component_idx", _ee_kind_with_gripper_at(2)),
    ("non-finite-number", "action_space.ranges[0][1]", _set("action_space.ranges.0.1", math.inf)),
    (
        "non-finite-number",
        "normalization.mean_state[2]",
        _set("normalization.mean_state.2", math.nan),
    ),
]


@pytest.mark.parametrize(
    ("slug", "field", "mutate"), BAD_CONFIGS, ids=[f"{s}:{f}" for s, f, _ in BAD_CONFIGS]
)
def test_each_rule_reports_its_slug_and_field(
    slug: str, field: str, mutate: Callable[[dict[str, Any]], None]
) -> None:
    document = franka()
    mutate(document)
    ok, issues = validate_embodiment_config(document)
    assert not ok
    assert {(i.slug, i.field) for i in issues} == {(slug, field)}, format_errors(issues)
    with pytest.raises(ConfigError) as info:
        EmbodimentConfig.from_dict(document)
    assert info.value.slug == "embodiment-invalid"
    assert {"slug": slug, "severity": "error", "field": field} in [
        {k: v for k, v in i.items() if k != "message"} for i in info.value.details["issues"]
    ]
    assert slug in info.value.message and field in info.value.message


def test_mean_outside_range_is_a_warning_that_still_loads(caplog: pytest.LogCaptureFixture) -> None:
    document = franka()
    document["normalization"]["mean_action"][0] = 90.0  # degrees in a radian config
    ok, issues = validate_embodiment_config(document)
    assert ok
    assert [(i.slug, i.severity, i.field) for i in issues] == [
        ("norm-mean-action-outside-range", "warning", "normalization.mean_action[0]")
    ]
    cfg = EmbodimentConfig.from_dict(document)
    assert cfg.normalization.mean_action[0] == 90.0
    assert "norm-mean-action-outside-range" in caplog.text


def test_every_error_is_reported_not_just_the_first() -> None:
    document = franka()
    document["action_space"]["ranges"].pop()
    document["gripper"]["component_idx"] = 12
    document["cameras"][1]["name"] = "wrist"
    document["control"]["rtc_execution_horizon"] = 80
    document["cameras"][0]["fps"] = 0
    document["control"]["frequency_hz"] = 5000
    document["normalization"]["std_state"][4] = -1.0
    del document["constraints"]["collision_check"]
    document["extra_field"] = 1
    assert issue_set(document) == {
        ("schema-violation", "error", "extra_field"),
        ("schema-violation", "error", "cameras[0].fps"),
        ("schema-violation", "error", "control.frequency_hz"),
        ("schema-violation", "error", "normalization.std_state[4]"),
        ("schema-violation", "error", "constraints.collision_check"),
        ("action-ranges-length-mismatch", "error", "action_space.ranges"),
        ("gripper-idx-out-of-range", "error", "gripper.component_idx"),
        ("duplicate-camera-name", "error", "cameras[1].name"),
        ("rtc-horizon-exceeds-chunk", "error", "control.rtc_execution_horizon"),
    }


def test_schema_violations_name_missing_and_unknown_fields() -> None:
    document = franka()
    del document["control"]["chunk_size"], document["cameras"]
    document["gripper"]["invertd"] = document["gripper"].pop("inverted")
    _, issues = validate_embodiment_config(document)
    messages = {i.field: i.message for i in issues}
    assert messages["control.chunk_size"] == "is required"
    assert messages["cameras"] == "is required"
    assert messages["gripper.inverted"] == "is required"
    assert "misspelled" in messages["gripper.invertd"]
    assert issue_set([1, 2]) == {("schema-violation", "error", "(root)")}


def test_validate_module_matches_the_documented_import_path() -> None:
    assert validate_module.validate_embodiment_config is validate_embodiment_config
    assert validate_module.format_errors is format_errors
    ok, errors = validate_module.validate_embodiment_config(EmbodimentConfig.load_preset("ur5"))
    assert ok and validate_module.format_errors(errors) == ""


def test_docs_list_every_slug() -> None:
    docs = (REPO / "docs" / "embodiments.md").read_text()
    slugs = {slug for slug, _, _ in BAD_CONFIGS} | {
        "norm-mean-action-outside-range",
        "ee-action-too-short",
        "kinematics-urdf-not-found",
        "kinematics-invalid",
        "embodiment-color-space-unmatched",
        "embodiment-invalid",
        "embodiment-unknown",
        "embodiment-file-not-found",
        "embodiment-conflict",
    }
    missing = sorted(s for s in slugs if f"`{s}`" not in docs)
    assert not missing, f"docs/embodiments.md does not document {missing}"


# -- gripper semantics ------------------------------------------------------------------------


def test_gripper_not_inverted_closes_on_high_values() -> None:
    cfg = EmbodimentConfig.load_preset("ur5")  # finger_joint [0, 0.8], threshold 0.5
    actions = np.zeros((5, 7), dtype=np.float32)
    actions[:, 0] = 0.3
    actions[:, 6] = [0.0, 0.39, 0.41, 0.8, np.nan]
    out = apply_gripper(actions, cfg)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out[:4, 6], np.float32([0.0, 0.0, 0.8, 0.8]))
    assert np.isnan(out[4, 6])
    np.testing.assert_array_equal(out[:, :6], actions[:, :6])
    assert actions[1, 6] == np.float32(0.39)  # input untouched


def test_gripper_inverted_closes_on_low_values() -> None:
    cfg = EmbodimentConfig.load_preset("franka")  # finger opening [0, 0.04], threshold 0.5
    actions = np.zeros((1, 4, 8))
    actions[0, :, 7] = [0.0, 0.019, 0.021, 0.04]
    out = apply_gripper(actions, cfg)
    np.testing.assert_array_equal(out[0, :, 7], [0.0, 0.0, 0.04, 0.04])


# -- resolution: --embodiment / --custom-embodiment-config ------------------------------------


def test_builtin_plugin_registers_every_preset() -> None:
    registry = make_plugin_manager(load_entrypoints=False).registry
    assert sorted(registry.embodiments) == ALL_PRESETS
    for name in ALL_PRESETS:
        assert registry.owner("embodiments", name) == "reflex.embodiments"
        cfg = load_embodiment(name, registry=registry)
        assert cfg is not None and cfg.to_dict() == read_preset(name)


class _ThirdParty:
    """A plugin registering one valid and one broken embodiment."""

    @hookimpl
    def reflex_register_embodiments(self, register: Callable[[EmbodimentSource], None]) -> None:
        good = franka()
        good["embodiment"] = "fr3-lab"  # a plugin's embodiment carries its own name
        bad = franka()
        bad["gripper"]["component_idx"] = 9
        bad["action_space"]["ranges"][0] = [2.0, -2.0]
        register(EmbodimentSource(name="fr3-lab", load=lambda: good))
        register(EmbodimentSource(name="broken-arm", load=lambda: bad))


def test_load_embodiment_through_a_plugin_registry() -> None:
    registry = make_plugin_manager(
        load_entrypoints=False, extra_plugins={"thirdparty": _ThirdParty()}
    ).registry
    cfg = load_embodiment("fr3-lab", registry=registry)
    assert cfg is not None and cfg.name == "fr3-lab" and cfg.action_dim == 8
    with pytest.raises(ConfigError) as info:
        load_embodiment("broken-arm", registry=registry)
    assert info.value.slug == "embodiment-invalid"
    assert "thirdparty" in info.value.message
    assert {i["slug"] for i in info.value.details["issues"]} == {
        "gripper-idx-out-of-range",
        "action-range-inverted",
    }
    with pytest.raises(ConfigError) as info:
        load_embodiment("kuka", registry=registry)
    assert info.value.slug == "embodiment-unknown"
    for known in ["broken-arm", "fr3-lab", *ALL_PRESETS]:
        assert known in info.value.message


def test_load_embodiment_from_a_file_and_its_errors(tmp_path: Path) -> None:
    assert load_embodiment() is None
    good = tmp_path / "robot.json"
    document = franka()
    document["embodiment"] = "custom"
    good.write_text(json.dumps(document))
    cfg = load_embodiment(path=good)
    assert cfg is not None and cfg.source == str(good) and cfg.name == "custom"
    with pytest.raises(ConfigError) as info:
        load_embodiment("franka", path=good)
    assert info.value.slug == "embodiment-conflict"
    with pytest.raises(ConfigError) as info:
        load_embodiment(path=tmp_path / "missing.json")
    assert info.value.slug == "embodiment-file-not-found"
    broken = tmp_path / "broken.json"
    broken.write_text('{"schema_version": 1,')
    with pytest.raises(ConfigError) as info:
        EmbodimentConfig.from_file(broken)
    assert info.value.slug == "embodiment-invalid"
    assert info.value.details["issues"][0]["slug"] == "invalid-json"
    with pytest.raises(ConfigError) as info:
        EmbodimentConfig.load_preset("kuka")
    assert info.value.slug == "embodiment-unknown" and "franka, so100, ur5" in info.value.message


# -- CLI --------------------------------------------------------------------------------------


@pytest.fixture
def no_external_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("REFLEX_LOAD_PLUGINS", "")


@pytest.mark.usefixtures("no_external_plugins")
def test_cli_list(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["embodiments", "list"]) == 0
    out = capsys.readouterr().out
    assert "franka       8 actions, 8 state, cameras wrist,front, 15 Hz" in out
    assert main(["embodiments", "list", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["embodiments"]
    assert [r["name"] for r in rows] == ALL_PRESETS
    assert {r["name"]: r["action_dim"] for r in rows} == {
        name: read_preset(name)["action_space"]["dim"] for name in ALL_PRESETS
    }
    assert rows[0]["name"] == "franka" and rows[0]["action_dim"] == 8


@pytest.mark.usefixtures("no_external_plugins")
def test_cli_show(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["embodiments", "show", "franka", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == read_preset("franka")
    assert main(["embodiments", "show", "so100"]) == 0
    out = capsys.readouterr().out
    assert "wrist_roll" in out and "<- gripper" in out and "low values close" in out
    assert main(["embodiments", "show", "kuka"]) == 1
    err = capsys.readouterr().err
    assert "embodiment-unknown" in err and "franka, so100, ur5" in err


@pytest.mark.usefixtures("no_external_plugins")
def test_cli_validate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["embodiments", "validate", str(presets_dir() / "ur5.json")]) == 0
    assert "ok (0 errors, 0 warnings)" in capsys.readouterr().out

    bad = copy.deepcopy(franka())
    bad["cameras"][1]["name"] = "wrist"
    bad["control"]["chunk_size"] = 250
    bad["normalization"]["mean_action"][0] = 50.0
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(bad))
    assert main(["embodiments", "validate", str(path)]) == 1
    out = capsys.readouterr().out
    assert "INVALID (2 errors, 1 warnings)" in out
    assert "error [duplicate-camera-name] cameras[1].name" in out
    assert "error [schema-violation] control.chunk_size" in out
    assert "warning [norm-mean-action-outside-range] normalization.mean_action[0]" in out

    assert main(["embodiments", "validate", "--json", str(path), str(tmp_path / "nope")]) == 1
    results = json.loads(capsys.readouterr().out)["results"]
    assert [r["ok"] for r in results] == [False, False]
    assert results[1]["issues"][0]["slug"] == "embodiment-file-not-found"


# -- the generator ----------------------------------------------------------------------------


def _generate(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GENERATOR), *args], capture_output=True, text=True, timeout=60
    )


def test_generator_check_passes_on_the_committed_presets() -> None:
    result = _generate("--check")
    assert result.returncode == 0, result.stderr


def test_generator_check_detects_drift(tmp_path: Path) -> None:
    assert _generate("--out-dir", str(tmp_path)).returncode == 0
    for name in ALL_PRESETS:
        assert (tmp_path / f"{name}.json").read_text() == (
            presets_dir() / f"{name}.json"
        ).read_text()
    assert _generate("--check", "--out-dir", str(tmp_path)).returncode == 0

    edited = json.loads((tmp_path / "ur5.json").read_text())
    edited["control"]["frequency_hz"] = 125
    (tmp_path / "ur5.json").write_text(json.dumps(edited, indent=2, sort_keys=True) + "\n")
    (tmp_path / "so100.json").unlink()
    (tmp_path / "kuka.json").write_text("{}")
    result = _generate("--check", "--out-dir", str(tmp_path))
    assert result.returncode == 1
    assert "ur5.json: differs" in result.stderr
    assert "so100.json: missing" in result.stderr
    assert "kuka.json: not produced by this script" in result.stderr


def test_generator_refuses_to_write_an_invalid_preset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("emit_embodiment_presets", GENERATOR)
    assert spec is not None and spec.loader is not None
    generator = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generator)
    presets = copy.deepcopy(generator.PRESETS)
    presets["ur5"]["gripper"]["component_idx"] = 7
    monkeypatch.setattr(generator, "PRESETS", presets)
    assert generator.main(["--out-dir", str(tmp_path)]) == 1
    assert list(tmp_path.iterdir()) == []
    assert "gripper-idx-out-of-range" in capsys.readouterr().err


# -- action kinds, kinematics, color spaces -----------------------------------------------------


def test_a_missing_kind_keeps_todays_meaning_and_presets_declare_theirs() -> None:
    doc = franka()
    del doc["action_space"]["kind"]
    del doc["kinematics"]
    cfg = EmbodimentConfig.from_dict(doc)
    assert cfg.action_kind == "joint_position" and cfg.joint_space and cfg.kinematics is None
    for name in ALL_PRESETS:
        preset = EmbodimentConfig.load_preset(name)
        assert preset.action_kind == "joint_position"
        assert preset.kinematics is not None and preset.kinematics.urdf.is_file()
        assert preset.kinematics.urdf.parent == presets_dir() / "kinematics"
        chain = preset.kinematic_chain()
        assert chain.driven_dims == list(range(preset.action_dim - 1))  # every arm joint
    for kind in ("joint_delta", "joint_velocity", "ee_pose", "ee_delta", "ee_velocity"):
        doc = franka()
        doc["action_space"]["kind"] = kind
        assert EmbodimentConfig.from_dict(doc).action_kind == kind


def test_ee_kinds_need_a_position_part() -> None:
    doc = franka()
    doc["action_space"].update(kind="ee_velocity", dim=2, ranges=[[-1, 1], [-1, 1]])
    doc["joint_names"] = ["a", "b"]
    doc["normalization"].update(mean_action=[0, 0], std_action=[1, 1])
    doc["constraints"]["max_joint_velocity"] = [1, 1]
    doc["gripper"] = None
    assert ("ee-action-too-short", "error", "action_space.dim") in issue_set(doc)


def test_a_relative_urdf_resolves_next_to_the_file_then_among_the_shipped(tmp_path: Path) -> None:
    doc = franka()
    path = tmp_path / "robot.json"
    path.write_text(json.dumps(doc))
    cfg = EmbodimentConfig.from_file(path)  # "kinematics/franka_panda.urdf": the shipped one
    assert cfg.kinematics.urdf == presets_dir() / "kinematics" / "franka_panda.urdf"
    (tmp_path / "kinematics").mkdir()
    own = tmp_path / "kinematics" / "franka_panda.urdf"
    own.write_text(cfg.kinematics.urdf.read_text())
    assert EmbodimentConfig.from_file(path).kinematics.urdf == own  # next to the file wins
    doc["kinematics"]["urdf"] = "nowhere/robot.urdf"
    path.write_text(json.dumps(doc))
    with pytest.raises(ConfigError) as info:
        EmbodimentConfig.from_file(path)
    assert info.value.slug == "embodiment-invalid"
    assert info.value.details["issues"][0]["slug"] == "kinematics-urdf-not-found"


def test_color_space_conversions() -> None:
    from reflex_core.embodiments.color import to_rgb

    rgb = np.random.default_rng(0).integers(0, 256, (6, 5, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb(rgb[..., ::-1], "bgr8"), rgb)
    rgba = np.concatenate([rgb, np.full((6, 5, 1), 7, np.uint8)], axis=2)
    np.testing.assert_array_equal(to_rgb(rgba, "rgba8"), rgb)
    gray = to_rgb(rgb, "mono8")
    assert gray.shape == (6, 5, 3) and (gray == gray[..., :1]).all()
    luma = rgb.astype(float) @ [0.299, 0.587, 0.114]
    assert np.abs(gray[..., 0] - luma).max() <= 1.0
    flat = np.arange(30, dtype=np.uint8).reshape(6, 5)
    np.testing.assert_array_equal(to_rgb(flat, "mono8"), np.repeat(flat[..., None], 3, axis=2))
    np.testing.assert_array_equal(to_rgb(to_rgb(flat, "mono8"), "mono8")[..., 0], flat)
    assert to_rgb(rgb, "rgb8") is rgb


def _runtime_embodiment(color_space: str, camera: str = "base") -> EmbodimentConfig:
    return EmbodimentConfig.from_dict(
        {
            "schema_version": 1,
            "embodiment": "custom",
            "action_space": {
                "type": "continuous",
                "dim": 3,
                "ranges": [[-1, 1], [-2, 2], [0, 0.08]],
            },
            "normalization": {
                "mean_action": [0.0, 0.0, 0.04],
                "std_action": [1.0, 1.0, 0.04],
                "mean_state": [0.0] * 4,
                "std_state": [1.0] * 4,
            },  # fmt: skip
            "gripper": None,
            "cameras": [
                {"name": camera, "resolution": [640, 480], "fps": 30, "color_space": color_space}
            ],
            "control": {"frequency_hz": 10, "chunk_size": 4, "rtc_execution_horizon": 2},
            "constraints": {
                "max_ee_velocity": 1.0,
                "max_gripper_velocity": 1.0,
                "collision_check": False,
            },  # fmt: skip
        }
    )


@pytest.mark.parametrize("space", ["bgr8", "mono8"])
def test_the_runtime_applies_the_declared_color_space(
    tmp_path: Path, space: str, runtime_graphs: Any
) -> None:
    from reflex_core.runtime import load_policy
    from reflex_core.wire.types import Observation

    rg = runtime_graphs
    art = rg.write_artifact(tmp_path / "art", normalization={"state": None, "action": None})
    dims = rg.Dims()
    noise = (
        np.random.default_rng(1)
        .standard_normal((1, dims.chunk_size, dims.max_action_dim))
        .astype(np.float32)
    )
    frame = np.random.default_rng(2).integers(0, 256, (12, 16, 3), dtype=np.uint8)

    def act(policy: Any, image: np.ndarray) -> np.ndarray:
        obs = Observation(
            state=np.array([0.1, 0.5, 1.0, 1.9], np.float32), images={"base": image}, prompt="go"
        )
        return policy.infer([obs], noise).actions

    declared = load_policy(art, embodiment=_runtime_embodiment(space))
    plain = load_policy(art, embodiment=_runtime_embodiment("rgb8"))
    seen_as = {
        "bgr8": frame[..., ::-1],
        "mono8": np.repeat(
            (frame.astype(np.uint16) @ [77, 150, 29] + 128 >> 8).astype(np.uint8)[..., None],
            3,
            axis=2,
        ),
    }[space]
    np.testing.assert_array_equal(act(declared, frame), act(plain, seen_as))
    assert not np.array_equal(act(declared, frame), act(plain, frame))  # the pixels matter


def test_a_color_space_for_a_camera_the_policy_lacks_is_refused(
    tmp_path: Path, runtime_graphs: Any
) -> None:
    from reflex_core.runtime import load_policy

    art = runtime_graphs.write_artifact(tmp_path / "art")
    load_policy(art, embodiment=_runtime_embodiment("rgb8", camera="front"))  # rgb8: nothing to do
    with pytest.raises(ConfigError) as info:
        load_policy(art, embodiment=_runtime_embodiment("bgr8", camera="front"))
    assert info.value.slug == "embodiment-color-space-unmatched" and "front" in info.value.message
