"""Open-loop pacing for the simulator's outputs: a target rate against the wall clock, or event time.

Open loop: the sender keeps its schedule whatever the receiver does (a slow broker shows as a
growing backlog and a lower acknowledged rate, not as a politely slower sender) — the way a fleet
behaves. The clock is checked every ~5 ms worth of items and the sender sleeps only when it is
ahead by that much (a sleep and its wake-up cost CPU; 200 of them a second cost next to nothing).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

GRANULARITY_S = 0.005


class OpenLoop:
    """Call `pace(sent)` whenever `sent >= next_at`; it sleeps while ahead of `rate_per_s` (None: no
    pacing) and prints the achieved rate every `report_every_s` (None: never) through `out`."""

    def __init__(
        self,
        rate_per_s: float | None,
        *,
        report_every_s: float | None = None,
        label: str = "sent",
        out: Callable[[str], None] = print,
    ):
        if rate_per_s is not None and rate_per_s <= 0:
            rate_per_s = None
        self.rate_per_s = rate_per_s
        self.report_every_s = report_every_s
        self.label = label
        self.out = out
        self.chunk = max(1, int(rate_per_s * GRANULARITY_S)) if rate_per_s else 1_000
        self.next_at = self.chunk
        self.started = time.perf_counter()
        self._next_report = self.started + report_every_s if report_every_s else float("inf")

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def pace(self, sent: int) -> None:
        self.next_at = sent + self.chunk
        now = time.perf_counter()
        if self.rate_per_s:
            ahead_s = sent / self.rate_per_s - (now - self.started)
            if ahead_s > 0:
                time.sleep(ahead_s)
                now = time.perf_counter()
        if now >= self._next_report:
            self._next_report = now + self.report_every_s
            self.out(self.progress_line(sent, now - self.started))

    def progress_line(self, sent: int, seconds: float) -> str:
        target = f" (target {self.rate_per_s:,.0f}/s)" if self.rate_per_s else ""
        rate = sent / seconds if seconds > 0 else 0.0
        return f"{self.label}: {sent:,} in {seconds:.1f}s, {rate:,.0f}/s{target}"


def realtime(timed_items: Iterable[tuple[int, Any]], *, start_ms: int | None = None, speedup: float = 1.0) -> Iterator[Any]:
    """The items of (event time ms, item) pairs, each released when the wall clock has advanced as far
    from the start as its event time (÷ `speedup`) from `start_ms` (default: the first item's)."""
    if speedup <= 0:
        raise ValueError(f"speedup must be > 0, got {speedup}")
    started = time.perf_counter()
    checked_ms = None
    for ts, item in timed_items:
        if start_ms is None:
            start_ms = ts
        if checked_ms is None or ts - checked_ms >= 1:
            checked_ms = ts
            ahead_s = (ts - start_ms) / 1000 / speedup - (time.perf_counter() - started)
            if ahead_s >= GRANULARITY_S:
                time.sleep(ahead_s)
        yield item


def realtime_batches(
    batches: Iterable[tuple[int, list[Any]]], *, start_ms: int | None = None, speedup: float = 1.0
) -> Iterator[Any]:
    """`realtime` for (event time ms, [item, …]) batches (`RateModeFleet.encoded_batches`): one clock
    check per batch, the items flattened."""
    if speedup <= 0:
        raise ValueError(f"speedup must be > 0, got {speedup}")
    started = time.perf_counter()
    for ts, batch in batches:
        if start_ms is None:
            start_ms = ts
        ahead_s = (ts - start_ms) / 1000 / speedup - (time.perf_counter() - started)
        if ahead_s >= GRANULARITY_S:
            time.sleep(ahead_s)
        yield from batch
