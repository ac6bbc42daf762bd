"""Python functions and types shared by the jobs: the registry parser, output tags, the state TTL
workaround and the end-of-input timer. The pipeline's batch operator is
jobs/pipeline_batch.py."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pyflink.common import Row, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import ProcessFunction
from pyflink.datastream.state import MapStateDescriptor

from connectors.parquet_sink import ParquetSchema
from udfs.dlq import dlq_record, encode_dlq_record
from udfs.enrich import BRONZE_COLUMNS
from udfs.telemetry_schema import Rejection
from udfs.vehicle_registry import MAX_VEHICLE_TYPE_CHARS, parse_registry_record

# (vehicle_id, event_time_ms, ingested_at_ms, payload JSON): what survives validation.
REGISTRY_TYPE = Types.ROW_NAMED(["vehicle_id", "vehicle_type"], [Types.LONG(), Types.STRING()])
BRONZE_SCHEMA = ParquetSchema(BRONZE_COLUMNS)

DLQ_TAG = OutputTag("dlq", Types.STRING())
BRONZE_TAG = OutputTag("bronze", BRONZE_SCHEMA.type_info())
REGISTRY_STATE = MapStateDescriptor("vehicle-registry", Types.LONG(), Types.STRING())

# PyFlink 2.2 fills in RocksDB's default periodic compaction with `Duration.of_days(30)`, built
# through the py4j gateway, which a TaskManager's embedded interpreter (thread mode on a real
# cluster) does not have: opening the state fails with FileNotFoundError. The embedded runtime
# never sends that value to Java (java_utils.to_java_state_ttl_config reads only the entry count),
# so any non-empty placeholder avoids the gateway call; RocksDB keeps its own default.
_PERIODIC_COMPACTION_NOT_SENT = "rocksdb-default"


def periodic_compaction_placeholder() -> str:
    return _PERIODIC_COMPACTION_NOT_SENT

# Event-time timer that only the final watermark of a bounded input reaches: it flushes what a
# processing-time timer would otherwise leave behind when a bounded job (backfill) finishes.
END_OF_INPUT = 2**63 - 2


def _as_bytes(raw: Any) -> bytes:
    """Kafka gives bytes; in-memory test sources give str."""
    if isinstance(raw, bytes):
        return raw
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


class ParseRegistry(ProcessFunction):
    def __init__(self, topic: str):
        self.topic = topic

    def process_element(self, raw: Any, ctx: ProcessFunction.Context) -> Iterable:
        payload = _as_bytes(raw)
        parsed = parse_registry_record(payload)
        if parsed is None:
            rejection = Rejection(
                "bad_registry_record", None,
                f"expected {{\"vehicle_id\": int > 0, \"vehicle_type\": a string of 1 to {MAX_VEHICLE_TYPE_CHARS} characters}}",
            )
            yield DLQ_TAG, encode_dlq_record(dlq_record(payload, rejection, stage="telemetry-pipeline", source={"topic": self.topic})).decode()
            return
        yield Row(*parsed)
