"""The A2C2 wedge: after the policy, add the head's bounded residual to each action of a chunk.

A batch-level wedge (inside the batching stage, directly around the policy): it receives the
batch's results, measures each observation's age at that moment, and runs the head ONCE over
the rows of every chunk that qualifies.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from typing import Any

import attrs
import numpy as np

from reflex_a2c2.config import A2C2Config
from reflex_a2c2.head import CorrectionHead
from reflex_a2c2.inputs import build_inputs
from reflex_a2c2.metrics import A2C2Metrics
from reflex_core.plugin import ActRequest, ActResult, BatchHandler
from reflex_core.plugin.kit.observation_age import observation_age_ms

log = logging.getLogger(__name__)


def bound_residual(
    residual: np.ndarray, max_norm: float, scope: str
) -> tuple[np.ndarray, np.ndarray]:
    """``(residual with over-bound steps zeroed, mask of kept steps)`` for a (T, D) residual.

    ``scope="action"`` zeroes each step whose L2 norm exceeds ``max_norm``; ``"chunk"`` zeroes
    the whole chunk when any step does. A non-finite step always counts as over the bound.
    """
    norms = np.linalg.norm(residual, axis=1)
    ok = np.isfinite(norms) & (norms <= max_norm)
    if scope == "chunk" and not ok.all():
        ok = np.zeros_like(ok)
    bounded = np.where(ok[:, None], residual, 0.0).astype(np.float32)
    return bounded, ok


class CorrectionWedge:
    """``BatchHandler -> BatchHandler`` applying a correction head to every qualifying chunk."""

    def __init__(
        self,
        config: A2C2Config,
        head: CorrectionHead,
        next_batch: BatchHandler,
        metrics: A2C2Metrics,
        *,
        max_norm: float,
    ) -> None:
        self.config = config
        self.head = head
        self._next = next_batch
        self.metrics = metrics
        self.max_norm = max_norm
        self.threshold_ms = config.a2c2_latency_threshold_ms
        self._warned_mismatch = False

    def _skip(self, result: ActResult, reason: str, latency_ms: float) -> ActResult:
        self.metrics.chunks.labels(reason).inc()
        note = {
            "applied": False,
            "reason": reason,
            "latency_ms": round(latency_ms, 3),
            "residual_norm": 0.0,
        }
        return attrs.evolve(result, metadata={**result.metadata, "correction": note})

    async def __call__(self, requests: Sequence[ActRequest]) -> list[ActResult]:
        results = await self._next(requests)
        mono, wall = time.monotonic_ns(), time.time_ns()
        out: list[ActResult] = list(results)
        pending: list[tuple[int, float, np.ndarray]] = []  # (index, latency, actions)
        for i, (request, result) in enumerate(zip(requests, results, strict=True)):
            latency = observation_age_ms(request, mono_now_ns=mono, wall_now_ns=wall)
            actions = np.asarray(result.actions, dtype=np.float32)
            if latency <= self.threshold_ms:
                out[i] = self._skip(result, "below-threshold", latency)
            elif result.features is None:
                out[i] = self._skip(result, "no-features", latency)
            elif (
                np.asarray(result.features).size != self.head.feature_dim
                or actions.ndim != 2
                or actions.shape[1] != self.head.action_dim
            ):
                if not self._warned_mismatch:
                    log.warning(
                        "A2C2 head expects %d features / %d action dims; policy %r returned "
                        "%d / %s: chunks pass uncorrected",
                        self.head.feature_dim, self.head.action_dim, request.policy,
                        np.asarray(result.features).size, actions.shape,
                    )  # fmt: skip
                    self._warned_mismatch = True
                out[i] = self._skip(result, "shape-mismatch", latency)
            else:
                pending.append((i, latency, actions))
        if not pending:
            return out
        t0 = time.perf_counter()
        rows = [
            build_inputs(np.asarray(results[i].features), actions, latency)
            for i, latency, actions in pending
        ]
        residuals = self.head.predict(np.concatenate(rows))
        self.metrics.head_seconds.observe(time.perf_counter() - t0)
        offset = 0
        for (i, latency, actions), x in zip(pending, rows, strict=True):
            residual = residuals[offset : offset + x.shape[0]]
            offset += x.shape[0]
            out[i] = self._apply(results[i], actions, residual, latency)
        return out

    def _apply(
        self, result: ActResult, actions: np.ndarray, residual: np.ndarray, latency_ms: float
    ) -> ActResult:
        if not np.isfinite(residual).all():
            return self._skip(result, "non-finite", latency_ms)
        bounded, ok = bound_residual(residual, self.max_norm, self.config.a2c2_norm_scope)
        corrected_steps = int(ok.sum())
        kept_steps = int(ok.size - corrected_steps)
        if corrected_steps == 0:
            self.metrics.steps.labels("kept").inc(kept_steps)
            return self._skip(result, "norm-bound", latency_ms)
        norms = np.linalg.norm(bounded[ok], axis=1)
        for norm in norms:
            self.metrics.residual_norm.observe(float(norm))
        self.metrics.steps.labels("corrected").inc(corrected_steps)
        if kept_steps:
            self.metrics.steps.labels("kept").inc(kept_steps)
        self.metrics.chunks.labels("applied").inc()
        note: dict[str, Any] = {
            "applied": True,
            "reason": "applied",
            "latency_ms": round(latency_ms, 3),
            "residual_norm": round(float(norms.max()), 6),
            "steps_corrected": corrected_steps,
            "steps_kept": kept_steps,
        }
        return attrs.evolve(
            result,
            actions=(actions + bounded).astype(np.float32),
            metadata={**result.metadata, "correction": note},
        )
