"""``reflex embodiments``: list the robot configs, show one, validate a file."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

HELP = "list, show and validate robot embodiment configs"


def configure(parser: argparse.ArgumentParser, registry: Any) -> None:
    actions = parser.add_subparsers(dest="embodiments_action", metavar="ACTION", required=True)
    listing = actions.add_parser("list", help="the names --embodiment accepts")
    listing.add_argument("--json", action="store_true", help="machine-readable output")
    show = actions.add_parser("show", help="print one embodiment config")
    show.add_argument("name", metavar="NAME", help="a registered embodiment, e.g. franka")
    show.add_argument("--json", action="store_true", help="print the JSON document")
    validate = actions.add_parser(
        "validate", help="check config files against the schema and the cross-field rules"
    )
    validate.add_argument("paths", metavar="PATH", nargs="+", type=Path)
    validate.add_argument("--json", action="store_true", help="machine-readable output")


def run(args: argparse.Namespace, pm: Any) -> int:
    action = args.embodiments_action
    if action == "list":
        return _list(pm.registry, as_json=args.json)
    if action == "show":
        return _show(pm.registry, args.name, as_json=args.json)
    return _validate(args.paths, as_json=args.json)


def _list(registry: Any, *, as_json: bool) -> int:
    from reflex_core.embodiments import load_embodiment
    from reflex_core.errors import ConfigError

    rows = []
    for name in sorted(registry.embodiments):
        row: dict[str, Any] = {
            "name": name,
            "owner": registry.owners.get(("embodiments", name), "?"),
            "description": registry.embodiments[name].description,
        }
        try:
            cfg = load_embodiment(name, registry=registry)
        except ConfigError as exc:
            row["error"] = exc.slug
        else:
            assert cfg is not None
            row.update(
                action_dim=cfg.action_dim,
                state_dim=cfg.state_dim,
                cameras=cfg.camera_names,
                frequency_hz=cfg.control.frequency_hz,
            )
        rows.append(row)
    if as_json:
        print(json.dumps({"embodiments": rows}, indent=2))
    elif not rows:
        print("no embodiments registered")
    for row in rows if not as_json else []:
        if "error" in row:
            print(f"{row['name']:<12} INVALID ({row['error']})  [{row['owner']}]")
            continue
        print(
            f"{row['name']:<12} {row['action_dim']} actions, {row['state_dim']} state, "
            f"cameras {','.join(row['cameras'])}, {row['frequency_hz']:g} Hz  [{row['owner']}]"
        )
    return 1 if any("error" in row for row in rows) else 0


def _show(registry: Any, name: str, *, as_json: bool) -> int:
    from reflex_core.embodiments import load_embodiment

    cfg = load_embodiment(name, registry=registry)
    assert cfg is not None
    if as_json:
        print(json.dumps(cfg.to_dict(), indent=2, sort_keys=True))
        return 0
    raw = cfg.raw
    print(f"{cfg.name}  (schema version {cfg.schema_version}, {cfg.source})")
    if raw.get("description"):
        print(f"  {raw['description']}")
    print(f"actions: {cfg.action_dim}   state: {cfg.state_dim}")
    velocity = cfg.constraints.max_joint_velocity
    width = max(len(n) for n in cfg.joint_names)
    print(f"  {'#':>2}  {'joint':<{width}}  {'min':>9}  {'max':>9}  {'max vel/s':>9}")
    for i, joint in enumerate(cfg.joint_names):
        lo, hi = cfg.action_ranges[i]
        vel = f"{velocity[i]:9.4g}" if velocity is not None else f"{'-':>9}"
        mark = "  <- gripper" if cfg.gripper and cfg.gripper.component_idx == i else ""
        print(f"  {i:>2}  {joint:<{width}}  {lo:9.4f}  {hi:9.4f}  {vel}{mark}")
    if cfg.gripper is None:
        print("gripper: none")
    else:
        g = cfg.gripper
        closes = "low values close" if g.inverted else "high values close"
        print(f"gripper: dim {g.component_idx}, close threshold {g.close_threshold:g}, {closes}")
    for cam in cfg.cameras:
        w, h = cam.resolution
        print(f"camera {cam.name}: {w}x{h} {cam.color_space} @ {cam.fps:g} fps")
    c = cfg.control
    print(
        f"control: {c.frequency_hz:g} Hz, chunk {c.chunk_size}, "
        f"execute {c.rtc_execution_horizon} before the next chunk"
    )
    k = cfg.constraints
    print(
        f"constraints: end effector <= {k.max_ee_velocity:g} m/s, gripper <= "
        f"{k.max_gripper_velocity:g} m/s, collision check {'on' if k.collision_check else 'off'}"
    )
    return 0


def _validate(paths: list[Path], *, as_json: bool) -> int:
    import attrs

    from reflex_core.embodiments import validate_embodiment_config
    from reflex_core.embodiments.presets import read_json_file
    from reflex_core.errors import ConfigError

    results = []
    for path in paths:
        try:
            document = read_json_file(path)
        except ConfigError as exc:
            issues = exc.details.get("issues") or [
                {"slug": exc.slug, "severity": "error", "field": "(file)", "message": exc.message}
            ]
            results.append({"path": str(path), "ok": False, "issues": issues})
            continue
        ok, found = validate_embodiment_config(document)
        results.append({"path": str(path), "ok": ok, "issues": [attrs.asdict(i) for i in found]})
    if as_json:
        print(json.dumps({"results": results}, indent=2))
    for result in results if not as_json else []:
        errors = sum(i["severity"] == "error" for i in result["issues"])
        warnings = len(result["issues"]) - errors
        verdict = "ok" if result["ok"] else "INVALID"
        print(f"{result['path']}: {verdict} ({errors} errors, {warnings} warnings)")
        for i in result["issues"]:
            print(f"  {i['severity']} [{i['slug']}] {i['field']}: {i['message']}")
    return 0 if all(r["ok"] for r in results) else 1
