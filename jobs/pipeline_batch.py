"""The pipeline's one Python operator: a batch of raw payloads of one shard in, everything out.

Per event: parse + validate (rejects → DLQ side output), dedup against the vehicle's newest event
times (udfs.dedup), enrich (zone_id, vehicle_type), then the enriched record (main output, to
`telemetry-enriched`), its Bronze row (side output, to Parquet) and, once per batch, the hot store
and vehicle status writes. Python is entered once per batch, not once per event per step.

State: MapState vehicle_id → packed event times, under the shard key. A batch reads each of its
vehicles once (a read-through cache in front of the state, refilled after every restore, since
`open()` builds it empty) and writes the changed ones back with one `put_all`. The cache is only a
copy of what this operator last wrote, so it is exact; it is dropped when it grows past
`cache_vehicles` and refilled from state.

The hot store write happens before the batch call returns. A crash before the next checkpoint
replays the batch from Kafka and writes the same points again: both stores are idempotent
((vehicle_id, time) keys; newest event wins in the status table).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pyflink.common import Row, RowKind, Time, Types
from pyflink.datastream.functions import KeyedBroadcastProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor, StateTtlConfig

from connectors.hot_store import (
    StoreConfig,
    latest_status,
    open_hot_store,
    open_status_store,
    point_from_enriched,
)
from jobs.pipeline_functions import BRONZE_TAG, DLQ_TAG, REGISTRY_STATE, periodic_compaction_placeholder
from udfs.dedup import Verdict, observe, pack, unpack
from udfs.dlq import dlq_record, encode_dlq_record
from udfs.enrich import UNKNOWN_VEHICLE_TYPE, bronze_values, enrich_in_place
from udfs.fault_injection import FailOnce
from udfs.telemetry_schema import DEFAULT_POLICY, Rejection, ValidationPolicy, parse, parse_timestamp_ms
from udfs.vehicle_registry import load_registry_file

# Kafka's per-record framing within a batch (length, attributes, timestamp and offset deltas,
# headers) is under 30 bytes; the batch header is another 61. Kept generous.
KAFKA_RECORD_OVERHEAD = 128
_NOT_IN_REGISTRY = ""  # cached "the broadcast registry does not know this vehicle"
_INSERT = RowKind.INSERT


def _row(*values: Any) -> Row:
    """A Row as `Row(*values)` makes it, without its per-attribute __setattr__ checks (two rows per
    event: ~1 µs each saved). PyFlink's converter reads only `_values` and the row kind."""
    row = object.__new__(Row)
    row.__dict__.update(_values=list(values), _from_dict=False, _row_kind=_INSERT)
    return row


