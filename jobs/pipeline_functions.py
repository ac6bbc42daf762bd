"""The Python functions of the telemetry pipeline. Thin: the logic is in udfs/, the storage in
connectors/; these classes hold Flink state and timers and route records to outputs.

Per-event Python cost is what limits throughput (DESIGN.md), so the keyed operator does dedup and
enrichment in one hop and fans out through side outputs instead of extra map operators.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson
from pyflink.common import Row, Time, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import (
    KeyedBroadcastProcessFunction,
    KeyedProcessFunction,
    ProcessFunction,
    RuntimeContext,
)
from pyflink.datastream.state import ListStateDescriptor, MapStateDescriptor, StateTtlConfig

from connectors.hot_store import StoreConfig, latest_status, open_hot_store, open_status_store, point_from_enriched
from connectors.parquet_sink import ParquetSchema
from udfs.dlq import dlq_record, encode_dlq_record
from udfs.enrich import BRONZE_COLUMNS, bronze_values, enrich, vehicle_type_of
from udfs.fault_injection import FailOnce
from udfs.telemetry_schema import Rejection, parse, parse_timestamp_ms
from udfs.vehicle_registry import load_registry_file, parse_registry_record

# (vehicle_id, event_time_ms, ingested_at_ms, payload JSON): what survives validation.
VALID_TYPE = Types.ROW_NAMED(
    ["vehicle_id", "event_time_ms", "ingested_at_ms", "payload"], [Types.LONG(), Types.LONG(), Types.LONG(), Types.STRING()]
)
REGISTRY_TYPE = Types.ROW_NAMED(["vehicle_id", "vehicle_type"], [Types.LONG(), Types.STRING()])
STORE_TYPE = Types.ROW_NAMED(["shard", "enriched"], [Types.INT(), Types.STRING()])
BRONZE_SCHEMA = ParquetSchema(BRONZE_COLUMNS)

DLQ_TAG = OutputTag("dlq", Types.STRING())
BRONZE_TAG = OutputTag("bronze", BRONZE_SCHEMA.type_info())
STORE_TAG = OutputTag("store", STORE_TYPE)
REGISTRY_STATE = MapStateDescriptor("vehicle-registry", Types.LONG(), Types.STRING())

# PyFlink 2.2 fills in RocksDB's default periodic compaction with `Duration.of_days(30)`, built
# through the py4j gateway, which a TaskManager's embedded interpreter (thread mode on a real
# cluster) does not have: opening the state fails with FileNotFoundError. The embedded runtime
# never sends that value to Java (java_utils.to_java_state_ttl_config reads only the entry count),
# so any non-empty placeholder avoids the gateway call; RocksDB keeps its own default.
_PERIODIC_COMPACTION_NOT_SENT = "rocksdb-default"

# Event-time timer that only the final watermark of a bounded input reaches: it flushes what a
# processing-time timer would otherwise leave behind when a bounded job (backfill) finishes.
END_OF_INPUT = 2**63 - 2


def _as_bytes(raw: Any) -> bytes:
    """Kafka gives bytes; in-memory test sources give str."""
    if isinstance(raw, bytes):
        return raw
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


class ParseAndValidate(ProcessFunction):
    """Raw Kafka value → VALID_TYPE row, or a DLQ record with the reason. Never raises on input."""

    def __init__(self, topic: str, *, to_dlq: bool = True):
        self.topic = topic
        # The alert job reads the same topic as the pipeline, which already writes every reject
        # to the DLQ once: it only counts them.
        self.to_dlq = to_dlq

    def open(self, runtime_context: RuntimeContext) -> None:
        self.rejected = runtime_context.get_metrics_group().counter("payloads_rejected")

    def process_element(self, raw: Any, ctx: ProcessFunction.Context) -> Iterable:
        payload = _as_bytes(raw)
        result = parse(payload)
        if isinstance(result, Rejection):
            self.rejected.inc()
            if self.to_dlq:
                record = dlq_record(payload, result, stage="telemetry-pipeline", source={"topic": self.topic})
                yield DLQ_TAG, encode_dlq_record(record).decode()
            return
        # The record's timestamp is when it entered Kafka (the producer's create time).
        ingested = ctx.timestamp()
        if ingested is None or ingested < 0:
            ingested = ctx.timer_service().current_processing_time()
        yield Row(result["vehicle_id"], parse_timestamp_ms(result["timestamp"]), ingested, payload.decode("utf-8"))


class ParseRegistry(ProcessFunction):
    def __init__(self, topic: str):
        self.topic = topic

    def process_element(self, raw: Any, ctx: ProcessFunction.Context) -> Iterable:
        payload = _as_bytes(raw)
        parsed = parse_registry_record(payload)
        if parsed is None:
            rejection = Rejection("bad_registry_record", None, "expected {\"vehicle_id\": int > 0, \"vehicle_type\": non-empty string}")
            yield DLQ_TAG, encode_dlq_record(dlq_record(payload, rejection, stage="telemetry-pipeline", source={"topic": self.topic})).decode()
            return
        yield Row(*parsed)


class DedupAndEnrich(KeyedBroadcastProcessFunction):
    """Keyed by vehicle: drop repeats of (vehicle_id, timestamp) seen within the TTL, enrich the rest.

    Out-of-order events are kept: only an exact repeat of a timestamp is a duplicate. Outputs: main
    Row(key, value) for `telemetry-enriched`, side outputs for Bronze and the store writers.
    """

    def __init__(
        self, dedup_ttl_s: int, store_shards: int, registry_file: str = "", *,
        registry_topic: tuple[str, str] | None = None, to_bronze: bool = True, to_store: bool = True,
        fail_once: FailOnce | None = None,
    ):
        self.dedup_ttl_s = dedup_ttl_s
        self.store_shards = store_shards
        self.registry_file = registry_file
        self.registry_topic = registry_topic  # (bootstrap, topic) to read a snapshot of on open
        # PyFlink refuses a record for a side output nobody consumes: emit only what is wired.
        self.to_bronze = to_bronze
        self.to_store = to_store
        self.fail_once = fail_once

    def open(self, runtime_context: RuntimeContext) -> None:
        seen = MapStateDescriptor("seen-timestamps", Types.LONG(), Types.BOOLEAN())
        # Each timestamp expires on its own, TTL after it was first seen.
        seen.enable_time_to_live(
            StateTtlConfig.new_builder(Time.seconds(self.dedup_ttl_s))
            .set_update_type(StateTtlConfig.UpdateType.OnCreateAndWrite)
            .set_state_visibility(StateTtlConfig.StateVisibility.NeverReturnExpired)
            # Explicit cleanup instead of the background default (see _PERIODIC_COMPACTION_NOT_SENT):
            # incremental for the heap backend, the compaction filter for RocksDB.
            .disable_cleanup_in_background()
            .cleanup_incrementally(10, False)
            .cleanup_in_rocksdb_compact_filter(1000, _PERIODIC_COMPACTION_NOT_SENT)
            .build()
        )
        self.seen = runtime_context.get_map_state(seen)
        # Lookup order: live broadcast updates, then the topic as it was at start, then the file.
        self.known_at_start = dict(load_registry_file(self.registry_file)) if self.registry_file else {}
        if self.registry_topic is not None:
            from connectors.vehicle_registry_topic import read_registry_snapshot

            self.known_at_start.update(read_registry_snapshot(*self.registry_topic))
        metrics = runtime_context.get_metrics_group()
        self.duplicates = metrics.counter("duplicates_dropped")
        self.unknown_vehicles = metrics.counter("unknown_vehicle_type")

    def process_element(self, row: Row, ctx: KeyedBroadcastProcessFunction.ReadOnlyContext) -> Iterable:
        vehicle_id, event_time_ms, ingested_at_ms, payload = row[0], row[1], row[2], row[3]
        if self.fail_once is not None:
            self.fail_once.check(vehicle_id, event_time_ms)
        if self.seen.contains(event_time_ms):
            self.duplicates.inc()
            return
        self.seen.put(event_time_ms, True)
        vehicle_type = vehicle_type_of(vehicle_id, ctx.get_broadcast_state(REGISTRY_STATE), self.known_at_start)
        if vehicle_type == "unknown":
            self.unknown_vehicles.inc()
        enriched = enrich(orjson.loads(payload), vehicle_type, ingested_at_ms)
        text = orjson.dumps(enriched).decode()
        yield Row(str(vehicle_id), text)
        if self.to_bronze:
            yield BRONZE_TAG, Row(*bronze_values(enriched, event_time_ms))
        if self.to_store:
            yield STORE_TAG, Row(vehicle_id % self.store_shards, text)

    def process_broadcast_element(self, row: Row, ctx: KeyedBroadcastProcessFunction.Context) -> None:
        ctx.get_broadcast_state(REGISTRY_STATE).put(row[0], row[1])


class StoreWriter(KeyedProcessFunction):
    """Batches enriched events per shard in Flink list state and writes them to the hot store and
    the vehicle status table on a short processing-time timer.

    The batch lives in checkpointed state, so a crash never loses it: after a restore the pending
    batch is written again (writes are idempotent) and anything newer is replayed from Kafka.
    A point the store refuses goes to the DLQ with the store's reason.
    """

    def __init__(self, stores: StoreConfig, flush_ms: int, write_status: bool = True):
        self.stores = stores
        self.flush_ms = flush_ms
        self.write_status = write_status

    def open(self, runtime_context: RuntimeContext) -> None:
        self.pending = runtime_context.get_list_state(ListStateDescriptor("pending-store-writes", Types.STRING()))
        self.hot_store = open_hot_store(self.stores)
        self.status_store = open_status_store(self.stores) if self.write_status else None
        # Timers already registered per shard key (a cache only: Flink checkpoints the timers).
        self.flush_at: dict[int, int] = {}
        self.end_armed: set[int] = set()
        metrics = runtime_context.get_metrics_group()
        self.points_written = metrics.counter("hot_store_points_written")
        self.points_rejected = metrics.counter("hot_store_points_rejected")

    def close(self) -> None:
        self.hot_store.close()
        if self.status_store is not None:
            self.status_store.close()

    def process_element(self, row: Row, ctx: KeyedProcessFunction.Context) -> Iterable:
        self.pending.add(row[1])
        shard = row[0]
        timers = ctx.timer_service()
        if shard not in self.flush_at:
            now = timers.current_processing_time()
            self.flush_at[shard] = now - now % self.flush_ms + self.flush_ms
            timers.register_processing_time_timer(self.flush_at[shard])
        if shard not in self.end_armed:
            timers.register_event_time_timer(END_OF_INPUT)
            self.end_armed.add(shard)
        return ()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable:
        self.flush_at.pop(ctx.get_current_key(), None)
        texts = list(self.pending.get() or ())
        if not texts:
            return
        enriched = [orjson.loads(text) for text in texts]
        points = [point_from_enriched(event) for event in enriched]
        result = self.hot_store.write(points)
        self.points_written.inc(result.written)
        if result.rejected:
            self.points_rejected.inc(len(result.rejected))
            by_point = {(p.vehicle_id, p.time_ms): text for p, text in zip(points, texts)}
            for rejected in result.rejected:
                rejection = Rejection("hot_store_rejected", None, rejected.reason)
                raw = by_point[(rejected.point.vehicle_id, rejected.point.time_ms)]
                yield DLQ_TAG, encode_dlq_record(dlq_record(raw, rejection, stage="hot-store")).decode()
        if self.status_store is not None:
            self.status_store.upsert(latest_status(points))
        self.pending.clear()
