"""reflex-a2c2: the A2C2 correction head (arXiv 2509.23224) as a Reflex wedge.

A small network run after the policy adds a bounded residual to each action of a chunk, from the
observation's pooled features, the base action, its position in the chunk and the measured
latency, so a chunk computed from a stale observation still fits the robot when it executes.
``reflex serve ./export --a2c2-head head.npz``; ``reflex a2c2 train`` fits a head.

The wedge sits at :attr:`reflex_core.plugin.Stage.CORRECTION`: batch level, inside the batching
stage, directly around the policy.
"""

from __future__ import annotations

from typing import Any

from reflex_a2c2 import command
from reflex_a2c2.config import A2C2Config, is_enabled
from reflex_a2c2.correction import CorrectionWedge, bound_residual
from reflex_a2c2.head import MLPHead, OnnxHead, load_head
from reflex_a2c2.inputs import build_inputs, input_width
from reflex_a2c2.metrics import A2C2Metrics
from reflex_core.errors import ConfigError
from reflex_core.plugin import BatchHandler, Command, Stage, WedgeContext, WedgeSpec, registers

__all__ = [
    "A2C2Config",
    "CorrectionWedge",
    "MLPHead",
    "OnnxHead",
    "bound_residual",
    "build_inputs",
    "input_width",
    "load_head",
    "make_correction_handler",
    "reflex_register_commands",
    "reflex_register_wedges",
]
__version__ = "0.1.0"


def _policy_dims(policy: Any) -> tuple[int | None, int | None]:
    """(feature_dim, action_dim) of a loaded policy, where it says."""
    artifact = getattr(policy, "artifact", None)
    feature_dim = getattr(policy, "feature_dim", None) or getattr(artifact, "feature_dim", None)
    action_dim = getattr(policy, "action_dim", None) or getattr(artifact, "action_dim", None)
    return (
        feature_dim if isinstance(feature_dim, int) else None,
        action_dim if isinstance(action_dim, int) else None,
    )


def make_correction_handler(
    config: A2C2Config, next_batch: BatchHandler, ctx: WedgeContext
) -> BatchHandler:
    """The wedge factory: loads the head and checks it fits the served policies."""
    if config.a2c2_head is None:
        raise ConfigError(
            "--a2c2-max-norm needs --a2c2-head PATH", slug="a2c2-needs-head", field="a2c2-head"
        )
    head = load_head(config.a2c2_head)
    for name, policy in sorted(ctx.policies.items()):
        feature_dim, action_dim = _policy_dims(policy)
        if (feature_dim is not None and feature_dim != head.feature_dim) or (
            action_dim is not None and action_dim != head.action_dim
        ):
            raise ConfigError(
                f"A2C2 head {config.a2c2_head} expects {head.feature_dim} features and "
                f"{head.action_dim} action dims; policy {name!r} has {feature_dim} and "
                f"{action_dim}",
                slug="a2c2-head-mismatch",
                field="a2c2-head",
            )
    max_norm = config.a2c2_max_norm or head.suggested_max_norm
    if max_norm is None:
        raise ConfigError(
            f"A2C2 head {config.a2c2_head} carries no suggested bound: set --a2c2-max-norm",
            slug="a2c2-max-norm-required",
            field="a2c2-max-norm",
        )
    wedge = CorrectionWedge(
        config, head, next_batch, A2C2Metrics.create(ctx.metrics), max_norm=max_norm
    )
    ctx.health["a2c2"] = lambda: {
        "head": str(config.a2c2_head),
        "feature_dim": head.feature_dim,
        "action_dim": head.action_dim,
        "max_norm": max_norm,
        "norm_scope": config.a2c2_norm_scope,
        "latency_threshold_ms": config.a2c2_latency_threshold_ms,
    }
    return wedge


reflex_register_wedges = registers(
    WedgeSpec(
        name="a2c2",
        stage=Stage.CORRECTION,
        config_cls=A2C2Config,
        factory=make_correction_handler,
        is_enabled=is_enabled,
        description="A2C2 correction head: a bounded per-action residual from features, "
        "base action, chunk position and measured latency",
    ),
)


reflex_register_commands = registers(
    Command(name="a2c2", help=command.HELP, configure=command.configure, run=command.run),
)
