"""The benchmark's input: one preloaded topic every stage drains, and what each stage must output.

The simulated fleet (device_sim.fleet_model) in the seed's payload format, produced by
device_sim.kafka_output into a fresh topic with the profile's partition count, plus:
- a few re-sends (exact repeats, sent after everything else, as an edge agent's spool would be)
  and a few schema defects, so dedup and the DLQ path do real work in every stage;
- a calm fleet: vehicles within 2 km of the centre (inside the service area) with batteries above
  the low threshold, so the alerts job raises almost nothing, as on an ordinary day;
- sentinels for the alerts job, whose output is too sparse to time a drain by: one vehicle with a
  flat battery as the first record of every partition and another as the last. Their low-battery
  alerts bracket the drain (`alerts` expected below counts them).
Expected outputs are computed while producing, with the same pure functions the jobs use
(udfs.telemetry_schema, udfs.alert_rules): unique valid events, rejects, alerts.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from connectors.kafka_clients import make_producer
from connectors.kafka_topics import TopicSpec, admin_client, ensure_topics
from connectors.vehicle_registry_topic import publish_registry
from device_sim.defects import with_defects
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import key_and_payload, produce_events
from device_sim.registry import registry_records
from udfs.alert_rules import AlertPolicy, VehicleAlertState, on_event
from udfs.telemetry_schema import Rejection, format_timestamp_ms, parse_timestamp_ms, validate

CALM_RADIUS_KM = 2.0  # measured: every position of a 50K fleet inside the packaged service area
SENTINEL_FIRST_ID = 1_000  # + partition: far below the fleet's ids (first_vehicle_id 10000)
SENTINEL_LAST_ID = 2_000


@dataclass(frozen=True)
class InputSpec:
    events: int
    vehicles: int
    resends: int
    defects: int
    partitions: int
    seed: int = 42


@dataclass(frozen=True)
class BenchInput:
    topic: str
    registry_topic: str
    registry_file: Path
    partitions: int
    sent: int  # records on the topic, sentinels included
    unique_valid: int  # what the pipeline's enriched topic, Bronze and the hot store must hold
    rejected: int  # what its DLQ must hold
    resends: int
    alerts: int  # what the alerts job must raise (sentinels included)
    alert_sentinels: frozenset[int]
    vehicle_ids: tuple[int, ...]
    first_event_ms: int
    produce_rate: float  # the preload's acknowledged events/s (the simulator's own figure)


def _sentinel(vehicle_id: int, event_ms: int, template: dict[str, Any]) -> dict[str, Any]:
    event = orjson.loads(orjson.dumps(template))
    event["vehicle_id"] = vehicle_id
    event["timestamp"] = format_timestamp_ms(event_ms)
    event["battery"]["percent"], event["battery"]["charging"] = 5, False
    return event


class _Expectations:
    """Counts what the stages must output, fed every record in send order."""

    def __init__(self, policy: AlertPolicy, inside: Callable[[float, float], bool]):
        self.policy, self.inside = policy, inside
        self.seen: set[tuple[int, int]] = set()
        self.unique_valid = self.rejected = self.alerts = 0
        self.states: dict[int, VehicleAlertState] = {}

    def add(self, event: Any) -> None:
        checked = validate(event) if isinstance(event, dict) else Rejection("bad_json", None, "raw")
        if isinstance(checked, Rejection):
            self.rejected += 1
            return
        event_ms = parse_timestamp_ms(checked["timestamp"])
        identity = (checked["vehicle_id"], event_ms)
        if identity not in self.seen:
            self.seen.add(identity)
            self.unique_valid += 1
        # The alerts job has no dedup: repeats go through its rules too (and raise nothing new).
        vehicle = checked["vehicle_id"]
        state, raised = on_event(self.states.get(vehicle, VehicleAlertState()), checked, event_ms, self.inside, self.policy)
        self.states[vehicle] = state
        self.alerts += len(raised)


def preload(bootstrap: str, topic: str, registry_topic: str, folder: Path, spec: InputSpec, policy: AlertPolicy,
            inside: Callable[[float, float], bool], *, out: Callable[[str], None] = print) -> BenchInput:
    """Create `topic` (and the registry topic), fill them, and say what every stage must output."""
    admin = admin_client(bootstrap)
    ensure_topics(admin, [
        TopicSpec("telemetry", topic, spec.partitions, 1, {"compression.type": "lz4", "cleanup.policy": "delete", "retention.ms": str(86_400_000)}),
        TopicSpec("registry", registry_topic, 1, 1, {"compression.type": "lz4", "cleanup.policy": "compact"}),
    ])
    fleet = Fleet(FleetSpec(vehicles=spec.vehicles, seed=spec.seed, radius_km=CALM_RADIUS_KM))
    vehicle_ids = tuple(fleet.vehicle_ids)
    registry = list(registry_records(list(vehicle_ids), seed=spec.seed))
    folder.mkdir(parents=True, exist_ok=True)
    registry_file = folder / "registry.jsonl"
    registry_file.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in registry))
    publish_registry(bootstrap, registry_topic, registry)

    expect = _Expectations(policy, inside)
    template = next(Fleet(FleetSpec(vehicles=1, seed=spec.seed, radius_km=CALM_RADIUS_KM)).take(1))
    start_ms = parse_timestamp_ms(template["timestamp"])
    first = [_sentinel(SENTINEL_FIRST_ID + p, start_ms, template) for p in range(spec.partitions)]
    last = [_sentinel(SENTINEL_LAST_ID + p, start_ms, template) for p in range(spec.partitions)]
    _send_to_partitions(bootstrap, topic, first, expect)

    # Another seed than the defects': the same one would re-send exactly the corrupted events.
    resend_at = set(random.Random(spec.seed + 1).sample(range(spec.events), spec.resends))
    kept: list[tuple[bytes | None, bytes]] = []

    def encoded() -> Iterator[tuple[bytes | None, bytes]]:
        for index, event in enumerate(with_defects(fleet.take(spec.events), spec.events, spec.defects, spec.seed)):
            expect.add(event)
            pair = key_and_payload(event)
            if index in resend_at:
                kept.append(pair)
            yield pair
        for key, payload in kept:  # the re-sends, last: an edge agent draining its spool
            expect.add(orjson.loads(payload))
            yield key, payload

    out(f"preload: {spec.events:,} events from {spec.vehicles:,} vehicles (+{spec.resends:,} re-sent, {spec.defects:,} corrupted) "
        f"into {topic} ({spec.partitions} partitions)")
    report = produce_events(bootstrap, topic, encoded(), flush_timeout_s=300.0)
    if report.failed:
        raise RuntimeError(f"preload: {report.failed} records not acknowledged: {report.first_error}")
    _send_to_partitions(bootstrap, topic, last, expect)
    sent = report.acknowledged + len(first) + len(last)
    out(f"preload: {sent:,} records acknowledged at {report.rate:,.0f}/s: {expect.unique_valid:,} unique valid, "
        f"{expect.rejected:,} invalid, {expect.alerts} alerts expected")
    return BenchInput(
        topic=topic, registry_topic=registry_topic, registry_file=registry_file, partitions=spec.partitions, sent=sent,
        unique_valid=expect.unique_valid, rejected=expect.rejected, resends=spec.resends, alerts=expect.alerts,
        alert_sentinels=frozenset(e["vehicle_id"] for e in first + last), vehicle_ids=vehicle_ids,
        first_event_ms=start_ms, produce_rate=round(report.rate, 1),
    )


def _send_to_partitions(bootstrap: str, topic: str, events: list[dict[str, Any]], expect: _Expectations) -> None:
    """Event i to partition i, acknowledged before anything else is sent."""
    producer = make_producer(bootstrap)
    for partition, event in enumerate(events):
        expect.add(event)
        key, payload = key_and_payload(event)
        producer.produce(topic, payload, key, partition=partition)
    if producer.flush(30):
        raise RuntimeError(f"preload: sentinels to {topic} not acknowledged")
