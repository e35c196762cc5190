"""Online model of what a batch of N requests costs (milliseconds of policy time).

A batched call costs a fixed part (kernel launches, the Python around ORT) plus a part that
grows with N, and both depend on the machine and the model, so the scheduler learns them while
serving: an exponentially weighted average per batch size it has run, linear interpolation
between sizes it has seen, and linear extrapolation beyond them.
"""

from __future__ import annotations

import bisect


class BatchCostModel:
    """Per-batch-size latency EWMA with interpolation for sizes never run.

    :param alpha: weight of the newest sample (1.0 keeps only the last one).
    """

    def __init__(self, alpha: float = 0.2) -> None:
        if not 0 < alpha <= 1:
            raise ValueError(f"alpha must be in (0, 1], got {alpha}")
        self.alpha = alpha
        self._ms: dict[int, float] = {}
        self._sizes: list[int] = []  # sorted keys of _ms, for bisect

    def observe(self, size: int, elapsed_ms: float) -> None:
        """Record one batch of ``size`` requests that took ``elapsed_ms``."""
        if size < 1 or elapsed_ms < 0:
            return
        old = self._ms.get(size)
        if old is None:
            self._ms[size] = elapsed_ms
            bisect.insort(self._sizes, size)
        else:
            self._ms[size] = old + self.alpha * (elapsed_ms - old)

    def known(self) -> dict[int, float]:
        """The learned average per batch size run so far."""
        return dict(self._ms)

    def estimate(self, size: int) -> float | None:
        """Estimated milliseconds for a batch of ``size``; None before any measurement."""
        sizes = self._sizes
        if not sizes or size < 1:
            return None
        if size in self._ms:
            return self._ms[size]
        if len(sizes) == 1:
            # One point: assume cost proportional to size. It overestimates above that point
            # (batching is sublinear), which keeps a cost budget on the safe side until the
            # scheduler has measured a second size.
            (s0,) = sizes
            return self._ms[s0] * size / s0
        i = bisect.bisect_left(sizes, size)
        if 0 < i < len(sizes):
            lo, hi = sizes[i - 1], sizes[i]
            frac = (size - lo) / (hi - lo)
            return self._ms[lo] + frac * (self._ms[hi] - self._ms[lo])
        # Outside the measured range: extend the line through the two nearest sizes. A batch
        # never costs less than a smaller one, so the slope is floored at zero, and a cost is
        # never below zero.
        lo, hi = (sizes[0], sizes[1]) if i == 0 else (sizes[-2], sizes[-1])
        slope = max(0.0, (self._ms[hi] - self._ms[lo]) / (hi - lo))
        anchor = lo if i == 0 else hi
        return max(0.0, self._ms[anchor] + slope * (size - anchor))

    def largest_within(self, budget_ms: float, max_size: int) -> int:
        """The largest batch size in ``[1, max_size]`` whose estimate fits ``budget_ms``.

        Sizes without an estimate fit (nothing is known against them); a batch of one always
        runs, whatever its cost.
        """
        best = 1
        for size in range(2, max_size + 1):
            est = self.estimate(size)
            if est is not None and est > budget_ms:
                break
            best = size
        return best
