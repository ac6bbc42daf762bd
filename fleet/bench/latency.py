"""Per-sink latency probes for the sustained stage's latency step (fleet.bench.sustained): when each
event of the step first shows up in the hot store and in a committed Bronze file, and when the
alerts job's alert for each of a known number of low-battery sentinels reaches `fleet-alerts`.

Every probe only reads, beside the running jobs, the way a consumer of that sink would:
- hot store: the local profile's SQLite file, opened read-only. The pipeline keeps it in WAL mode
  (connectors.sqlite_db), so a reader sees every committed write transaction without blocking the
  writer. A row's first-seen time is when the poll that found it started (its snapshot is taken
  then): at most one poll interval late.
- Bronze: the committed Parquet files (not dot-prefixed; connectors.bronze_files), listed every
  poll; a new file's rows are first seen when the listing that found it started. Files commit when
  a checkpoint completes, so this latency is bound by the checkpoint interval by design.
- alerts: the alerts job (fleet.bench.flink_job --kind alerts --unbounded) in a process of its own
  reading the pipeline's input topic; sentinels (vehicles of their own, battery below the
  threshold, inside the service area) are sent at known times and each must raise exactly one
  low-battery alert, read read_committed, with the broker's LogAppendTime.
Keys are (vehicle_id, event time ms), the identity the pipeline's dedup and every sink use.
"""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from confluent_kafka import TopicPartition

from connectors.kafka_clients import end_offsets, make_consumer, make_producer
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import key_and_payload
from fleet.bench.cpu import stop_process_tree
from fleet.bench.input import CALM_RADIUS_KM
from infra.flink_cluster import PROJECT_ROOT
from udfs.alert_rules import LOW_BATTERY
from udfs.telemetry_schema import format_timestamp_ms, parse_timestamp_ms

# Sentinel vehicles: below the fleet's ids (first_vehicle_id 10000) and apart from bench_input's
# (1000+, 2000+), so they never share state with a simulated vehicle.
WARMUP_SENTINEL_FIRST_ID = 2_500  # + partition: one per input partition, to know the alerts job is caught up
TIMED_SENTINEL_FIRST_ID = 3_000  # + i: the timed ones, spread over the latency step

HOT_STORE_POLL_S = 0.1
BRONZE_POLL_S = 0.25

Key = tuple[int, int]  # (vehicle_id, event time ms)


def now_ms() -> int:
    return int(time.time() * 1000)


class SentKeys:
    """Wraps the simulator's events: records each event's key as it is handed to the producer, so
    the probes know what was sent (and in which order) before any sink can hold it."""

    def __init__(self, events: Iterator[dict[str, Any]]):
        self._events = events
        self.keys: list[Key] = []  # appended by the producing thread, read by the probes (append is atomic)
        self.key_set: set[Key] = set()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        for event in self._events:
            key = (event["vehicle_id"], parse_timestamp_ms(event["timestamp"]))
            self.key_set.add(key)
            self.keys.append(key)
            yield event


