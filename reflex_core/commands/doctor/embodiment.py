"""The fit of an embodiment (the robot) to an artifact: dims, chunk size, cameras, gripper,
and whose normalization statistics apply."""

from __future__ import annotations

from typing import Any

from reflex_core.commands.doctor.report import FAIL, PASS, WARN, Check


def recorded_embodiment(artifact: Any) -> tuple[Any, Check | None]:
    """The embodiment the artifact recorded at export, and the check that says so (None and
    no check when it recorded none)."""
    if artifact.embodiment is None:
        return None, None
    from reflex_core.embodiments import EmbodimentConfig
    from reflex_core.errors import ConfigError

    recorded = dict(artifact.embodiment)
    name = recorded.pop("name", None)  # the manifest adds it beside the config document
    try:
        emb = EmbodimentConfig.from_dict(recorded, name=name)
    except (ConfigError, KeyError, TypeError) as exc:
        return None, Check(
            "embodiment", WARN, f"the artifact's embodiment record is not usable: {exc}"
        )
    return emb, Check(
        "embodiment",
        PASS,
        f"{name!r}, recorded in the artifact at export (serve with --embodiment "
        f"{name} to apply it)",
    )


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
