"""reflex-router: two policies in one process, an A/B split sticky per episode, shadow mode.

``reflex serve ./export --policy-b ./candidate --split 20`` sends 20% of episodes to the
candidate (slot B) and the rest to the served policy (slot A); ``--shadow`` answers with A and
runs B on a copy of the traffic, recording both chunks. The wedge sits at
:attr:`reflex_core.plugin.Stage.ROUTER`, outside the batching stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from reflex_core.errors import ConfigError
from reflex_core.plugin import Handler, Stage, WedgeContext, WedgeSpec, registers
from reflex_router.assignment import SplitAssigner, episode_percentile
from reflex_router.config import RouterConfig, is_enabled
from reflex_router.metrics import RouterMetrics
from reflex_router.router import SLOT_HEADER, VERSION_HEADER, PolicyRouter
from reflex_router.shadow import chunk_difference

__all__ = [
    "SLOT_HEADER",
    "VERSION_HEADER",
    "PolicyRouter",
    "RouterConfig",
    "SplitAssigner",
    "chunk_difference",
    "episode_percentile",
    "make_router_handler",
    "reflex_register_wedges",
]
__version__ = "0.1.0"


def _model_version(policy: Any) -> str | None:
    info = getattr(policy, "info", None)
    if isinstance(info, dict) and info.get("model_version") is not None:
        return str(info["model_version"])
    return None


def _noise_shape(policy: Any) -> tuple[int, int] | None:
    chunk, width = getattr(policy, "chunk_size", None), getattr(policy, "max_action_dim", None)
    if isinstance(chunk, int) and isinstance(width, int):
        return (chunk, width)
    return None


def router_policies(config: RouterConfig) -> dict[str, Path]:
    """The slots loaded for the router before its factory runs (``WedgeSpec.policies``)."""
    wanted = {"a": config.policy_a, "b": config.policy_b}
    return {slot: Path(d) for slot, d in wanted.items() if d is not None}


def make_router_handler(config: RouterConfig, next_handler: Handler, ctx: WedgeContext) -> Handler:
    """The wedge factory: routes between the slots (loaded before it runs, see
    :func:`router_policies`)."""
    if config.policy_b is None:
        raise ConfigError(
            "the router needs two policies: --policy-b DIR (slot A is --policy-a DIR, or the "
            "served policy)",
            slug="router-needs-policy-b",
            field="policy-b",
        )
    keys: dict[str, str] = {}
    if config.policy_a is not None:
        keys["a"] = "a"
    elif "default" in ctx.policies:
        keys["a"] = "default"
    else:
        raise ConfigError(
            "the router has no slot A: pass --policy-a DIR or serve a policy",
            slug="router-needs-policy-a",
            field="policy-a",
        )
    keys["b"] = "b"
    policies = {slot: ctx.policies[key] for slot, key in keys.items()}
    router = PolicyRouter(
        config,
        next_handler,
        keys=keys,
        versions={slot: _model_version(p) for slot, p in policies.items()},
        metrics=RouterMetrics.create(ctx.metrics),
        noise_shapes={slot: _noise_shape(p) for slot, p in policies.items()},
    )
    ctx.health["router"] = router.status
    ctx.on_shutdown.append(router.close)
    return router


reflex_register_wedges = registers(
    WedgeSpec(
        name="router",
        stage=Stage.ROUTER,
        config_cls=RouterConfig,
        factory=make_router_handler,
        is_enabled=is_enabled,
        policies=router_policies,
        description="two policies in one process: A/B split sticky per episode_id, "
        "per-slot health with draining, shadow mode recording both chunks",
    ),
)
