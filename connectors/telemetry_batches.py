"""Raw telemetry → micro-batches per shard, built in Java so that Python is entered once per batch.

Per-event Python calls are what limits a PyFlink job (DESIGN.md: a keyed Python call costs ~20 µs
more than an unkeyed one, a state access ~13 µs). This module hands the keyed Python function a
batch instead: the Kafka values grouped by shard (vehicle_id mod `shards`) in tumbling windows of
`window_ms`, aggregated by Flink SQL (`ARRAY_AGG`), keyed in Java. The window contents are Flink
state, so a checkpoint never loses a batch being built (a Python-side buffer would).

  raw values ─► table (value, Kafka timestamp) ─► shard = vehicle_id mod N (a regex in Java)
             ─► TUMBLE(window_ms) GROUP BY shard ─► Row(values[], ingested_ms[]) keyed by shard

Two clocks, one per kind of job:
- unbounded (live): processing-time windows. They fire on time whether or not more input comes.
- bounded (backfill, tests, the demo): event-time windows on the time each record was read, with
  a watermark 1 ms behind it. A processing-time window still open when a bounded input ends is
  never fired (Flink fires no processing-time timers at end of input; measured: the last window is
  lost), while the final watermark fires every event-time window. The read time only grows (one
  watermark per stream, in reading order) and many records share a millisecond, hence the 1 ms:
  no record is ever late (with the watermark equal to the read time, 52 of 1M were dropped).

The shard is a pure function of the payload bytes, so re-sends of an event meet in one shard. A
payload without a readable vehicle_id goes to shard 0, where parsing rejects it to the DLQ.
"""

from __future__ import annotations

import time

from pyflink.common import Types, WatermarkStrategy
from pyflink.common.typeinfo import TypeInformation
from pyflink.common.watermark_strategy import TimestampAssigner
from pyflink.datastream import DataStream, KeyedStream, OutputTag
from pyflink.java_gateway import get_gateway
from pyflink.table import DataTypes, Schema, StreamTableEnvironment

# Row(values[], ingested_ms[]): the Kafka values of one window and shard, and their Kafka
# timestamps (when each entered Kafka; null where the input has none, e.g. in-memory tests).
BATCH_TYPE = Types.ROW_NAMED(
    ["payloads", "ingested_ms"],
    [Types.OBJECT_ARRAY(Types.PRIMITIVE_ARRAY(Types.BYTE())), Types.OBJECT_ARRAY(Types.LONG())],
)
SHARD_TYPE = Types.INT()
_KEYED_BATCH_TYPE = Types.ROW_NAMED(["shard", "batch"], [SHARD_TYPE, BATCH_TYPE])

# The leading vehicle_id of a seed payload. Only routes the batch: validation is done in Python.
_VEHICLE_ID = r'"vehicle_id"\s*:\s*(\d{1,18})[,} \n]'


def shard_expression(shards: int, value_column: str = "payload") -> str:
    vehicle = f"TRY_CAST(REGEXP_EXTRACT(CAST({value_column} AS STRING), '{_VEHICLE_ID}', 1) AS BIGINT)"
    return f"CAST(COALESCE(MOD({vehicle}, {int(shards)}), 0) AS INT)"


def batches_by_shard(
    t_env: StreamTableEnvironment, raw: DataStream, *, shards: int, window_ms: int, bounded: bool, name: str
) -> KeyedStream:
    """`raw` holds Kafka values (bytes) with the Kafka timestamps as record timestamps (what
    KafkaSource gives). Returns the batches keyed by shard; `name` keeps views of two jobs apart."""
    table = t_env.from_data_stream(
        raw,
        Schema.new_builder()
        .column("f0", DataTypes.BYTES())
        .column_by_metadata("ingested", DataTypes.TIMESTAMP_LTZ(3), "rowtime")
        .column_by_expression("read_at", "PROCTIME()")
        .column_by_expression("read_time", "CAST(PROCTIME() AS TIMESTAMP_LTZ(3))")
        # Minus 1 ms: many records share a millisecond, and a watermark equal to it would make the
        # ones read after it late (dropped by the window). Seen: 52 of 1M lost on a cluster run.
        .watermark("read_time", "read_time - INTERVAL '0.001' SECOND")
        .build(),
    )
    view = f"{name}_raw"
    t_env.create_temporary_view(view, table)
    clock = "read_time" if bounded else "read_at"
    ingested_ms = "EXTRACT(EPOCH FROM ingested) * 1000 + EXTRACT(MILLISECOND FROM ingested)"
    batches = t_env.sql_query(
        f"""
        SELECT shard, ROW(ARRAY_AGG(f0), ARRAY_AGG({ingested_ms})) AS batch
        FROM (
          SELECT {shard_expression(shards, 'f0')} AS shard, f0, ingested, window_start, window_end
          FROM TABLE(TUMBLE(TABLE {view}, DESCRIPTOR({clock}), INTERVAL '{int(window_ms) / 1000:.3f}' SECOND))
        )
        GROUP BY shard, window_start, window_end
        """
    )
    return key_by_first_field(t_env.to_append_stream(batches, _KEYED_BATCH_TYPE), SHARD_TYPE, BATCH_TYPE)


def key_by_first_field(stream: DataStream, key_type: TypeInformation, value_type: TypeInformation) -> KeyedStream:
    """Key a stream of Row(key, value) in Java. PyFlink's `key_by` would add a Python operator
    (AddKey) that enters Python once per record; its own KeyedStream is built the same way, from
    the Java KeyByKeySelector that reads field 0, so a keyed Python function gets field 1."""
    selector = get_gateway().jvm.KeyByKeySelector()
    j_keyed = stream._j_data_stream.keyBy(selector, Types.ROW([key_type]).get_java_type_info())
    return KeyedStream(j_keyed, value_type, stream)


def java_side_output(stream: DataStream, tag: OutputTag) -> DataStream:
    """A side output without the identity map PyFlink's `get_side_output` puts after it (one more
    Python call per record). In thread mode the side output already holds Java objects of the
    tag's type, so Java sinks and the Table API can take it as it is."""
    return DataStream(stream._j_data_stream.getSideOutput(tag.get_java_output_tag()))


def discard(stream: DataStream, name: str, uid: str) -> None:
    """A Java sink that drops what it gets. A side output nobody consumes makes PyFlink fail on its
    first record ('tuple' has no '_values'), so one that no sink wants still needs a consumer."""
    sink = get_gateway().jvm.org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink()
    stream._j_data_stream.sinkTo(sink).name(name).uid(uid)


class _NowAsIngestTime(TimestampAssigner):  # type: ignore[misc]  # pyflink ships no types
    def extract_timestamp(self, value: bytes, record_timestamp: int) -> int:
        return int(time.time() * 1000)


def in_memory_payloads(text: DataStream) -> DataStream:
    """Test input (payload text) as a Kafka source gives it: bytes, with an ingest timestamp."""
    return (
        text.map(lambda payload: payload.encode("utf-8"), output_type=Types.PRIMITIVE_ARRAY(Types.BYTE()))
        .name("payload bytes").uid("payload-bytes")
        .assign_timestamps_and_watermarks(WatermarkStrategy.no_watermarks().with_timestamp_assigner(_NowAsIngestTime()))
        .name("ingest time").uid("ingest-time")
    )
