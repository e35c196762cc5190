"""Shadow comparisons: A's and B's chunk for the same observation, their difference, a record.

One JSON object per mirrored request in ``--shadow-log`` (append-only, fsync-ed, see
:mod:`reflex_core.plugin.kit.jsonl`)::

    {"type": "shadow", "time_ns": 1718000000000000000,
     "request_id": "...", "episode_id": "ep-7" | null, "seq": 12 | null,
     "capture_time_ns": ... | null, "prompt": "...", "state": [...],
     "latency_ms": 41.7,              # A's observation age when A returned (capture -> chunk)
     "features": [...] | null,        # A's pooled prefix features
     "actions_a": [[...], ...], "actions_b": [[...], ...] | null,
     "model_version_a": "...", "model_version_b": "...",
     "l2": 0.12 | null, "max_abs": 0.05 | null,   # over the whole chunk, B - A
     "error_a": null | "slug", "error_b": null | "slug"}

``features``, ``latency_ms`` and ``actions_a`` are what ``reflex a2c2 train`` needs besides the
executed actions, under the same names (see the reflex-a2c2 README).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from reflex_core.errors import ReflexError
from reflex_core.plugin import ActRequest, ActResult
from reflex_core.plugin.kit.jsonl import AsyncJsonlWriter, JsonlWriter
from reflex_router.metrics import RouterMetrics

log = logging.getLogger(__name__)


def chunk_difference(a: np.ndarray, b: np.ndarray) -> tuple[float, float] | None:
    """``(L2 over the whole chunk, max abs)`` of ``b - a``; None when the shapes differ."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        return None
    diff = b - a
    max_abs = float(np.max(np.abs(diff))) if diff.size else 0.0
    return float(np.linalg.norm(diff)), max_abs


def _slug(exc: BaseException | None) -> str | None:
    if exc is None:
        return None
    return exc.slug if isinstance(exc, ReflexError) else type(exc).__name__


def _finite_list(values: np.ndarray | None) -> list[Any] | None:
    # JSON has no NaN; a non-finite action is recorded as null rather than losing the record.
    if values is None:
        return None
    arr = np.asarray(values, dtype=np.float64)
    finite = np.isfinite(arr)
    if finite.all():
        return arr.tolist()
    return np.where(finite, arr, None).tolist()


class ShadowRecorder:
    """Compares A and B, updates the difference histograms and appends the JSONL record."""

    def __init__(
        self,
        metrics: RouterMetrics,
        versions: dict[str, str | None],
        log_path: str | None = None,
    ) -> None:
        self.metrics = metrics
        self.versions = versions
        self.writer: AsyncJsonlWriter | None = None
        if log_path is not None:
            self.writer = AsyncJsonlWriter(JsonlWriter(Path(log_path)))
        self.records_written = 0

    async def record(
        self,
        request: ActRequest,
        result_a: ActResult | None,
        error_a: BaseException | None,
        result_b: ActResult | None,
        error_b: BaseException | None,
        latency_ms: float | None,
    ) -> None:
        diff = None
        if result_a is not None and result_b is not None:
            diff = chunk_difference(result_a.actions, result_b.actions)
            if diff is None:
                self.metrics.shadow.labels("shape_mismatch").inc()
            else:
                self.metrics.shadow.labels("compared").inc()
                self.metrics.shadow_l2.observe(diff[0])
                self.metrics.shadow_max_abs.observe(diff[1])
        if error_a is not None:
            self.metrics.shadow.labels("a_error").inc()
        if error_b is not None:
            self.metrics.shadow.labels("b_error").inc()
        if self.writer is None:
            return
        obs = request.observation
        record: dict[str, Any] = {
            "type": "shadow",
            "time_ns": time.time_ns(),
            "request_id": request.request_id,
            "episode_id": obs.episode_id,
            "seq": obs.seq,
            "capture_time_ns": obs.capture_time_ns,
            "prompt": obs.prompt,
            "state": _finite_list(obs.state),
            "latency_ms": None if latency_ms is None else round(latency_ms, 3),
            "features": _finite_list(result_a.features if result_a is not None else None),
            "actions_a": _finite_list(result_a.actions if result_a is not None else None),
            "actions_b": _finite_list(result_b.actions if result_b is not None else None),
            "model_version_a": self.versions.get("a"),
            "model_version_b": self.versions.get("b"),
            "l2": None if diff is None else diff[0],
            "max_abs": None if diff is None else diff[1],
            "error_a": _slug(error_a),
            "error_b": _slug(error_b),
        }
        try:
            await self.writer.append(record)
            self.records_written += 1
        except (OSError, ValueError, TypeError) as exc:  # the log must never fail a request
            log.error("shadow log %s: could not append a record: %s", self.writer.writer.path, exc)
            self.metrics.shadow.labels("log_error").inc()

    async def aclose(self) -> None:
        if self.writer is not None:
            await self.writer.aclose()
