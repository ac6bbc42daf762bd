"""The telemetry pipeline: Kafka `vehicle-telemetry` → validate → dedup → enrich → sinks, exactly once.

  source ─► batches per shard (Java: SQL window, ARRAY_AGG; keyed in Java)
                  │
  vehicle-registry ─► (broadcast) ─► parse + validate + dedup + enrich + store writes (one Python call per batch)
                                       ├─► telemetry-enriched (Kafka, EXACTLY_ONCE, key = vehicle_id)
                                       ├─► Bronze Parquet (FileSink, event-hour folders, commit on checkpoint; a chain of its own)
                                       ├─► hot store + vehicle status (written per batch, idempotent)
                                       └─► telemetry-dlq (rejects, store rejects, bad registry records)

The seed's Lambda 9.1 and Firehose paths as one PyFlink job. Start position is configurable (the
live job resumes from committed offsets; a backfill replays a range); with a stop position the
job is bounded and finishes after writing everything up to it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from pyflink.common import Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.hot_store import StoreConfig
from connectors.kafka_sink import KEYED_RECORD_TYPE, TRANSACTION_TIMEOUT_MS, add_keyed_sink, value_only_sink
from connectors.kafka_source import OffsetPosition, raw_bytes_source
from connectors.parquet_sink import parquet_file_sink, sink_in_own_chain
from connectors.telemetry_batches import batches_by_shard, discard, in_memory_payloads, java_side_output
from fleet.config import PlatformConfig
from jobs.job_main import job_main
from jobs.pipeline_batch import EnrichBatch
from jobs.pipeline_functions import (
    BRONZE_SCHEMA,
    BRONZE_TAG,
    DLQ_TAG,
    REGISTRY_STATE,
    REGISTRY_TYPE,
    ParseRegistry,
)
from udfs.fault_injection import FailOnce
from udfs.telemetry_schema import DEFAULT_POLICY, ValidationPolicy

ALL_SINKS = frozenset({"enriched", "bronze", "store", "dlq"})


@dataclass(frozen=True)
class PipelineConfig:
    bootstrap_servers: str
    telemetry_topic: str
    enriched_topic: str
    dlq_topic: str
    registry_topic: str
    group_id: str
    transactional_id_prefix: str
    start: OffsetPosition
    stop: OffsetPosition | None
    dedup_recent_events: int
    dedup_ttl_s: int
    registry_file: str
    bronze_path: str
    stores: StoreConfig
    batch_window_ms: int
    batch_shards: int
    sinks: frozenset[str] = field(default=ALL_SINKS)
    fail_once: FailOnce | None = None  # the failure harness's injected fault; None in real runs
    commit_offsets: bool = True  # a backfill reads with a group of its own and commits nothing
    bronze_part_prefix: str = "telemetry"  # a backfill names its files so it can find them again
    source_partitions: frozenset[tuple[str, int]] | None = None  # None: every partition of the telemetry topic
    registry_updates: bool = True  # False: the registry as each subtask reads it at start, no source
    transaction_timeout_ms: int = TRANSACTION_TIMEOUT_MS  # of the exactly-once sinks ([kafka])
    schema: ValidationPolicy = DEFAULT_POLICY  # payload limits ([schema])
    max_record_bytes: int = 1_048_576  # [kafka] max_record_bytes; the enriched topic's own limit wins if lower


def pipeline_config(platform: PlatformConfig, *, start: str = "committed", stop: str | None = None) -> PipelineConfig:
    kafka, settings = platform.kafka, platform.pipeline
    return PipelineConfig(
        bootstrap_servers=kafka.bootstrap_servers,
        telemetry_topic=kafka.topic("telemetry").name,
        enriched_topic=kafka.topic("enriched").name,
        dlq_topic=kafka.topic("dlq").name,
        registry_topic=kafka.topic("registry").name,
        group_id=settings.group_id,
        transactional_id_prefix=settings.transactional_id_prefix,
        start=OffsetPosition.parse(start),
        stop=OffsetPosition.parse(stop) if stop else None,
        dedup_recent_events=settings.dedup_recent_events,
        dedup_ttl_s=settings.dedup_ttl_s,
        registry_file=settings.registry_file,
        bronze_path=settings.bronze_path,
        stores=platform.stores,
        batch_window_ms=settings.batch_window_ms,
        batch_shards=settings.batch_shards,
        fail_once=FailOnce.parse(platform.faults.fail_once_at, platform.faults.marker_dir, "pipeline"),
        transaction_timeout_ms=kafka.transaction_timeout_ms,
        schema=platform.schema,
        max_record_bytes=kafka.max_record_bytes,
    )


@dataclass(frozen=True)
class PipelineStreams:
    """The job's named streams, for sinks and for tests that collect them."""

    enriched: DataStream  # Row(key, value)
    bronze: DataStream | None  # BRONZE_SCHEMA rows, when wanted
    dlq: DataStream  # DLQ records as JSON text


