"""Sustained open-loop load for `telemetry bench pipeline`: the highest simulator rate the pipeline
keeps up with, and ingest→telemetry-enriched latency at half that rate.

The pipeline (every sink, exactly once) runs unbounded on the MiniCluster over a fresh topic. The
simulator (device_sim) sends at rising rates, `step_s` seconds each, open loop (it never slows
down for the job). A rate is sustained when the lag at the step's end is no more than `grace_s`
(two checkpoints and a little: what exactly-once visibility explains) worth of events, and every
event of the step is in telemetry-enriched within `grace_s` after it. The first rate that is not
ends the climb. Then half the highest sustained rate is sent again and every enriched event of that
step is timed two ways, both from `ingested_at_ms` (its Kafka create time): to when a read_committed
consumer here received it (what a downstream consumer sees, the checkpoint included, and this
process's own lag on a busy box) and to when the broker appended it (LogAppendTime: the job's own
latency, before the commit makes it visible). The simulator in this process is a limit of its own (one core of Python):
a step it could not send at ≥ 95 % of its target ends the climb too, and says so.

The latency step times the other sinks too (fleet.bench.latency): every event of the step to when it
is first seen in the hot store (polled read-only beside the writer) and in a committed Bronze file
(bound by the checkpoint interval: files commit with the checkpoint), and, with the alerts job
running beside the pipeline (a second MiniCluster, started after the climb so it does not distort
it), a known number of low-battery sentinels spread over the step to their alerts. Each count must
be exact: a missing row, file row or alert is a problem, like a missing enriched event.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TopicPartition

from connectors.kafka_clients import make_consumer
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import produce_events
from fleet.bench.cpu import stop_process_tree
from fleet.bench.input import CALM_RADIUS_KM
from fleet.bench.latency import BRONZE_POLL_S, HOT_STORE_POLL_S, LatencyProbes
from fleet.percentiles import KEYS, latency_percentiles, rounded_index
from infra.flink_cluster import PROJECT_ROOT
from udfs.telemetry_schema import parse_timestamp_ms

# Issue F's latency targets at half the highest sustained rate (p99). Bronze has none: a file
# commits when a checkpoint completes, so its latency is the checkpoint interval's by design.
TARGET_P99_MS = {"ingest_to_alert_ms": 300.0, "ingest_to_hot_store_ms": 2_000.0}


@dataclass(frozen=True)
class SustainedPlan:
    rates: tuple[float, ...] = (2_000, 3_000, 4_500, 7_000, 10_000, 15_000, 22_000, 33_000, 50_000)
    step_s: float = 20.0
    latency_s: float = 30.0
    vehicles: int = 50_000
    start_timeout_s: float = 180.0
    alert_sentinels: int = 60  # low-battery sentinels spread over the latency step, one alert each


SMOKE_SUSTAINED = SustainedPlan(rates=(100, 200), step_s=3.0, latency_s=3.0, vehicles=200, alert_sentinels=6)


@dataclass
class _Received:
    count: int = 0
    identities: set = field(default_factory=set)
    samples: list[tuple[int, int, int]] = field(default_factory=list)  # (ingested_at_ms, appended_ms, received_ms)
    # (vehicle_id, event ms) → ingested_at_ms of the events ingested from `ingest_from_ms` on: the
    # latency step's, whose hot-store rows carry no ingest time of their own.
    ingested: dict[tuple[int, int], int] = field(default_factory=dict)


def _percentiles(values: list[float]) -> dict[str, float | None]:
    found = latency_percentiles(values, rounded_index)
    return {**(found or dict.fromkeys(KEYS)), "samples": len(values)}


class _Reader(threading.Thread):
    def __init__(self, bootstrap: str, topic: str, partitions: int):
        super().__init__(name="sustained-reader", daemon=True)
        self.bootstrap, self.topic, self.partitions = bootstrap, topic, partitions
        self.received = _Received()
        self.stop_event = threading.Event()
        self.lock = threading.Lock()
        self.ingest_from_ms = float("inf")
        self.first_fleet_id = FleetSpec().first_vehicle_id  # below it: the latency step's alert sentinels, timed apart

    def run(self) -> None:
        consumer = make_consumer(self.bootstrap, f"bench-sustained-reader-{time.time_ns()}")
        consumer.assign([TopicPartition(self.topic, p, 0) for p in range(self.partitions)])
        try:
            while not self.stop_event.is_set():
                batch = consumer.consume(num_messages=5_000, timeout=0.1)
                now_ms = int(time.time() * 1000)
                with self.lock:
                    for message in batch:
                        if message.error() is not None:
                            continue
                        event = orjson.loads(message.value())
                        self.received.count += 1
                        self.received.identities.add((event["vehicle_id"], event["timestamp"]))
                        if event["vehicle_id"] < self.first_fleet_id:
                            continue
                        # Appended: the broker's LogAppendTime (the output topic's setting), when the job wrote
                        # it; received: when this reader got it, the commit (checkpoint) included — and any lag
                        # of this process on a busy box, which the appended figure does not have.
                        ingested = event["ingested_at_ms"]
                        self.received.samples.append((ingested, message.timestamp()[1], now_ms))
                        if ingested >= self.ingest_from_ms:
                            self.received.ingested[(event["vehicle_id"], parse_timestamp_ms(event["timestamp"]))] = ingested
        finally:
            consumer.close()

    def count(self) -> int:
        with self.lock:
            return self.received.count


def run_sustained(config: Any, settings: dict[str, str], input_topic: str, enriched_topic: str, folder: Path,
                  plan: SustainedPlan, *, grace_s: float, out: Callable[[str], None] = print) -> dict[str, Any]:
    bootstrap = config.kafka.bootstrap_servers
    partitions = config.kafka.topic("enriched").partitions
    folder.mkdir(parents=True, exist_ok=True)
    log = folder / "stage.log"
    argv = [sys.executable, "-m", "fleet.bench.flink_job", "--kind", "pipeline", "--unbounded", "--profile", config.profile,
            *(a for k, v in settings.items() for a in ("--set", f"{k}={v}"))]
    reader = _Reader(bootstrap, enriched_topic, partitions)
    reader.start()
    events: Iterator[dict] = Fleet(FleetSpec(vehicles=plan.vehicles, radius_km=CALM_RADIUS_KM, seed=7)).events(ticks=10**9)
    problems: list[str] = []
    steps: list[dict[str, Any]] = []
    latency: dict[str, Any] = {}
    probes: LatencyProbes | None = None
    produced = 0
    with log.open("wb") as err:
        job = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=PROJECT_ROOT)
        try:
            # Warm-up: one tick of the fleet, and wait until the job has written it (start-up, first checkpoint).
            produced += _send(bootstrap, input_topic, events, plan.vehicles, None).acknowledged
            deadline = time.monotonic() + plan.start_timeout_s
            while reader.count() < produced and time.monotonic() < deadline and job.poll() is None:
                time.sleep(0.5)
            if reader.count() < produced:
                raise RuntimeError(f"the pipeline did not start writing within {plan.start_timeout_s:.0f}s (exit {job.poll()}); see {log}")
            out(f"   warm-up: {produced} events through; climbing {', '.join(f'{r:,.0f}' for r in plan.rates)} events/s, {plan.step_s:g}s each")
            best = None
            for rate in plan.rates:
                step = _step(bootstrap, input_topic, events, rate, plan.step_s, reader, produced, grace_s, job)
                produced += step["produced"]
                steps.append(step)
                out(f"   {rate:>9,.0f}/s: sent at {step['achieved_rate']:,.0f}/s, max lag {step['max_lag']:,}, "
                    f"{'caught up' if step['bounded'] else 'lag ' + format(step['lag_after_grace'], ',') + ' after'} "
                    f"{grace_s:.0f}s grace")
                if job.poll() is not None:
                    problems.append(f"sustained: the pipeline exited ({job.returncode}) during the {rate:,.0f}/s step; see {log}")
                    break
                if not step["generator_kept_up"]:
                    out("   the simulator could not send faster: it, not the job, is the limit from here")
                if step["bounded"]:
                    best = rate
                if not step["bounded"] or not step["generator_kept_up"]:
                    break
            latency_window = None
            if best is not None and job.poll() is None:
                half = best / 2
                # The alerts job starts now, not for the climb (two MiniClusters on 2 cores would lower
                # it), and its JVM starts while the failed step's backlog drains.
                probes = LatencyProbes(config, settings, input_topic, folder)
                probes.open()
                _drain(reader, produced, max(grace_s * 4, 120.0), job)  # the failed step's backlog first
                produced += probes.warm_up(plan.start_timeout_s)
                backlog = produced - reader.count()
                began_ms = int(time.time() * 1000)
                reader.ingest_from_ms = began_ms
                sent = probes.watch(events, plan.alert_sentinels, plan.latency_s)
                step = _step(bootstrap, input_topic, iter(sent), half, plan.latency_s, reader, produced, grace_s, job)
                produced += step["produced"] + probes.sentinels_sent()
                latency_window = (began_ms, int(time.time() * 1000), half, step["achieved_rate"])
            # Everything sent must arrive exactly once (the last step's grace may not have sufficed).
            _drain(reader, produced, max(grace_s * 4, 30.0), job)
            if latency_window is not None and probes is not None:
                latency = _latency(reader, probes, latency_window, backlog, max(grace_s * 2, 30.0), problems)
                _print_latency(latency, out)
        finally:
            if probes is not None:
                probes.stop()
            stop_process_tree(job)
            reader.stop_event.set()
            reader.join(10)
    received = reader.received
    if received.count != produced:
        problems.append(f"sustained: telemetry-enriched holds {received.count} of the {produced} events sent")
    if len(received.identities) != received.count:
        problems.append(f"sustained: {received.count - len(received.identities)} duplicated events in telemetry-enriched")
    best = max((s["rate"] for s in steps if s["bounded"]), default=None)
    return {"steps": steps, "max_sustained_rate": best, "latency": latency, "produced": produced, "received": received.count,
            "distinct": len(received.identities), "grace_s": grace_s, "step_s": plan.step_s, "problems": problems}


def _latency(reader: _Reader, probes: LatencyProbes, window_ms: tuple[int, int, float, float], backlog: int,
             timeout_s: float, problems: list[str]) -> dict[str, Any]:
    """The latency step's figures: enriched from the reader's samples, the other sinks from the probes."""
    began_ms, ended_ms, half, achieved = window_ms
    with reader.lock:
        # The latency step's events only: their create time (ingested_at_ms) is within it.
        window = [(i, a, r) for i, a, r in reader.received.samples if began_ms <= i <= ended_ms]
        ingested = dict(reader.received.ingested)
    samples = probes.collect(ingested, timeout_s)
    problems += samples.problems
    where = probes.where
    return {
        "rate": half, "achieved_rate": achieved, "backlog_at_start": backlog,
        "ingest_to_enriched_ms": _percentiles([float(r - i) for i, _a, r in window]),
        "ingest_to_enriched_append_ms": _percentiles([float(a - i) for i, a, _r in window]),
        # First seen by a read-only poller, so up to one poll interval late (poll_ms).
        "ingest_to_hot_store_ms": None if samples.hot_store is None else _percentiles(samples.hot_store),
        "ingest_to_bronze_ms": _percentiles(samples.bronze),
        "ingest_to_alert_ms": _percentiles(samples.alert),  # sentinel's Kafka create time → alert received
        "ingest_to_alert_append_ms": _percentiles(samples.alert_append),  # → alert appended (LogAppendTime)
        "events_timed": samples.expected_events, "alert_sentinels": samples.alerts_sent, "alerts_by_kind": samples.alerts_by_kind,
        "alerts_job": "alongside the pipeline (a second MiniCluster, started after the climb)",
        "poll_ms": {"hot_store": round(HOT_STORE_POLL_S * 1000), "bronze": round(BRONZE_POLL_S * 1000)},
        "bronze_files_read": samples.bronze_files, "checkpoint_interval_ms": where.checkpoint_interval_ms,
        "hot_store_path": str(where.hot_store) if where.hot_store else None, "bronze_path": where.bronze_uri,
        "targets_p99_ms": TARGET_P99_MS, "notes": samples.notes,
    }


def _print_latency(latency: dict[str, Any], out: Callable[[str], None]) -> None:
    def brief(name: str) -> str:
        figures = latency.get(name) or {}
        return f"p50 {figures.get('p50')} p95 {figures.get('p95')} p99 {figures.get('p99')} ({figures.get('samples', 0)})"

    out(f"   latency at {latency['rate']:,.0f}/s (ms, samples): ingest→telemetry-enriched visible {brief('ingest_to_enriched_ms')}, "
        f"appended {brief('ingest_to_enriched_append_ms')}; hot store {brief('ingest_to_hot_store_ms')}; "
        f"Bronze committed {brief('ingest_to_bronze_ms')}; alert received {brief('ingest_to_alert_ms')}, "
        f"appended {brief('ingest_to_alert_append_ms')} (backlog at start {latency['backlog_at_start']})")
    for note in latency["notes"]:
        out(f"   note: {note}")


def _drain(reader: _Reader, produced: int, timeout_s: float, job: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while reader.count() < produced and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.5)


def _send(bootstrap: str, topic: str, events: Iterator[dict], count: int, rate: float | None) -> Any:
    report = produce_events(bootstrap, topic, islice(events, count), rate_per_s=rate, flush_timeout_s=120.0)
    if report.failed:
        raise RuntimeError(f"sustained: {report.failed} events not acknowledged: {report.first_error}")
    return report


def _step(bootstrap: str, topic: str, events: Iterator[dict], rate: float, seconds: float, reader: _Reader,
          produced_before: int, grace_s: float, job: subprocess.Popen) -> dict[str, Any]:
    count = int(rate * seconds)
    lags: list[int] = []
    done = threading.Event()

    def watch() -> None:
        while not done.wait(0.5):
            lags.append(max(0, produced_before + int(rate * (time.monotonic() - began)) - reader.count()))

    began = time.monotonic()
    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    report = _send(bootstrap, topic, events, count, rate)
    done.set()
    watcher.join(2)
    target = produced_before + report.acknowledged
    deadline = time.monotonic() + grace_s
    while reader.count() < target and time.monotonic() < deadline and job.poll() is None:
        time.sleep(0.2)
    lag_after = max(0, target - reader.count())
    # Bounded: at the step's end the lag is no more than exactly-once visibility explains (the grace's
    # worth of events), and the job has caught up within the grace. A job slightly slower than the
    # rate fails the first test even when it drains its backlog within the grace.
    end_lag = lags[-1] if lags else 0
    bounded = lag_after == 0 and end_lag <= rate * grace_s
    return {
        "rate": rate, "achieved_rate": round(report.send_rate, 1), "produced": report.acknowledged,
        "max_lag": max(lags, default=0), "lag_at_end": end_lag, "lag_after_grace": lag_after, "bounded": bounded,
        "generator_kept_up": report.send_rate >= 0.95 * rate,
    }
