"""p50/p95/p99 and the maximum of a list of latencies, to 0.1: the live status and the benchmarks.

Two rank rules, each kept where it was so that no published figure moves: the live status takes the
nearest rank (the smallest value with at least q of them at or below it); the benchmarks take the
value at q·(n-1) rounded, the rule every figure in BENCHMARKS.md was measured with. The two pick at
most one value apart.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

QUANTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}
KEYS = (*QUANTILES, "max")

Rank = Callable[[int, float], int]  # (count, q) → index into the sorted values


def nearest_rank(count: int, q: float) -> int:
    return max(0, math.ceil(q * count) - 1)


def rounded_index(count: int, q: float) -> int:
    return min(count - 1, round(q * (count - 1)))


def latency_percentiles(values: Sequence[float], rank: Rank = nearest_rank) -> dict[str, float] | None:
    """{p50, p95, p99, max} of `values`, or None if there are none."""
    if not values:
        return None
    ordered = sorted(values)
    found = {key: round(ordered[rank(len(ordered), q)], 1) for key, q in QUANTILES.items()}
    return {**found, "max": round(ordered[-1], 1)}
