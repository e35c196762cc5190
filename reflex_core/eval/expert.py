"""A scripted expert behind the wire protocol: the harness check of ``reflex eval``.

:class:`ExpertPolicy` has the runtime ``Policy`` interface (``slot``, ``info``, dims,
``validate``, ``infer``, ``warmup``), so the real :class:`~reflex_core.serve.ReflexServer`
serves it like an exported model: the same transports, ``/health``, metrics and any wedge
(ActionGuard, the deadline). Its chunk repeats the expert's action for the observed state
``chunk_size`` times: scripted experts are feedback controllers, and the control loop asks again
every execution horizon.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import attrs
import numpy as np

from reflex_core.errors import ValidationError


@attrs.frozen
class ExpertOutput:
    actions: np.ndarray
    features: np.ndarray | None
    timings: dict[str, Any]


@attrs.define(eq=False)
class ExpertPolicy:
    """A ``state -> action`` function as a served policy.

    :ivar expert: ``state (state_dim,) -> action (action_dim,)`` in robot units.
    :ivar name: shown as the model in ``/health`` (``metaworld/reach-v3 expert``).
    """

    expert: Callable[[np.ndarray], np.ndarray]
    name: str
    state_dim: int
    action_dim: int
    chunk_size: int
    embodiment: str | None = None
    slot: str = "default"
    camera_names: tuple[str, ...] = ()
    max_action_dim: int = attrs.field()
    feature_dim: int = 1

    @max_action_dim.default
    def _max_action_dim(self) -> int:
        return self.action_dim

    @property
    def info(self) -> dict[str, Any]:
        return {
            "family": "scripted-expert",
            "mode": "expert",
            "model_version": self.name,
            "chunk_size": self.chunk_size,
            "action_dim": self.action_dim,
            "state_dim": self.state_dim,
            "cameras": list(self.camera_names),
            "providers": [],
            "embodiment": self.embodiment,
            "raw_actions": False,
        }

    def validate(self, observation: Any) -> None:
        if observation.state.shape != (self.state_dim,):
            raise ValidationError(
                f"state has {observation.state.size} values, the expert takes {self.state_dim}",
                slug="state-length-mismatch",
                field="state",
            )

    def infer(self, observations: Sequence[Any], noise: np.ndarray | None = None) -> ExpertOutput:
        started = time.perf_counter()
        rows = [
            np.asarray(self.expert(np.asarray(o.state, np.float32)), np.float32).reshape(-1)
            for o in observations
        ]
        actions = np.stack(
            [np.repeat(row[None, : self.action_dim], self.chunk_size, 0) for row in rows]
        )
        ms = (time.perf_counter() - started) * 1e3
        return ExpertOutput(
            actions=actions.astype(np.float32),
            features=None,
            timings={"total_ms": ms, "steps": 0},
        )

    def warmup(self) -> None:
        self.infer([_Zero(np.zeros(self.state_dim, np.float32))])


@attrs.frozen
class _Zero:
    state: np.ndarray


def expert_policy(registry: Any, env_text: str) -> tuple[ExpertPolicy, Any]:
    """The registered env's scripted expert for its task, and the env's embodiment.

    :raises ConfigError: ``env-unknown``/``env-task-unknown``; ``env-no-expert``.
    """
    from reflex_core.errors import ConfigError
    from reflex_core.eval.env import env_embodiment, resolve_env

    spec, task = resolve_env(registry, env_text)
    if spec.expert is None:
        raise ConfigError(
            f"env {spec.name!r} ships no scripted expert", slug="env-no-expert", field="env"
        )
    embodiment = env_embodiment(registry, spec)
    policy = ExpertPolicy(
        expert=spec.expert(task),
        name=f"{spec.name}/{task} expert",
        state_dim=int(embodiment.state_dim),
        action_dim=int(embodiment.action_dim),
        chunk_size=int(embodiment.control.chunk_size),
        embodiment=embodiment.name,
    )
    return policy, embodiment
