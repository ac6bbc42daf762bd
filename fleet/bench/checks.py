"""Read back what a stage wrote, check it against what the input says it must hold, and turn the
samples into figures: drain rate, CPU seconds per 1,000 events per process, peak RSS.

A rate is only worth reporting for a stage that did all the work: every count is compared with
the expectation and every difference is listed in `problems` (the command prints them and exits
non-zero). The drain window is first to last output record (broker time); for the alerts job, whose
output is a handful of alerts, the window is bracketed by the input's sentinel alerts
(fleet.bench.input) and the rate counts input events.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from fleet.bench.input import BenchInput
from fleet.bench.output import TopicContents, event_identity, read_topic
from fleet.bench.stages import StageRun


@dataclass(frozen=True)
class StageOutcome:
    stage: str
    rate: float | None  # events/s over the drain window
    window_s: float
    wall_s: float  # process start to end: start-up included
    events_in: int
    outputs: dict[str, dict[str, int | None]]  # sink → {records, distinct, expected}
    processes: dict[str, dict[str, float]]  # role → {cpu_s, cpu_s_window, peak_rss_mib, processes}
    problems: tuple[str, ...]
    checkpoints: dict[str, Any] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    machine_busy_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.problems

    def cpu_per_1k(self, role: str, *, window: bool = True) -> float | None:
        entry = self.processes.get(role)
        if entry is None or not self.events_in:
            return None
        return round(entry["cpu_s_window" if window else "cpu_s"] / (self.events_in / 1000), 4)

    @property
    def foreign_cpu_s(self) -> float:
        """Machine CPU during the stage not used by the stage's processes or the broker: other tenants."""
        ours = sum(entry["cpu_s"] for entry in self.processes.values())
        return round(max(0.0, self.machine_busy_s - ours), 2)

    def summary_line(self) -> str:
        rate = f"{self.rate:,.0f} events/s over {self.window_s:.1f}s" if self.rate else "no rate"
        counts = ", ".join(f"{name} {o['records']}/{o['expected']}" for name, o in self.outputs.items())
        verdict = "OK" if self.ok else "MISMATCH"
        return f"{verdict}: {rate} (wall {self.wall_s:.1f}s); {counts}" + "".join(f"\n   !! {p}" for p in self.problems)


def _count(problems: list[str], stage: str, name: str, records: int, distinct: int | None, expected: int) -> dict[str, int | None]:
    if records != expected:
        problems.append(f"{stage}: {name} holds {records} records, expected {expected}")
    if distinct is not None and distinct != records:
        problems.append(f"{stage}: {name} holds {records - distinct} duplicated records")
    return {"records": records, "distinct": distinct, "expected": expected}


def _outcome(stage: str, run: StageRun, data: BenchInput, rate: float | None, window: tuple[float, float] | None,
             outputs: dict[str, dict[str, int | None]], problems: list[str]) -> StageOutcome:
    if run.error:
        problems.insert(0, run.error)
    return StageOutcome(
        stage=stage, rate=round(rate, 1) if rate else None, window_s=round(window[1] - window[0], 3) if window else 0.0,
        wall_s=round(run.ended - run.started, 2), events_in=data.sent, outputs=outputs,
        processes=run.sampler.by_role(window), problems=tuple(problems), checkpoints=run.checkpoints, report=run.report,
    )


def _window(contents: TopicContents) -> tuple[float, float] | None:
    if contents.first_ms is None or contents.last_ms is None or contents.last_ms <= contents.first_ms:
        return None
    return contents.first_ms / 1000, contents.last_ms / 1000


def _timestamps_ok(problems: list[str], stage: str, contents: TopicContents) -> None:
    if contents.records and not contents.log_append_time:
        problems.append(f"{stage}: {contents.topic} records are not broker-stamped (LogAppendTime): the window is the writer's")


def check_limit(bootstrap: str, stage: str, topic: str, data: BenchInput, run: StageRun) -> StageOutcome:
    problems: list[str] = []
    contents = read_topic(bootstrap, topic)
    _timestamps_ok(problems, stage, contents)
    outputs = {"output": _count(problems, stage, "the output topic", contents.records, None, data.sent)}
    return _outcome(stage, run, data, contents.rate, _window(contents), outputs, problems)


def check_pipeline(bootstrap: str, stage: str, enriched_topic: str, dlq_topic: str | None, data: BenchInput, run: StageRun, *,
                   bronze: Path | None = None, hot_store: Path | None = None) -> StageOutcome:
    """The enriched topic always; the DLQ, Bronze and the hot store when the stage writes them."""
    from fleet.harness.sinks import bronze_keys, hot_store_keys

    problems: list[str] = []
    enriched = read_topic(bootstrap, enriched_topic, identity=event_identity)
    _timestamps_ok(problems, stage, enriched)
    outputs = {"enriched": _count(problems, stage, "telemetry-enriched", enriched.records, enriched.distinct, data.unique_valid)}
    if dlq_topic is not None:
        dlq = read_topic(bootstrap, dlq_topic)
        outputs["dlq"] = _count(problems, stage, "the DLQ", dlq.records, None, data.rejected)
    if bronze is not None:
        rows = bronze_keys(bronze)
        outputs["bronze"] = _count(problems, stage, "Bronze Parquet", sum(rows.values()), len(rows), data.unique_valid)
    if hot_store is not None:
        points = hot_store_keys(hot_store)
        outputs["hot_store"] = _count(problems, stage, "the hot store", sum(points.values()), len(points), data.unique_valid)
    return _outcome(stage, run, data, enriched.rate, _window(enriched), outputs, problems)


def check_alerts(bootstrap: str, stage: str, topic: str, data: BenchInput, run: StageRun) -> StageOutcome:
    problems: list[str] = []
    sentinel_ms: list[int] = []
    ids: set[str] = set()

    def keep(value: bytes, _key: bytes | None, stamp: int) -> None:
        alert = orjson.loads(value)
        ids.add(alert.get("alert_id"))
        if alert.get("vehicle_id") in data.alert_sentinels:
            sentinel_ms.append(stamp)

    contents = read_topic(bootstrap, topic, keep=keep)
    _timestamps_ok(problems, stage, contents)
    outputs = {"alerts": _count(problems, stage, "fleet-alerts", contents.records, len(ids), data.alerts)}
    if len(sentinel_ms) != len(data.alert_sentinels):
        problems.append(f"{stage}: {len(sentinel_ms)} of {len(data.alert_sentinels)} sentinel alerts arrived: no drain window")
    window = (min(sentinel_ms) / 1000, max(sentinel_ms) / 1000) if len(sentinel_ms) >= 2 and max(sentinel_ms) > min(sentinel_ms) else None
    rate = data.sent / (window[1] - window[0]) if window else None
    return _outcome(stage, run, data, rate, window, outputs, problems)
