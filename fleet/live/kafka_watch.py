"""What `telemetry live` reads from Kafka: topic end offsets, each job's committed offsets (lag),
and a read_committed tail of the outputs (enriched events, DLQ records, alerts).

The tail reads only what consumers downstream would see (exactly-once outputs become visible when
a checkpoint commits), so its counts and latencies are the platform's, not the jobs' own view.
Latency is measured on arrival here: now − the event's own timestamp (fleet → visible, every hop
included) and now − its Kafka ingest time (`ingested_at_ms`, the pipeline's input record time).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, deque
from dataclasses import dataclass, field
from typing import Any

import orjson
from confluent_kafka import Consumer, KafkaException, TopicPartition

from fleet.percentiles import latency_percentiles
from udfs.telemetry_schema import parse_timestamp_ms

_LATENCY_WINDOW_S = 30.0  # percentiles over the arrivals of the last half minute


class Offsets:
    """End offsets per topic and committed offsets per consumer group, on one connection."""

    def __init__(self, bootstrap: str, topics: list[str], groups: list[str]):
        self.bootstrap = bootstrap
        self.topics = topics
        self._probe = Consumer({"bootstrap.servers": bootstrap, "group.id": "telemetry-live-probe", "enable.auto.commit": False})
        # A consumer per group only to read its committed offsets: it never subscribes, so it never
        # joins the group and cannot disturb the job that owns it.
        self._groups = {g: Consumer({"bootstrap.servers": bootstrap, "group.id": g, "enable.auto.commit": False}) for g in groups}
        self._partitions: dict[str, list[int]] = {}

    def partitions(self, topic: str) -> list[int]:
        if topic not in self._partitions:
            meta = self._probe.list_topics(topic, timeout=10)
            self._partitions[topic] = sorted(meta.topics[topic].partitions)
        return self._partitions[topic]

    def end(self, topic: str) -> dict[int, int]:
        return {p: self._probe.get_watermark_offsets(TopicPartition(topic, p), timeout=5, cached=False)[1] for p in self.partitions(topic)}

    def committed(self, group: str, topic: str) -> dict[int, int] | None:
        """The group's committed offsets (None for a partition it never committed), or None if none."""
        parts = [TopicPartition(topic, p) for p in self.partitions(topic)]
        got = self._groups[group].committed(parts, timeout=5)
        offsets = {tp.partition: tp.offset for tp in got if tp.offset >= 0}
        return offsets or None

    def lag(self, group: str, topic: str, end: dict[int, int]) -> int | None:
        """Records of `topic` the group has not committed past; None before its first commit."""
        committed = self.committed(group, topic)
        if committed is None:
            return None
        return sum(max(0, high - committed.get(p, 0)) for p, high in end.items())

    def close(self) -> None:
        for consumer in (self._probe, *self._groups.values()):
            consumer.close()


@dataclass
class TailCounts:
    """What the tail has seen since it started."""

    enriched: int = 0
    dlq: int = 0
    alerts: int = 0
    dlq_by_reason: Counter = field(default_factory=Counter)
    alerts_by_kind: Counter = field(default_factory=Counter)
    recent_alerts: deque = field(default_factory=lambda: deque(maxlen=50))
    event_to_enriched_ms: deque = field(default_factory=deque)  # (arrival monotonic s, ms)
    ingest_to_enriched_ms: deque = field(default_factory=deque)
    ingest_to_alert_ms: deque = field(default_factory=deque)


