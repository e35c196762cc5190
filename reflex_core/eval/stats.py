"""Summaries of episode records, with confidence intervals.

* success rate: Wilson score interval (right at 0 % and 100 %, where the normal approximation
  collapses to a zero-width interval);
* mean return and time to success: mean +- z * s / sqrt(n) (normal approximation);
* latency: the median of the episodes' p50 and the largest p99 (per-chunk latencies are
  summarized per episode in the records).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

Z95 = 1.959963984540054


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval for a binomial proportion (0, 1 bounds included)."""
    if n <= 0:
        return (0.0, 1.0)
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be within 0..{n}, got {successes}")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low, high = max(0.0, centre - half), min(1.0, centre + half)
    # exact at the edges (floating point can leave 1e-17)
    if successes == 0:
        low = 0.0
    if successes == n:
        high = 1.0
    return (low, high)


def mean_interval(values: Sequence[float], z: float = Z95) -> dict[str, float | None]:
    """Mean with a normal-approximation interval (``None`` fields without data)."""
    n = len(values)
    if n == 0:
        return {"mean": None, "low": None, "high": None}
    mean = sum(values) / n
    if n == 1:
        return {"mean": mean, "low": None, "high": None}
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(var / n)
    return {"mean": mean, "low": mean - half, "high": mean + half}


def _median(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def point_key(point: Mapping[str, Any]) -> str:
    """A sweep point's label: ``deadline-ms=50 merge=average``; ``(default)`` for none."""
    return " ".join(f"{k}={v}" for k, v in sorted(point.items())) or "(default)"


def summarize(records: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """One summary over episode records (all of one sweep point)."""
    episodes = [r for r in records if r.get("type", "episode") == "episode"]
    n = len(episodes)
    successes = sum(1 for r in episodes if r.get("success"))
    low, high = wilson_interval(successes, n)
    p50s = [r["latency_ms"]["p50"] for r in episodes if r["latency_ms"].get("p50") is not None]
    p99s = [r["latency_ms"]["p99"] for r in episodes if r["latency_ms"].get("p99") is not None]
    frequency = [r["steps"] / r["sim_time_s"] for r in episodes if r.get("sim_time_s")]
    to_success = [
        r["success_tick"] / frequency[0] for r in episodes if r.get("success") and frequency
    ]
    first = episodes[0] if episodes else {}
    return {
        "type": "summary",
        "env": first.get("env"),
        "task": first.get("task"),
        "point": dict(first.get("point") or {}),
        "episodes": n,
        "successes": successes,
        "success_rate": successes / n if n else None,
        "success_ci95": [low, high],
        "return": mean_interval([float(r["return"]) for r in episodes]),
        "time_to_success_s": mean_interval(to_success),
        "steps_mean": (sum(r["steps"] for r in episodes) / n) if n else None,
        "latency_ms_p50": _median(p50s),
        "latency_ms_p99": max(p99s) if p99s else None,
        "chunks": sum(r["chunks"] for r in episodes),
        "stale_dropped": sum(r["stale_dropped"] for r in episodes),
        "starved_ticks": sum(r["starved_ticks"] for r in episodes),
        "guard_clamped": sum(r["guard"]["clamped"] for r in episodes),
        "guard_rejected": sum(r["guard"]["rejected"] for r in episodes),
        "fallbacks": sum(r["fallbacks"] for r in episodes),
        "failures": sum(1 for r in episodes if r.get("failure")),
        "errors": sum(1 for r in episodes if r.get("error")),
        "wall_s": sum(r["wall_s"] for r in episodes),
    }


def summarize_by_point(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One summary per sweep point, in the order the points first appear."""
    groups: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        if record.get("type", "episode") != "episode":
            continue
        groups.setdefault(point_key(record.get("point") or {}), []).append(record)
    return [summarize(group) for group in groups.values()]
