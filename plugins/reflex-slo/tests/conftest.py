"""Fixtures: the SLO wedge composed around a policy double whose speed and health tests set."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pytest
import reflex_slo

from reflex_core.plugin import ActRequest, ActResult, WedgeContext, WedgeSpec
from reflex_core.plugin.testing import enable, make_request, plugin_wedge


def metric(ctx: WedgeContext, name: str, **labels: str) -> float:
    """A sample of the chain's metrics (0 where none was recorded)."""
    return ctx.metrics.get_sample_value(name, labels or None) or 0.0


async def act(handler: Any, **kwargs: Any) -> ActResult:
    """One request through the chain (``kwargs`` go to ``make_request``)."""
    return await handler(make_request([0.0, 0.0], **kwargs))


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
def build_slo(slo_spec: WedgeSpec, wedge_chain: Any) -> Callable[..., tuple[Any, WedgeContext]]:
    def build(values: dict[str, Any], policy: Any, *, extra: Sequence[Any] = (), ctx_kwargs=None):
        chain = wedge_chain(policy, enable(slo_spec, values), *extra, **(ctx_kwargs or {}))
        return chain.handler, chain.ctx

    return build