class _Poller(threading.Thread):
    """A daemon thread calling `poll()` every `interval_s` until stopped or everything was seen."""

    def __init__(self, name: str, sent: SentKeys, interval_s: float):
        super().__init__(name=name, daemon=True)
        self.sent, self.interval_s = sent, interval_s
        self.first_seen: dict[Key, int] = {}  # key → wall ms of the poll that first saw it
        self.errors: list[str] = []
        self.stop_event = threading.Event()

    def poll(self) -> None:
        raise NotImplementedError

    def run(self) -> None:
        while not self.stop_event.is_set():
            started = time.monotonic()
            try:
                self.poll()
            except (OSError, sqlite3.Error) as exc:  # a file mid-rename, a busy database: next poll
                if len(self.errors) < 5:
                    self.errors.append(f"{type(exc).__name__}: {exc}")
            self.stop_event.wait(max(0.0, self.interval_s - (time.monotonic() - started)))

    def missing(self) -> int:
        return len(self.sent.key_set) - len(self.first_seen)

    def wait_for_all(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.missing() > 0 and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> None:
        self.stop_event.set()
        if self.ident is not None:  # started
            self.join(10)


class HotStoreProbe(_Poller):
    """Polls the SQLite hot store read-only for the keys sent so far and not yet seen.

    Only the pending keys are looked up, one query per event time (one simulator tick holds many
    vehicles) over the pending vehicles' id range: a poll costs the in-flight events, not the table."""

    def __init__(self, path: Path, sent: SentKeys, interval_s: float = HOT_STORE_POLL_S):
        super().__init__("latency-hot-store", sent, interval_s)
        self.path = path
        self._cursor = 0
        self._pending: dict[int, set[int]] = {}  # event time ms → vehicle ids not seen yet
        self._conn: sqlite3.Connection | None = None

    def _connection(self) -> sqlite3.Connection | None:
        if self._conn is None and self.path.exists():
            # mode=ro: never a writer here; autocommit, so every query reads the latest committed state.
            self._conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, isolation_level=None,
                                         timeout=5.0, check_same_thread=False)
        return self._conn

    def poll(self) -> None:
        keys = self.sent.keys
        for vehicle, event_ms in keys[self._cursor:len(keys)]:
            self._pending.setdefault(event_ms, set()).add(vehicle)
        self._cursor = len(keys)
        conn = self._connection()
        if conn is None:
            return
        for event_ms, vehicles in list(self._pending.items()):
            seen_ms = now_ms()
            rows = conn.execute("SELECT vehicle_id FROM telemetry WHERE time_ms = ? AND vehicle_id BETWEEN ? AND ?",
                                (event_ms, min(vehicles), max(vehicles))).fetchall()
            for (vehicle,) in rows:
                if vehicle in vehicles:
                    vehicles.discard(vehicle)
                    self.first_seen[(vehicle, event_ms)] = seen_ms
            if not vehicles:
                del self._pending[event_ms]

    def stop(self) -> None:
        super().stop()
        if self._conn is not None:
            self._conn.close()


class BronzeProbe(_Poller):
    """Lists the committed Bronze files every poll; reads each new one's keys and ingest times."""

    def __init__(self, base_uri: str, part_prefix: str, sent: SentKeys, interval_s: float = BRONZE_POLL_S):
        super().__init__("latency-bronze", sent, interval_s)
        self.base_uri, self.part_prefix = base_uri, part_prefix
        self.ingested: dict[Key, int] = {}  # key → ingested_at_ms, from the Bronze row itself
        self.duplicates = 0
        self.files_read = 0
        # Files committed before the step cannot hold its events: skip them.
        self._known: set[str] = set(self._committed())

    def _committed(self) -> tuple[str, ...]:
        from connectors.bronze_files import part_files

        return part_files(self.base_uri, self.part_prefix).committed

    def poll(self) -> None:
        import pyarrow.parquet as pq
        from pyarrow import fs

        seen_ms = now_ms()
        fresh = [path for path in self._committed() if path not in self._known]
        filesystem, _ = fs.FileSystem.from_uri(self.base_uri)
        for path in fresh:
            table = pq.read_table(path, columns=["vehicle_id", "event_time_ms", "ingested_at_ms"], filesystem=filesystem)
            self._known.add(path)
            self.files_read += 1
            for vehicle, event_ms, ingested in zip(*(table.column(c).to_pylist() for c in table.column_names)):
                key = (vehicle, event_ms)
                if key not in self.sent.key_set:
                    continue  # an event sent before the step (the backlog), or a sentinel
                if key in self.first_seen:
                    self.duplicates += 1
                    continue
                self.first_seen[key] = seen_ms
                self.ingested[key] = ingested


@dataclass
class _AlertsSeen:
    by_kind: dict[str, int] = field(default_factory=dict)
    # Low-battery alerts of sentinel vehicles: vehicle → [(ingested_at_ms, appended_ms, received_ms)]
    sentinels: dict[int, list[tuple[int, int, int]]] = field(default_factory=dict)


