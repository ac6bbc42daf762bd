"""The input clock of the anomaly job: how long a vehicle has been silent *as far as the platform
could see*, so that an outage of the platform is not read as 100,000 vehicles going offline.

Silence is measured in input time, the ingest timestamps (Kafka create time) of the records the
job has read, not in the job's wall clock:
- the job down or lagging (a restart, a backlog): the records it reads later carry the times they
  were ingested, so a vehicle's silence is exact whenever it is read; nothing needs holding.
- the ingest path down (the MQTT bridge, the broker, Kafka): there are no records, so no input time.
  Between records the clock runs on with the wall clock (a quiet moment, or a fleet of one silent
  vehicle), but for at most `stall_after_ms`: past that the input is *stalled*, the clock stops
  and no vehicle's silence grows. When records come again, the input time they jump over beyond
  `stall_after_ms` is a *gap*: it is left out of every silence it falls in (vehicles keep the
  spread of deadlines they had, so recovery wakes no wave of timers).

Status, per operator instance: `current`, `stalled` (no record for `stall_after_ms`) or `lagging`
(the newest record read was ingested `lag_limit_ms` or more ago). Stalled and lagging are what the
job reports as one platform alert (jobs.platform_monitor) instead of paging per vehicle.

Batches come per shard, so a gap is judged on one shard's records: a backlog read after a restart
where one shard had no record at all for a stall period counts that stretch as a gap for the
instance. At a fleet's density (thousands of events per shard per second) that is an outage; in
a sparse test fleet it can only leave silence uncounted (a late offline alert), never page.

A fleet whose every vehicle in an instance's shards goes silent at once reads as a stalled input:
at 50,000 vehicles (parked ones report every 10 s) that is an outage, not a coincidence; a tiny
test fleet needs a `stall_after_ms` above its silences.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final

CURRENT: Final = "current"
STALLED: Final = "stalled"
LAGGING: Final = "lagging"
MAX_GAPS: Final = 32  # gaps remembered; older ones are pruned once no pending silence can span them


@dataclass(frozen=True)
class InputPolicy:
    stall_after_ms: int = 60_000
    lag_limit_ms: int = 60_000

    def __post_init__(self) -> None:
        if self.stall_after_ms <= 0 or self.lag_limit_ms <= 0:
            raise ValueError("stall_after_ms and lag_limit_ms must be > 0")


@dataclass
class InputClock:
    """One operator instance's view of its input. All times are epoch ms.

    `input_ms` only grows; `arrival_wall_ms` is None after a (re)start until a record arrives (the
    clock does not run on across a restart: the records read next say what happened meanwhile)."""

    policy: InputPolicy
    started_wall_ms: int
    input_ms: int | None = None
    arrival_wall_ms: int | None = None
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (input time where it began, length)
    status: str = CURRENT

    def observe(self, ingested_ms: list[int | None], now_ms: int) -> None:
        """A batch of records arrived at `now_ms`; `ingested_ms` are their ingest times (None: unknown,
        taken as now). Future times (a skewed producer clock) count as now. A gap is a stretch of
        input time with no record, so a backlog read in one batch (continuous times, however far
        they reach) is none: the batch's own times are walked when it reaches past a stall period."""
        times = [now_ms if t is None else min(t, now_ms) for t in ingested_ms] or [now_ms]
        newest = max(times)
        stall = self.policy.stall_after_ms
        if self.input_ms is not None and newest > self.input_ms + stall:
            previous = self.input_ms
            for t in sorted(times):
                if t > previous + stall:
                    self._add_gap(previous + stall, t - previous - stall)
                previous = max(previous, t)
        if self.input_ms is None or newest > self.input_ms:
            self.input_ms = newest
        self.arrival_wall_ms = now_ms
        self.status = LAGGING if now_ms - newest >= self.policy.lag_limit_ms else CURRENT

    def tick(self, now_ms: int) -> str:
        """Re-evaluate without a record (a timer): stalled once nothing arrived for `stall_after_ms`."""
        since = self.arrival_wall_ms if self.arrival_wall_ms is not None else self.started_wall_ms
        if now_ms - since >= self.policy.stall_after_ms:
            self.status = STALLED
        return self.status

    def now_ms(self, wall_ms: int) -> int | None:
        """The input clock at `wall_ms`: the newest input time, run on with the wall clock since the
        last record for at most `stall_after_ms`. None before any input."""
        if self.input_ms is None:
            return None
        if self.arrival_wall_ms is None:
            return self.input_ms
        return self.input_ms + max(0, min(wall_ms - self.arrival_wall_ms, self.policy.stall_after_ms))

    def learn(self, input_ms: int | None, gaps: list[tuple[int, int]]) -> None:
        """Merge what a shard's stored state knew (after a restart, when the shard is first touched)."""
        if input_ms is not None and (self.input_ms is None or input_ms > self.input_ms):
            self.input_ms = input_ms
        for gap in gaps:
            if tuple(gap) not in self.gaps:
                self.gaps.append((int(gap[0]), int(gap[1])))
        self.gaps.sort()

    def due_ms(self, heard_ms: int, silence_ms: int) -> int:
        """Input time at which a vehicle last heard at `heard_ms` has been silent for `silence_ms`
        that the platform could see: gaps after it are left out."""
        return heard_ms + silence_ms + sum(length for start, length in self.gaps if start >= heard_ms)

    def _add_gap(self, start: int, length: int) -> None:
        self.gaps.append((start, length))
        self.gaps.sort()
        del self.gaps[:-MAX_GAPS]

    def prune(self, silence_ms: int) -> None:
        """Forget gaps no pending silence can span: a vehicle heard before such a gap (so a stall
        period before its start, at the latest) is due by now."""
        if self.input_ms is None or not self.gaps:
            return
        total = sum(length for _, length in self.gaps)
        reach = silence_ms + total - self.policy.stall_after_ms
        self.gaps = [g for g in self.gaps if g[0] + reach >= self.input_ms]
