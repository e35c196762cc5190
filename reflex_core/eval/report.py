"""The summary table, the sweep comparison table and the PNG of ``reflex eval report``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from reflex_core.eval.stats import point_key


def _fmt(value: Any, spec: str = ".1f") -> str:
    return "-" if value is None else format(value, spec)


def table(summaries: Sequence[Mapping[str, Any]]) -> str:
    """One row per sweep point: success rate with its 95 % interval, return, latency, what the
    wedges did."""
    header = (
        f"{'point':<28} {'episodes':>8} {'success':>8} {'95% CI':>15} {'return':>8} "
        f"{'t_succ s':>8} {'lat p50':>8} {'lat p99':>8} {'stale':>6} {'starved':>7} "
        f"{'clamped':>7} {'rejected':>8} {'fallbk':>6} {'failed':>6} {'errors':>6}"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        low, high = s["success_ci95"]
        rate = s["success_rate"]
        lines.append(
            f"{point_key(s['point']):<28.28} {s['episodes']:>8} "
            f"{_fmt(None if rate is None else 100 * rate, '.1f'):>7}% "
            f"{f'[{100 * low:.1f}, {100 * high:.1f}]':>15} "
            f"{_fmt(s['return']['mean'], '.1f'):>8} {_fmt(s['time_to_success_s']['mean'], '.2f'):>8} "
            f"{_fmt(s['latency_ms_p50']):>8} {_fmt(s['latency_ms_p99']):>8} "
            f"{s['stale_dropped']:>6} {s['starved_ticks']:>7} {s['guard_clamped']:>7} "
            f"{s['guard_rejected']:>8} {s['fallbacks']:>6} {s.get('failures', 0):>6} "
            f"{s['errors']:>6}"
        )
    first = summaries[0] if summaries else {}
    title = f"reflex eval: {first.get('env')}/{first.get('task')}" if summaries else "reflex eval"
    return "\n".join([title, *lines])


def write_png(
    summaries: Sequence[Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]],
    path: Path,
) -> Path:
    """Success rate (with 95 % intervals) and the per-episode latency distributions, per sweep
    point, side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [point_key(s["point"]) for s in summaries]
    rates = [100 * (s["success_rate"] or 0.0) for s in summaries]
    lows = [r - 100 * s["success_ci95"][0] for r, s in zip(rates, summaries, strict=True)]
    highs = [100 * s["success_ci95"][1] - r for r, s in zip(rates, summaries, strict=True)]
    latencies = []
    for label in labels:
        values = [
            r["latency_ms"]["p50"]
            for r in records
            if r.get("type", "episode") == "episode"
            and point_key(r.get("point") or {}) == label
            and r["latency_ms"].get("p50") is not None
        ]
        latencies.append(values or [0.0])
    figure, (left, right) = plt.subplots(1, 2, figsize=(max(8, 2.2 * len(labels) + 4), 4.2))
    positions = list(range(len(labels)))
    left.bar(positions, rates, yerr=[lows, highs], capsize=6, color="#4c72b0")
    left.set_xticks(positions, labels, rotation=20, ha="right")
    left.set_ylim(0, 105)
    left.set_ylabel("success rate, % (95% Wilson CI)")
    left.set_title("success")
    right.boxplot(latencies, positions=positions, widths=0.5)
    right.set_xticks(positions, labels, rotation=20, ha="right")
    right.set_ylabel("per-episode p50 latency, ms")
    right.set_title("latency (observation -> chunk)")
    first = summaries[0] if summaries else {}
    figure.suptitle(f"reflex eval {first.get('env')}/{first.get('task')}")
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return path