class EnrichBatch(KeyedBroadcastProcessFunction):
    def __init__(
        self, *, topic: str, dedup_capacity: int, dedup_ttl_s: int, registry_file: str = "",
        registry_topic: tuple[str, str] | None = None, stores: StoreConfig | None = None,
        to_bronze: bool = True, fail_once: FailOnce | None = None, cache_vehicles: int = 500_000,
        schema: ValidationPolicy = DEFAULT_POLICY, max_enriched_bytes: int | None = None,
    ):
        self.topic = topic
        # The enriched topic's record limit (None: no enriched sink). An event over it goes to the DLQ:
        # the exactly-once Kafka sink would otherwise fail on it after every restart.
        self.max_enriched_bytes = max_enriched_bytes
        self.schema = schema
        self.dedup_capacity = dedup_capacity
        self.dedup_ttl_s = dedup_ttl_s
        self.registry_file = registry_file
        self.registry_topic = registry_topic  # (bootstrap, topic) to read a snapshot of on open
        self.stores = stores  # None: no hot store / status writes
        # PyFlink refuses a record for a side output nobody consumes: emit only what is wired.
        self.to_bronze = to_bronze
        self.fail_once = fail_once
        self.cache_vehicles = cache_vehicles

    def open(self, runtime_context: RuntimeContext) -> None:
        recent = MapStateDescriptor("recent-event-times", Types.LONG(), Types.STRING())
        # A vehicle silent for the TTL forgets its event times (state for retired vehicles ends).
        recent.enable_time_to_live(
            StateTtlConfig.new_builder(Time.seconds(self.dedup_ttl_s))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            .disable_cleanup_in_background()
            .cleanup_incrementally(10, False)
            .cleanup_in_rocksdb_compact_filter(1000, periodic_compaction_placeholder())
            .build()
        )
        self.recent = runtime_context.get_map_state(recent)
        self.cache: dict[int, Any] = {}
        self.registry_cache: dict[int, str] = {}
        # Lookup order: live broadcast updates, then the topic as it was at start, then the file.
        self.known_at_start = dict(load_registry_file(self.registry_file)) if self.registry_file else {}
        if self.registry_topic is not None:
            from connectors.vehicle_registry_topic import read_registry_snapshot

            self.known_at_start.update(read_registry_snapshot(*self.registry_topic))
        self.hot_store = open_hot_store(self.stores) if self.stores else None
        self.status_store = open_status_store(self.stores) if self.stores else None
        metrics = runtime_context.get_metrics_group()
        self.rejected = metrics.counter("payloads_rejected")
        self.duplicates = metrics.counter("duplicates_dropped")
        self.beyond_horizon = metrics.counter("dedup_beyond_horizon")
        self.unknown_vehicles = metrics.counter("unknown_vehicle_type")
        self.points_written = metrics.counter("hot_store_points_written")
        self.points_rejected = metrics.counter("hot_store_points_rejected")
        self.refused_by_sinks = metrics.counter("records_refused_by_sinks")  # enriched topic, status store

    def close(self) -> None:
        for store in (self.hot_store, self.status_store):
            if store is not None:
                store.close()

    def process_element(self, batch: Row, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext) -> Iterable:
        payloads, ingested = batch[0], batch[1]
        now_ms = None
        changed: dict[int, Any] = {}
        points: list = []
        texts: list[str] = []
        for index, raw in enumerate(payloads):
            raw = bytes(raw)
            event = parse(raw, self.schema)
            if isinstance(event, Rejection):
                self.rejected.inc()
                record = dlq_record(raw, event, stage="telemetry-pipeline", source={"topic": self.topic})
                yield DLQ_TAG, encode_dlq_record(record).decode()
                continue
            vehicle_id = event["vehicle_id"]
            event_time_ms = parse_timestamp_ms(event["timestamp"])
            if self.fail_once is not None:
                self.fail_once.check(vehicle_id, event_time_ms)
            times = self.cache.get(vehicle_id)
            if times is None:
                stored = self.recent.get(vehicle_id)
                times = unpack(stored.encode("latin-1") if stored else None)
                self.cache[vehicle_id] = times
            verdict = observe(times, event_time_ms, self.dedup_capacity)
            if verdict is Verdict.DUPLICATE:
                self.duplicates.inc()
                continue
            if verdict is Verdict.NEW:
                changed[vehicle_id] = times
            else:
                self.beyond_horizon.inc()
            ingested_at_ms = ingested[index]
            if ingested_at_ms is None or ingested_at_ms < 0:
                if now_ms is None:
                    now_ms = ctx.timer_service().current_processing_time()
                ingested_at_ms = now_ms
            enriched = enrich_in_place(event, self._vehicle_type(vehicle_id, ctx), ingested_at_ms)
            data = orjson.dumps(enriched)
            text = data.decode()
            key = str(vehicle_id)
            if self.max_enriched_bytes is None or len(data) + len(key) + KAFKA_RECORD_OVERHEAD <= self.max_enriched_bytes:
                yield _row(key, text)
            else:
                self.refused_by_sinks.inc()
                yield DLQ_TAG, self._refused(text, "enriched_too_large", "enriched-sink",
                                             f"{len(data)} bytes enriched; the topic takes records up to {self.max_enriched_bytes} (max.message.bytes)")
            if self.to_bronze:
                yield BRONZE_TAG, _row(*bronze_values(enriched, event_time_ms))
            if self.hot_store is not None:
                points.append(point_from_enriched(enriched, event_time_ms))
                texts.append(text)
        if changed:
            # Bytes as latin-1 text: PyFlink 2.2's MapState of byte arrays fails on a missing key.
            self.recent.put_all({vehicle: pack(times).decode("latin-1") for vehicle, times in changed.items()})
        if len(self.cache) > self.cache_vehicles:
            self.cache = {}
        if points:
            yield from self._write_stores(points, texts)

    def _vehicle_type(self, vehicle_id: int, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext) -> str:
        known = self.registry_cache.get(vehicle_id)
        if known is None:
            known = ctx.get_broadcast_state(REGISTRY_STATE).get(vehicle_id) or _NOT_IN_REGISTRY
            self.registry_cache[vehicle_id] = known
        vehicle_type = known or self.known_at_start.get(vehicle_id) or UNKNOWN_VEHICLE_TYPE
        if vehicle_type == UNKNOWN_VEHICLE_TYPE:
            self.unknown_vehicles.inc()
        return vehicle_type

    def _write_stores(self, points: list, texts: list[str]) -> Iterable:
        """Both stores; what either refuses for good goes to the DLQ with its reason (the event's
        other sinks keep it). Anything else they raise fails the job, which retries from Kafka."""
        result = self.hot_store.write(points)
        self.points_written.inc(result.written)
        statuses = self.status_store.write_statuses(latest_status(points))
        if not result.rejected and not statuses.refused:
            return
        by_point = {(p.vehicle_id, p.time_ms): text for p, text in zip(points, texts)}
        self.points_rejected.inc(len(result.rejected))
        for rejected in result.rejected:
            raw = by_point[(rejected.point.vehicle_id, rejected.point.time_ms)]
            yield DLQ_TAG, self._refused(raw, "hot_store_rejected", "hot-store", rejected.reason)
        for status, reason in statuses.refused:
            self.refused_by_sinks.inc()
            yield DLQ_TAG, self._refused(by_point[(status.vehicle_id, status.last_seen_ms)], "status_store_rejected", "vehicle-status", reason)

    @staticmethod
    def _refused(raw: str, reason: str, stage: str, detail: str) -> str:
        return encode_dlq_record(dlq_record(raw, Rejection(reason, None, detail), stage=stage)).decode()

    def process_broadcast_element(self, row: Row, ctx: KeyedBroadcastProcessFunction.Context) -> None:
        ctx.get_broadcast_state(REGISTRY_STATE).put(row[0], row[1])
        self.registry_cache[row[0]] = row[1]
