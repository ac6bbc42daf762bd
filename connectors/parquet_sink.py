"""Parquet files from PyFlink: FileSink with the bulk Parquet writer (Snappy), one schema, two views.

A bulk format rolls a part file on every checkpoint and commits it when the checkpoint completes,
so a file is either complete and visible or not there: readers never see half a file. In-progress
files are hidden (dot-prefixed) until then.

Partition folders are hours: either of the record's own event time (`partition_by_event_time`, a
BIGINT epoch-ms column, UTC; our Java EventTimeHourBucketAssigner from connectors/jvm/fleet-flink,
shipped in the `flink` jars), or of the processing time (Flink's DateTimeBucketAssigner, as
Firehose's arrival-time prefixes do).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyflink.common import Types
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import DataStream
from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink, OutputFileConfig
from pyflink.datastream.data_stream import DataStreamSink
from pyflink.datastream.formats.parquet import ParquetBulkWriters
from pyflink.java_gateway import get_gateway
from pyflink.table.types import DataTypes, RowType

# Parquet column kind → (Flink SQL type for the writer, Flink type info for the stream).
_KINDS = {
    "bigint": (DataTypes.BIGINT, Types.LONG),
    "int": (DataTypes.INT, Types.INT),
    "double": (DataTypes.DOUBLE, Types.DOUBLE),
    "string": (DataTypes.STRING, Types.STRING),
    "boolean": (DataTypes.BOOLEAN, Types.BOOLEAN),
}

HOURLY_PARTITIONS = "'year='yyyy'/month='MM'/day='dd'/hour='HH"  # processing time, DateTimeFormatter
# The folder of a row whose event-time column is null (EventTimeHourBucketAssigner.UNKNOWN_BUCKET):
# such a row is kept, not a reason to fail the job.
UNKNOWN_EVENT_TIME_BUCKET = "event_time=unknown"


@dataclass(frozen=True)
class ParquetSchema:
    """Columns as (name, kind); gives the writer's RowType and the stream's Row type info."""

    columns: tuple[tuple[str, str], ...]

    def __post_init__(self) -> None:
        unknown = [kind for _, kind in self.columns if kind not in _KINDS]
        if unknown:
            raise ValueError(f"unknown column kinds {unknown}; known: {sorted(_KINDS)}")

    @property
    def names(self) -> list[str]:
        return [name for name, _ in self.columns]

    def row_type(self) -> RowType:
        return DataTypes.ROW([DataTypes.FIELD(name, _KINDS[kind][0]()) for name, kind in self.columns])

    def type_info(self) -> TypeInformation:
        return Types.ROW_NAMED(self.names, [_KINDS[kind][1]() for _, kind in self.columns])


def event_time_bucket_assigner(schema: ParquetSchema, column: str) -> BucketAssigner:
    """`year=YYYY/month=MM/day=DD/hour=HH` of the row's `column` (BIGINT epoch ms) in UTC; a null
    goes to UNKNOWN_EVENT_TIME_BUCKET. Needs the `flink` jars on the classpath (create_env)."""
    kinds = dict(schema.columns)
    if kinds.get(column) != "bigint":
        raise ValueError(f"partition_by_event_time needs a bigint column of the schema, got {column!r} ({kinds.get(column)})")
    j_assigner = get_gateway().jvm.io.github.fleettelemetry.flink.EventTimeHourBucketAssigner(schema.names.index(column))
    return BucketAssigner(j_assigner)


def parquet_file_sink(
    base_path: str,
    schema: ParquetSchema,
    *,
    part_prefix: str = "part",
    partition_by_event_time: str | None = None,
    partition_format: str | None = HOURLY_PARTITIONS,
    timezone: str = "UTC",
) -> FileSink:
    """`base_path` is a URI: file:///… locally, s3://… (Flink's S3 filesystem plugin, see
    jobs/flink_env.py).

    With `partition_by_event_time` (a bigint epoch-ms column) folders are the UTC hour of each
    row's own time, so a replay or a late spool lands where its events belong. Otherwise folders
    follow `partition_format` of the processing time (as Firehose's arrival-time prefixes do), or
    there are none (`partition_format=None`).
    """
    builder = FileSink.for_bulk_format(
        base_path, ParquetBulkWriters.for_row_type(schema.row_type(), utc_timestamp=True)
    ).with_output_file_config(
        OutputFileConfig.builder().with_part_prefix(part_prefix).with_part_suffix(".parquet").build()
    )
    if partition_by_event_time is not None:
        if partition_format != HOURLY_PARTITIONS:
            raise ValueError("partition_by_event_time makes its own hour folders; leave partition_format alone")
        builder = builder.with_bucket_assigner(event_time_bucket_assigner(schema, partition_by_event_time))
    elif partition_format is not None:
        builder = builder.with_bucket_assigner(BucketAssigner.date_time_bucket_assigner(partition_format, timezone))
    else:
        builder = builder.with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
    return builder.build()


def sink_in_own_chain(stream: DataStream, sink: FileSink) -> DataStreamSink:
    """`stream.sink_to(sink)`, but the Row→RowData mapper PyFlink puts before a Parquet FileSink
    starts a chain of its own. Chained, the mapper and parquet-mr's encoding run in the thread of
    the operator upstream (the pipeline's Python operator, the job's busiest thread); in a chain of
    their own they run in a task thread of their own, on another core, for the price of handing
    each row across a local channel."""
    mapped = sink.get_transformer().apply(stream)  # PyFlink's Row→RowData map (Java)
    mapped._j_data_stream.startNewChain()
    return DataStreamSink(mapped._j_data_stream.sinkTo(sink.get_java_function()))