class OutputTail(threading.Thread):
    """Reads the enriched, DLQ and alerts topics from their ends at start, read_committed."""

    def __init__(self, bootstrap: str, *, enriched: str, dlq: str, alerts: str):
        super().__init__(name="live-output-tail", daemon=True)
        self.bootstrap = bootstrap
        self.names = {"enriched": enriched, "dlq": dlq, "alerts": alerts}
        self.counts = TailCounts()
        self.error: str | None = None
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._ready = threading.Event()

    def run(self) -> None:
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap, "group.id": f"telemetry-live-tail-{time.time_ns()}",
            "enable.auto.commit": False, "isolation.level": "read_committed", "auto.offset.reset": "latest",
        })
        try:
            assignment = []
            for topic in self.names.values():
                meta = consumer.list_topics(topic, timeout=10)
                for p in meta.topics[topic].partitions:
                    high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
                    assignment.append(TopicPartition(topic, p, high))
            consumer.assign(assignment)
            self._ready.set()
            kinds = {name: kind for kind, name in self.names.items()}
            while not self._halt.is_set():
                try:
                    messages = consumer.consume(num_messages=2_000, timeout=0.2)
                    self.error = None
                except KafkaException as exc:  # broker restarting: keep trying, say so
                    self.error = str(exc)
                    continue
                if messages:
                    self._count([(kinds.get(m.topic()), m) for m in messages if m.error() is None])
        except Exception as exc:  # noqa: BLE001 - the status shows it; the platform keeps running
            self.error = f"{type(exc).__name__}: {exc}"
            self._ready.set()
        finally:
            consumer.close()

    def _count(self, messages: list[tuple[str | None, Any]]) -> None:
        now_s, now_ms = time.monotonic(), time.time() * 1000
        with self._lock:
            c = self.counts
            for kind, message in messages:
                try:
                    record = orjson.loads(message.value())
                except orjson.JSONDecodeError:
                    continue
                if kind == "enriched":
                    c.enriched += 1
                    event_ms = parse_timestamp_ms(record.get("timestamp"))
                    if event_ms is not None:
                        c.event_to_enriched_ms.append((now_s, now_ms - event_ms))
                    if isinstance(record.get("ingested_at_ms"), int):
                        c.ingest_to_enriched_ms.append((now_s, now_ms - record["ingested_at_ms"]))
                elif kind == "dlq":
                    c.dlq += 1
                    c.dlq_by_reason[str(record.get("reason"))] += 1
                elif kind == "alerts":
                    c.alerts += 1
                    c.alerts_by_kind[str(record.get("kind"))] += 1
                    c.recent_alerts.appendleft(record)
                    if isinstance(record.get("ingested_at_ms"), int):
                        c.ingest_to_alert_ms.append((now_s, now_ms - record["ingested_at_ms"]))
            self._prune(now_s)

    def _prune(self, now_s: float) -> None:
        """Forget latencies older than the window (also when nothing arrives: a stalled pipeline
        shows no latency, not its last one)."""
        c = self.counts
        for series in (c.event_to_enriched_ms, c.ingest_to_enriched_ms, c.ingest_to_alert_ms):
            while series and series[0][0] < now_s - _LATENCY_WINDOW_S:
                series.popleft()

    def wait_ready(self, timeout_s: float = 30.0) -> bool:
        return self._ready.wait(timeout_s)

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            self._prune(time.monotonic())
            c = self.counts
            return {
                "enriched": c.enriched, "dlq": c.dlq, "alerts": c.alerts,
                "dlq_by_reason": dict(c.dlq_by_reason), "alerts_by_kind": dict(c.alerts_by_kind),
                "recent_alerts": list(c.recent_alerts)[:10],
                "latency_ms": {
                    "event_to_enriched": percentiles([v for _, v in c.event_to_enriched_ms]),
                    "ingest_to_enriched": percentiles([v for _, v in c.ingest_to_enriched_ms]),
                    "ingest_to_alert": percentiles([v for _, v in c.ingest_to_alert_ms]),
                },
                "error": self.error,
            }

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(10)


def percentiles(values: list[float]) -> dict[str, float] | None:
    """p50/p95/p99/max (nearest rank) of `values` and their count, or None if there are none."""
    found = latency_percentiles(values)
    return None if found is None else {**found, "count": len(values)}
