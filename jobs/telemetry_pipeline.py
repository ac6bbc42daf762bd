"""The telemetry pipeline: Kafka `vehicle-telemetry` → validate → dedup → enrich → sinks, exactly once.

  source ─► parse + validate ─(rejects)──────────────────────────────────────► telemetry-dlq
                  │ key by vehicle_id                                            ▲
                  ▼                                                              │
  vehicle-registry ─► (broadcast) ─► dedup + enrich ─┬─► telemetry-enriched (Kafka, EXACTLY_ONCE, key = vehicle_id)
                                                     ├─► Bronze Parquet (FileSink, hour folders, commit on checkpoint)
                                                     └─► key by shard ─► store writer ─► hot store + vehicle status
                                                                              └─(store rejects)─┘

The seed's Lambda 9.1 and Firehose paths as one PyFlink job. Start position is configurable (the
live job resumes from committed offsets; a backfill replays a range); with a stop position the
job is bounded and finishes after writing everything up to it.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from pyflink.common import Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment

from connectors.hot_store import StoreConfig
from connectors.kafka_sink import KEYED_RECORD_TYPE, add_keyed_sink, value_only_sink
from connectors.kafka_source import OffsetPosition, raw_bytes_source
from connectors.parquet_sink import parquet_file_sink
from fleet.config import PlatformConfig
from jobs.job_main import job_main
from jobs.pipeline_functions import (
    BRONZE_SCHEMA,
    BRONZE_TAG,
    DLQ_TAG,
    REGISTRY_STATE,
    REGISTRY_TYPE,
    STORE_TAG,
    VALID_TYPE,
    DedupAndEnrich,
    ParseAndValidate,
    ParseRegistry,
    StoreWriter,
)
from udfs.fault_injection import FailOnce

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
    dedup_ttl_s: int
    registry_file: str
    bronze_path: str
    stores: StoreConfig
    store_flush_ms: int
    store_shards: int
    sinks: frozenset[str] = field(default=ALL_SINKS)
    fail_once: FailOnce | None = None  # the failure harness's injected fault; None in real runs
    commit_offsets: bool = True  # a backfill reads with a group of its own and commits nothing
    bronze_part_prefix: str = "telemetry"  # a backfill names its files so it can find them again
    source_partitions: frozenset[tuple[str, int]] | None = None  # None: every partition of the telemetry topic
    registry_updates: bool = True  # False: the registry as each subtask reads it at start, no source


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
        dedup_ttl_s=settings.dedup_ttl_s,
        registry_file=settings.registry_file,
        bronze_path=settings.bronze_path,
        stores=platform.stores,
        store_flush_ms=settings.store_flush_ms,
        store_shards=settings.store_shards,
        fail_once=FailOnce.parse(platform.faults.fail_once_at, platform.faults.marker_dir, "pipeline"),
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

    parsed = raw.process(ParseAndValidate(config.telemetry_topic), output_type=VALID_TYPE).name("parse and validate").uid("parse-validate")
    registry = (
        registry_raw.process(ParseRegistry(config.registry_topic), output_type=REGISTRY_TYPE)
        .name("parse registry").uid("parse-registry")
    )
    enriched = (
        parsed.key_by(lambda row: row[0], key_type=Types.LONG())
        .connect(registry.broadcast(REGISTRY_STATE))
        .process(
            DedupAndEnrich(
                config.dedup_ttl_s, config.store_shards, config.registry_file,
                registry_topic=(config.bootstrap_servers, config.registry_topic) if registry_from_kafka else None,
                to_bronze=bronze_wanted, to_store="store" in config.sinks, fail_once=config.fail_once,
            ),
            output_type=KEYED_RECORD_TYPE,
        )
        .name("dedup and enrich").uid("dedup-enrich")
    )
    bronze = enriched.get_side_output(BRONZE_TAG) if bronze_wanted else None
    store_rejects = (
        enriched.get_side_output(STORE_TAG)
        .key_by(lambda row: row[0], key_type=Types.INT())
        .process(StoreWriter(config.stores, config.store_flush_ms), output_type=Types.STRING())
        .name("hot store and vehicle status writer").uid("store-writer")
        .get_side_output(DLQ_TAG)
    ) if "store" in config.sinks else None
    dlq = parsed.get_side_output(DLQ_TAG).union(registry.get_side_output(DLQ_TAG))
    if store_rejects is not None:
        dlq = dlq.union(store_rejects)

    if "enriched" in config.sinks:
        add_keyed_sink(
            env, enriched, config.bootstrap_servers, config.enriched_topic,
            f"{config.transactional_id_prefix}-enriched", table_name="telemetry_enriched",
        )
    if "bronze" in config.sinks:
        bronze.sink_to(parquet_file_sink(config.bronze_path, BRONZE_SCHEMA, part_prefix=config.bronze_part_prefix)).name("bronze parquet sink").uid("bronze-sink")
    if "dlq" in config.sinks:
        dlq.sink_to(value_only_sink(config.bootstrap_servers, config.dlq_topic, f"{config.transactional_id_prefix}-dlq")).name("dlq sink").uid("dlq-sink")
    return PipelineStreams(enriched=enriched, bronze=bronze, dlq=dlq)


def main(argv: list[str] | None = None) -> int:
    return job_main(argv, name="telemetry pipeline", description="Telemetry pipeline: validate, dedup, enrich, sink exactly once.", make_config=pipeline_config, build=build)


if __name__ == "__main__":
    sys.exit(main())
