"""Kafka-direct output of the simulator: events keyed by vehicle_id, acknowledged by the broker.

Every send is counted and every delivery checked: the report says how many the broker confirmed,
so a load test never mistakes "handed to the client" for "stored". Delivery reports are requested
for failures only (`delivery.report.only.error`): librdkafka reports every message exactly once, so
after a complete flush, acknowledged = sent - failed — without a Python callback per message.

Items: a dict (JSON-encoded, key = its vehicle_id), bytes sent as they are (a `RawPayload`'s
vehicle_id is the key; plain bytes have none) or a (key, payload bytes) pair (the simulator's
encoded path).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from connectors.kafka_clients import make_producer
from device_sim.pacing import GRANULARITY_S, OpenLoop
from udfs.telemetry_schema import encode


@dataclass(frozen=True)
class ProduceReport:
    sent: int
    acknowledged: int
    failed: int
    seconds: float  # first send to the last acknowledgement
    first_error: str | None
    target_rate: float | None = None
    send_seconds: float = 0.0  # first send to the last send

    @property
    def rate(self) -> float:
        """Acknowledged events per second, acknowledgements included."""
        return self.acknowledged / self.seconds if self.seconds > 0 else 0.0

    @property
    def send_rate(self) -> float:
        """The achieved open-loop rate: events handed to the client per second."""
        return self.sent / self.send_seconds if self.send_seconds > 0 else 0.0

    def summary(self, topic: str) -> str:
        target = f" (target {self.target_rate:,.0f}/s)" if self.target_rate else ""
        return (
            f"{topic}: sent {self.sent:,}, acknowledged {self.acknowledged:,}, failed {self.failed:,} in "
            f"{self.seconds:.2f}s; sent at {self.send_rate:,.0f}/s{target}, acknowledged {self.rate:,.0f}/s"
        )


def key_and_payload(item: Any) -> tuple[bytes | None, bytes]:
    """(Kafka key, value) of an item (see the module docstring)."""
    if type(item) is tuple:
        return item
    if isinstance(item, dict):
        return (str(item["vehicle_id"]).encode() if "vehicle_id" in item else None), encode(item)
    if isinstance(item, (bytes, bytearray, memoryview)):
        vehicle_id = getattr(item, "vehicle_id", None)
        return (None if vehicle_id is None else str(vehicle_id).encode()), bytes(item)
    raise TypeError(f"cannot send a {type(item).__name__}: expected a dict, bytes or (key, payload)")


def _producer(bootstrap_servers: str, overrides: dict[str, Any] | None) -> tuple[Any, dict[str, Any]]:
    outcome: dict[str, Any] = {"failed": 0, "first_error": None}

    def on_delivery(error: Any, _message: Any) -> None:  # failures only (delivery.report.only.error)
        if error is not None:
            outcome["failed"] += 1
            outcome["first_error"] = outcome["first_error"] or str(error)

    producer = make_producer(
        bootstrap_servers, **{"delivery.report.only.error": True, "on_delivery": on_delivery, **(overrides or {})}
    )
    return producer, outcome


def _finish(producer: Any, outcome: dict[str, Any], sent: int, pacer: OpenLoop, flush_timeout_s: float, target_rate: float | None) -> ProduceReport:
    send_seconds = pacer.elapsed()
    remaining = producer.flush(flush_timeout_s)
    seconds = pacer.elapsed()
    close = getattr(producer, "close", None)  # newer confluent-kafka; otherwise it closes when collected
    if close is not None and remaining == 0:  # (close() flushes again: not with messages stuck)
        close()
    failed = outcome["failed"] + remaining
    if remaining and outcome["first_error"] is None:
        outcome["first_error"] = f"{remaining} messages not acknowledged within {flush_timeout_s}s"
    return ProduceReport(sent, sent - failed, failed, seconds, outcome["first_error"], target_rate, send_seconds)


def _send_blocking(producer: Any, topic: str, payload: bytes, key: bytes | None) -> None:
    while True:  # local queue full: let deliveries drain, then retry this event
        producer.poll(0.05)
        try:
            producer.produce(topic, payload, key)
            return
        except BufferError:
            continue


def produce_events(
    bootstrap_servers: str,
    topic: str,
    events: Iterable[Any],
    *,
    rate_per_s: float | None = None,
    flush_timeout_s: float = 60.0,
    report_every_s: float | None = None,
    out: Callable[[str], None] | None = None,
    producer_overrides: dict[str, Any] | None = None,
    metrics: Any = None,
) -> ProduceReport:
    """Send every item (key = vehicle_id) and wait for all acknowledgements.

    `rate_per_s` paces open-loop against the wall clock (it does not slow down when the broker does);
    None sends as fast as the client takes them (or as fast as `events` comes, e.g. paced by
    `device_sim.pacing.realtime`). `report_every_s` prints the achieved rate that often (to `out`,
    default stderr), and the summary at the end.
    """
    producer, outcome = _producer(bootstrap_servers, producer_overrides)
    printer = out or (lambda line: print(line, file=sys.stderr, flush=True))
    pacer = OpenLoop(rate_per_s, report_every_s=report_every_s, label=f"{topic}: sent", out=printer)
    produce, poll = producer.produce, producer.poll
    sent = 0
    if metrics is not None:  # a device_sim.sim_metrics.SimMetrics: reads the counts as they change
        metrics.attach_kafka(producer, outcome, lambda: sent)
    next_at = pacer.next_at
    for item in events:
        key, payload = item if type(item) is tuple else key_and_payload(item)
        try:
            produce(topic, payload, key)
        except BufferError:
            _send_blocking(producer, topic, payload, key)
        sent += 1
        if sent >= next_at:
            poll(0)
            pacer.pace(sent)
            next_at = pacer.next_at
    report = _finish(producer, outcome, sent, pacer, flush_timeout_s, pacer.rate_per_s)
    if report_every_s:
        printer(report.summary(topic))
    return report


def produce_batches(
    bootstrap_servers: str,
    topic: str,
    batches: Iterable[tuple[int, list[tuple[bytes | None, bytes]]]],
    *,
    speedup: float | None = 1.0,
    flush_timeout_s: float = 60.0,
    report_every_s: float | None = None,
    out: Callable[[str], None] | None = None,
    producer_overrides: dict[str, Any] | None = None,
    metrics: Any = None,
) -> ProduceReport:
    """The load-test path: (event time ms, [(key, payload), …]) batches, as
    `RateModeFleet.encoded_batches(until, keys_only=True)` yields them, each sent when the wall clock
    has advanced as far as its event time (÷ `speedup`; None: as fast as possible) — open loop, the
    fleet's own rate. One clock check per batch and no per-event generator: the cheapest way in."""
    if speedup is not None and speedup <= 0:
        raise ValueError(f"speedup must be > 0 or None, got {speedup}")
    producer, outcome = _producer(bootstrap_servers, producer_overrides)
    printer = out or (lambda line: print(line, file=sys.stderr, flush=True))
    pacer = OpenLoop(None, report_every_s=report_every_s, label=f"{topic}: sent", out=printer)
    produce, poll, perf_counter, sleep = producer.produce, producer.poll, time.perf_counter, time.sleep
    sent = 0
    if metrics is not None:  # a device_sim.sim_metrics.SimMetrics: reads the counts as they change
        metrics.attach_kafka(producer, outcome, lambda: sent)
    next_at = pacer.next_at
    start_ms = None
    for ts, batch in batches:
        if speedup is not None:
            if start_ms is None:
                start_ms = ts
            ahead_s = (ts - start_ms) / 1000 / speedup - (perf_counter() - pacer.started)
            if ahead_s >= GRANULARITY_S:
                sleep(ahead_s)
        for key, payload in batch:
            try:
                produce(topic, payload, key)
            except BufferError:
                _send_blocking(producer, topic, payload, key)
        sent += len(batch)
        if sent >= next_at:
            poll(0)
            pacer.pace(sent)
            next_at = pacer.next_at
    report = _finish(producer, outcome, sent, pacer, flush_timeout_s, None)
    if report_every_s:
        printer(report.summary(topic))
    return report