class _AlertReader(threading.Thread):
    def __init__(self, bootstrap: str, topic: str):
        super().__init__(name="latency-alerts-reader", daemon=True)
        self.bootstrap, self.topic = bootstrap, topic
        self.seen = _AlertsSeen()
        self.lock = threading.Lock()
        self.stop_event = threading.Event()

    def run(self) -> None:
        # read_committed as any operator's consumer; the alerts job writes without transactions (at
        # least once), so this adds no commit wait.
        consumer = make_consumer(self.bootstrap, f"bench-latency-alerts-{time.time_ns()}")
        consumer.assign([TopicPartition(self.topic, p, 0) for p in end_offsets(self.bootstrap, self.topic)])
        try:
            while not self.stop_event.is_set():
                batch = consumer.consume(num_messages=1_000, timeout=0.05)
                received = now_ms()
                with self.lock:
                    for message in batch:
                        if message.error() is None:
                            self._keep(orjson.loads(message.value()), message.timestamp()[1], received)
        finally:
            consumer.close()

    def _keep(self, alert: dict[str, Any], appended_ms: int, received_ms: int) -> None:
        kind, vehicle = alert.get("kind"), alert.get("vehicle_id")
        self.seen.by_kind[kind] = self.seen.by_kind.get(kind, 0) + 1
        if kind == LOW_BATTERY and isinstance(vehicle, int) and vehicle < FleetSpec().first_vehicle_id:
            self.seen.sentinels.setdefault(vehicle, []).append((alert.get("ingested_at_ms"), appended_ms, received_ms))

    def count_for(self, vehicles: list[int]) -> int:
        with self.lock:
            return sum(1 for v in vehicles if v in self.seen.sentinels)


