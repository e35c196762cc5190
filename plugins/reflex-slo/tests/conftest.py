"""Fixtures: the SLO wedge composed around a policy double whose speed and health tests set."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import reflex_slo
from prometheus_client import CollectorRegistry

from reflex_core.plugin.registry import WedgeSpec, structure_config
from reflex_core.plugin.testing import plugin_wedge
from reflex_core.plugin.wedges import ActRequest, ActResult, EnabledWedge, WedgeContext, compose


class TunablePolicy:
    """A BatchHandler: sleeps ``delay_s`` then answers, or raises while ``broken``."""

    def __init__(self) -> None:
        self.delay_s = 0.0
        self.broken: BaseException | None = None
        self.calls = 0
        self.metadata: dict[str, Any] = {}

    async def __call__(self, requests: Sequence[ActRequest]) -> list[ActResult]:
        self.calls += 1
        if self.delay_s:
            await asyncio.sleep(self.delay_s)
        if self.broken is not None:
            raise self.broken
        return [
            ActResult(
                actions=np.zeros((4, 2), np.float32),
                metadata={"policy": r.policy, **self.metadata},
            )
            for r in requests
        ]


@pytest.fixture
def slo_spec() -> WedgeSpec:
    return plugin_wedge(reflex_slo)


@pytest.fixture
def build_slo(slo_spec: WedgeSpec) -> Callable[..., tuple[Any, WedgeContext]]:
    def build(values: dict[str, Any], policy: Any, *, extra: Sequence[Any] = (), ctx_kwargs=None):
        config = structure_config(slo_spec, values)
        kwargs = {"policies": {}, "metrics": CollectorRegistry(), **(ctx_kwargs or {})}
        ctx = WedgeContext(**kwargs)
        handler, _ = compose([EnabledWedge(spec=slo_spec, config=config), *extra], policy, ctx)
        return handler, ctx

    return build