def build(
    env: StreamExecutionEnvironment,
    config: PipelineConfig,
    *,
    raw: DataStream | None = None,
    registry_raw: DataStream | None = None,
    collect_bronze: bool = False,
) -> PipelineStreams:
    """Add the pipeline to `env`. `raw`/`registry_raw` replace the Kafka sources and `collect_bronze`
    keeps the Bronze stream for a test to consume when the Parquet sink is off (job-tier tests)."""
    bronze_wanted = collect_bronze or "bronze" in config.sinks
    # In-memory test input is text and always bounded; Kafka input is bounded when a stop is set.
    raw_is_text = raw is not None
    bounded_input = raw_is_text or config.stop is not None
    if raw is None:
        source = raw_bytes_source(
            config.bootstrap_servers, config.telemetry_topic, config.group_id, start=config.start, stop=config.stop,
            commit_offsets=config.commit_offsets, partitions=config.source_partitions,
        )
        raw = env.from_source(source, WatermarkStrategy.no_watermarks(), "vehicle-telemetry source").uid("telemetry-source")
    registry_from_kafka = registry_raw is None
    if registry_raw is None and not config.registry_updates:
        # A backfill replays the past against the registry as read at start. It also must not hold a
        # bounded Kafka source it could be restored with: such a source never finishes (FLINK-31006).
        registry_raw = env.from_collection([], type_info=Types.PRIMITIVE_ARRAY(Types.BYTE())).name("no registry updates").uid("registry-source")
    elif registry_raw is None:
        # Always the whole compacted topic; bounded when the job is, so a backfill can finish.
        registry_source = raw_bytes_source(
            config.bootstrap_servers, config.registry_topic, f"{config.group_id}-registry",
            start=OffsetPosition("earliest"), stop=OffsetPosition("latest") if config.stop else None,
            commit_offsets=config.commit_offsets,
        )
        registry_raw = env.from_source(registry_source, WatermarkStrategy.no_watermarks(), "vehicle-registry source").uid("registry-source")

    registry = (
        registry_raw.process(ParseRegistry(config.registry_topic), output_type=REGISTRY_TYPE)
        .name("parse registry").uid("parse-registry")
    )
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")  # Kafka timestamps → epoch ms, anywhere
    if raw_is_text:
        raw = in_memory_payloads(raw)
    batches = batches_by_shard(
        t_env, raw, shards=config.batch_shards, window_ms=config.batch_window_ms,
        bounded=bounded_input, name="pipeline",
    )
    enriched = (
        batches.connect(registry.broadcast(REGISTRY_STATE))
        .process(
            EnrichBatch(
                topic=config.telemetry_topic, dedup_capacity=config.dedup_recent_events, dedup_ttl_s=config.dedup_ttl_s,
                registry_file=config.registry_file,
                registry_topic=(config.bootstrap_servers, config.registry_topic) if registry_from_kafka else None,
                stores=config.stores if "store" in config.sinks else None,
                to_bronze=bronze_wanted, fail_once=config.fail_once, schema=config.schema,
                max_enriched_bytes=None if "enriched" not in config.sinks else config.max_record_bytes if raw_is_text else _enriched_limit(config),
            ),
            output_type=KEYED_RECORD_TYPE,
        )
        .name("parse, dedup, enrich, store").uid("enrich-batch")
    )
    bronze = java_side_output(enriched, BRONZE_TAG) if bronze_wanted else None
    dlq = java_side_output(enriched, DLQ_TAG).union(java_side_output(registry, DLQ_TAG))

    if "enriched" in config.sinks:
        add_keyed_sink(
            env, enriched, config.bootstrap_servers, config.enriched_topic,
            f"{config.transactional_id_prefix}-enriched", table_name="telemetry_enriched",
            transaction_timeout_ms=config.transaction_timeout_ms,
        )
    if "bronze" in config.sinks:
        # Hour folders of each event's own time, so a replay or a late spool drain lands in its hour.
        bronze_sink = parquet_file_sink(
            config.bronze_path, BRONZE_SCHEMA, part_prefix=config.bronze_part_prefix, partition_by_event_time="event_time_ms",
        )
        sink_in_own_chain(bronze, bronze_sink).name("bronze parquet sink").uid("bronze-sink")
    if "dlq" in config.sinks:
        dlq_sink = value_only_sink(
            config.bootstrap_servers, config.dlq_topic, f"{config.transactional_id_prefix}-dlq",
            transaction_timeout_ms=config.transaction_timeout_ms,
        )
        dlq.sink_to(dlq_sink).name("dlq sink").uid("dlq-sink")
    else:  # rejects are still counted (metric payloads_rejected); the caller chose not to keep them
        discard(dlq, "dlq not kept", "dlq-discard")
    return PipelineStreams(enriched=enriched, bronze=bronze, dlq=dlq)


def _enriched_limit(config: PipelineConfig) -> int:
    """The configured record limit, or the enriched topic's max.message.bytes if the broker has a
    lower one (read once, when the job is built)."""
    from connectors.kafka_topics import topic_max_message_bytes

    topic_limit = topic_max_message_bytes(config.bootstrap_servers, config.enriched_topic)
    return min(config.max_record_bytes, topic_limit) if topic_limit else config.max_record_bytes


def main(argv: list[str] | None = None) -> int:
    return job_main(argv, name="telemetry pipeline", description="Telemetry pipeline: validate, dedup, enrich, sink exactly once.", make_config=pipeline_config, build=build)


if __name__ == "__main__":
    sys.exit(main())