class AlertProbe:
    """The alerts job beside the pipeline, its alerts reader, and the sentinels it must alert on."""

    def __init__(self, config: Any, settings: dict[str, str], input_topic: str, alerts_topic: str, partitions: int,
                 log: Path):
        self.bootstrap = config.kafka.bootstrap_servers
        self.input_topic, self.partitions, self.log = input_topic, partitions, log
        # Half the threshold: clearly low, and a whole number as the seed's payloads have.
        self.percent = int(config.alerts.low_battery_percent // 2)
        self.argv = [sys.executable, "-m", "fleet.bench.flink_job", "--kind", "alerts", "--unbounded", "--profile", config.profile,
                     *(a for k, v in settings.items() for a in ("--set", f"{k}={v}"))]
        self.reader = _AlertReader(self.bootstrap, alerts_topic)
        self.job: subprocess.Popen | None = None
        self.warmup_ids = [WARMUP_SENTINEL_FIRST_ID + p for p in range(partitions)]
        self.timed_ids: list[int] = []
        self.sent_ms: dict[int, int] = {}  # sentinel vehicle → wall ms just before produce()
        self._template = next(Fleet(FleetSpec(vehicles=1, radius_km=CALM_RADIUS_KM, seed=11)).take(1))
        self._sender: threading.Thread | None = None

    @property
    def sent(self) -> int:
        return len(self.sent_ms)

    def start(self) -> None:
        self.reader.start()
        with self.log.open("wb") as err:
            self.job = subprocess.Popen(self.argv, stdout=subprocess.DEVNULL, stderr=err, cwd=PROJECT_ROOT)

    def warm_up(self, timeout_s: float) -> bool:
        """One sentinel into every input partition; True once each has raised its alert: the job has
        started and read everything before them (a partition is read in order)."""
        producer = make_producer(self.bootstrap, **{"linger.ms": 0})
        for partition, vehicle in enumerate(self.warmup_ids):
            key, payload = key_and_payload(self._sentinel(vehicle))
            self.sent_ms[vehicle] = now_ms()
            producer.produce(self.input_topic, payload, key, partition=partition)
        if producer.flush(30):
            raise RuntimeError("sustained: warm-up sentinels for the alerts job not acknowledged")
        deadline = time.monotonic() + timeout_s
        while self.reader.count_for(self.warmup_ids) < len(self.warmup_ids) and time.monotonic() < deadline:
            if self.job is not None and self.job.poll() is not None:
                return False
            time.sleep(0.5)
        return self.reader.count_for(self.warmup_ids) == len(self.warmup_ids)

    def send_spread(self, count: int, over_s: float) -> None:
        """Start sending `count` timed sentinels, evenly over the next `over_s` seconds (a thread)."""
        self.timed_ids = [TIMED_SENTINEL_FIRST_ID + i for i in range(count)]
        self._sender = threading.Thread(target=self._send_timed, args=(over_s,), name="latency-sentinels", daemon=True)
        self._sender.start()

    def _send_timed(self, over_s: float) -> None:
        producer = make_producer(self.bootstrap, **{"linger.ms": 0})
        began = time.monotonic()
        for i, vehicle in enumerate(self.timed_ids):
            time.sleep(max(0.0, began + (i + 0.5) * over_s / len(self.timed_ids) - time.monotonic()))
            key, payload = key_and_payload(self._sentinel(vehicle))
            self.sent_ms[vehicle] = now_ms()
            producer.produce(self.input_topic, payload, key)
            producer.poll(0)
        producer.flush(30)

    def join_sender(self) -> None:
        if self._sender is not None:
            self._sender.join(60)

    def wait_for_alerts(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while self.reader.count_for(self.timed_ids) < len(self.timed_ids) and time.monotonic() < deadline:
            time.sleep(0.2)

    def stop(self) -> None:
        if self.job is not None:
            stop_process_tree(self.job)
        self.reader.stop_event.set()
        if self.reader.ident is not None:
            self.reader.join(10)

    def _sentinel(self, vehicle: int) -> dict[str, Any]:
        event = orjson.loads(orjson.dumps(self._template))
        event["vehicle_id"] = vehicle
        event["timestamp"] = format_timestamp_ms(now_ms())
        event["battery"]["percent"], event["battery"]["charging"] = self.percent, False
        return event

    def results(self) -> tuple[list[tuple[int, int, int]], dict[str, int], list[str]]:
        """(timed samples (ingested, appended, received), alerts by kind, count problems)."""
        problems: list[str] = []
        with self.reader.lock:
            sentinels = {v: list(s) for v, s in self.reader.seen.sentinels.items()}
            by_kind = dict(self.reader.seen.by_kind)
        for label, ids in (("warm-up", self.warmup_ids), ("timed", self.timed_ids)):
            missing = [v for v in ids if v not in sentinels]
            repeated = [v for v in ids if len(sentinels.get(v, ())) > 1]
            if missing or repeated:
                problems.append(f"sustained: {len(ids)} {label} low-battery sentinels raised "
                                f"{sum(len(sentinels.get(v, ())) for v in ids)} alerts (one each expected; "
                                f"{len(missing)} without, {len(repeated)} with more than one)")
        timed = [sentinels[v][0] for v in self.timed_ids if v in sentinels]
        return timed, by_kind, problems


@dataclass(frozen=True)
class SinkLocations:
    """Where the sustained stage's pipeline and alerts job write, from the very config they run with."""

    hot_store: Path | None  # None: the profile's hot store is not the local SQLite file
    bronze_uri: str
    bronze_prefix: str
    alerts_topic: str
    checkpoint_interval_ms: int


def sink_locations(profile: str, settings: dict[str, str]) -> SinkLocations:
    from fleet.config import load_config
    from jobs.telemetry_pipeline import pipeline_config

    platform = load_config(profile, settings)
    job = pipeline_config(platform)
    local = job.stores.hot_store_backend == "local"
    return SinkLocations(Path(job.stores.local_path) if local else None, job.bronze_path, job.bronze_part_prefix,
                         platform.kafka.topic("alerts").name, platform.flink.checkpoint_interval_ms)


@dataclass
class LatencySamples:
    """Raw samples (ms) of one latency step, and what each count should have been."""

    expected_events: int
    hot_store: list[float] | None  # None: not measured (no local hot store)
    bronze: list[float]
    alert: list[float]
    alert_append: list[float]
    alerts_sent: int
    alerts_by_kind: dict[str, int]
    bronze_files: int
    problems: list[str]
    notes: list[str]


class LatencyProbes:
    """The probes of one latency step: start the alerts job early (`open`), warm it up, watch the
    step's events (`watch`), then collect (`collect`) and always `stop`."""

    def __init__(self, config: Any, settings: dict[str, str], input_topic: str, folder: Path):
        self.where = sink_locations(config.profile, settings)
        partitions = config.kafka.topic("telemetry").partitions
        self.alerts = AlertProbe(config, settings, input_topic, self.where.alerts_topic, partitions, folder / "alerts-stage.log")
        self.alerts_ready = False
        self.alerts_failure = "the alerts job was not started"
        self.sent: SentKeys | None = None
        self.hot: HotStoreProbe | None = None
        self.bronze: BronzeProbe | None = None
        self.notes: list[str] = []

    def open(self) -> None:
        self.alerts.start()

    def warm_up(self, timeout_s: float) -> int:
        """Wait until the alerts job alerts on a sentinel in every partition; how many records were sent."""
        self.alerts_ready = self.alerts.warm_up(timeout_s)
        if not self.alerts_ready:
            self.alerts_failure = (f"the alerts job did not alert on its warm-up sentinels within {timeout_s:.0f}s "
                                   f"(exit {self.alerts.job.poll() if self.alerts.job else None}); see {self.alerts.log}")
        return len(self.alerts.warmup_ids)

    def watch(self, events: Iterator[dict[str, Any]], sentinels: int, over_s: float) -> SentKeys:
        self.sent = SentKeys(events)
        if self.where.hot_store is not None:
            self.hot = HotStoreProbe(self.where.hot_store, self.sent)
            self.hot.start()
        else:
            self.notes.append("ingest→hot store not measured: the profile's hot store is not the local SQLite file")
        self.bronze = BronzeProbe(self.where.bronze_uri, self.where.bronze_prefix, self.sent)
        self.bronze.start()
        if self.alerts_ready:
            self.alerts.send_spread(sentinels, over_s)
        return self.sent

    def sentinels_sent(self) -> int:
        """How many timed sentinels went to the input topic (waits for the sender to finish)."""
        self.alerts.join_sender()
        return len(self.alerts.timed_ids) if self.alerts_ready else 0

    def collect(self, ingested: dict[Key, int], timeout_s: float) -> LatencySamples:
        """Wait (up to `timeout_s` each) until every sink holds the step's events, then the samples.
        `ingested`: key → ingest ms of the step's events, from telemetry-enriched."""
        assert self.sent is not None and self.bronze is not None
        problems: list[str] = []
        expected = len(self.sent.key_set)
        hot_samples = None
        if self.hot is not None:
            self.hot.wait_for_all(timeout_s)
            hot_samples = [float(seen - ingested[k]) for k, seen in self.hot.first_seen.items() if k in ingested]
            if len(self.hot.first_seen) != expected:
                problems.append(f"sustained: the hot store shows {len(self.hot.first_seen)} of the {expected} events of the latency step")
            if len(hot_samples) != len(self.hot.first_seen):
                problems.append(f"sustained: {len(self.hot.first_seen) - len(hot_samples)} hot-store rows have no ingest time "
                                "(not in telemetry-enriched)")
        self.bronze.wait_for_all(timeout_s)
        bronze_samples = [float(seen - self.bronze.ingested[k]) for k, seen in self.bronze.first_seen.items()]
        if len(bronze_samples) != expected:
            problems.append(f"sustained: committed Bronze files hold {len(bronze_samples)} of the {expected} events of the latency step")
        if self.bronze.duplicates:
            problems.append(f"sustained: {self.bronze.duplicates} duplicated rows of the latency step in Bronze")
        for probe in (self.hot, self.bronze):
            if probe is not None and probe.errors:
                self.notes.append(f"{probe.name} poll errors (retried): {'; '.join(probe.errors)}")
        alert, append, by_kind = [], [], {}
        if self.alerts_ready:
            self.alerts.wait_for_alerts(timeout_s)
            timed, by_kind, alert_problems = self.alerts.results()
            problems += alert_problems
            alert = [float(received - ingested_ms) for ingested_ms, _a, received in timed]
            append = [float(appended - ingested_ms) for ingested_ms, appended, _r in timed]
        else:
            problems.append(f"sustained: no ingest→alert figures: {self.alerts_failure}")
        return LatencySamples(expected, hot_samples, bronze_samples, alert, append, len(self.alerts.timed_ids), by_kind,
                              self.bronze.files_read, problems, self.notes)

    def stop(self) -> None:
        for probe in (self.hot, self.bronze):
            if probe is not None:
                probe.stop()
        self.alerts.stop()
