"""Kafka-direct output of the simulator: events keyed by vehicle_id, acknowledged by the broker.

Every send is counted and every delivery report checked: the report says how many the broker
confirmed, so a load test never mistakes "handed to the client" for "stored".
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Iterable

from connectors.kafka_clients import make_producer
from udfs.telemetry_schema import encode


@dataclass(frozen=True)
class ProduceReport:
    sent: int
    acknowledged: int
    failed: int
    seconds: float
    first_error: str | None

    @property
    def rate(self) -> float:
        return self.acknowledged / self.seconds if self.seconds > 0 else 0.0


def produce_events(
    bootstrap_servers: str,
    topic: str,
    events: Iterable[dict[str, Any]],
    *,
    rate_per_s: float | None = None,
    flush_timeout_s: float = 60.0,
) -> ProduceReport:
    """Send every event (key = vehicle_id) and wait for all acknowledgements.

    `rate_per_s` paces open-loop against the wall clock (it does not slow down when the broker does);
    None sends as fast as the client takes them.
    """
    producer = make_producer(bootstrap_servers)
    outcome = {"acked": 0, "failed": 0, "first_error": None}

    def on_delivery(error: Any, _message: Any) -> None:
        if error is None:
            outcome["acked"] += 1
        else:
            outcome["failed"] += 1
            outcome["first_error"] = outcome["first_error"] or str(error)

    sent = 0
    started = time.perf_counter()
    for event in events:
        payload = encode(event)
        key = str(event["vehicle_id"]).encode() if "vehicle_id" in event else None
        while True:
            try:
                producer.produce(topic, payload, key, on_delivery=on_delivery)
                break
            except BufferError:  # local queue full: let deliveries drain, then retry this event
                producer.poll(0.05)
        sent += 1
        if rate_per_s:
            ahead_s = sent / rate_per_s - (time.perf_counter() - started)
            if ahead_s > 0:
                time.sleep(ahead_s)  # poll(timeout) returns early on any delivery report: not a clock
            producer.poll(0)
        elif sent % 10_000 == 0:
            producer.poll(0)
    remaining = producer.flush(flush_timeout_s)
    seconds = time.perf_counter() - started
    failed = outcome["failed"] + remaining
    if remaining and outcome["first_error"] is None:
        outcome["first_error"] = f"{remaining} messages not acknowledged within {flush_timeout_s}s"
    return ProduceReport(sent, outcome["acked"], failed, seconds, outcome["first_error"])
