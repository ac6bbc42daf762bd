"""Parquet files from PyFlink: FileSink with the bulk Parquet writer (Snappy), one schema, two views.

A bulk format rolls a part file on every checkpoint and commits it when the checkpoint completes,
so a file is either complete and visible or not there: readers never see half a file. In-progress
files are hidden (dot-prefixed) until then.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyflink.common import Types
from pyflink.common.typeinfo import TypeInformation
from pyflink.datastream import DataStream
from pyflink.datastream.data_stream import DataStreamSink
from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink, OutputFileConfig
from pyflink.datastream.formats.parquet import ParquetBulkWriters
from pyflink.table.types import DataTypes, RowType

# Parquet column kind → (Flink SQL type for the writer, Flink type info for the stream).
_KINDS = {
    "bigint": (DataTypes.BIGINT, Types.LONG),
    "int": (DataTypes.INT, Types.INT),
    "double": (DataTypes.DOUBLE, Types.DOUBLE),
    "string": (DataTypes.STRING, Types.STRING),
    "boolean": (DataTypes.BOOLEAN, Types.BOOLEAN),
}

HOURLY_PARTITIONS = "'year='yyyy'/month='MM'/day='dd'/hour='HH"


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


def parquet_file_sink(
    base_path: str,
    schema: ParquetSchema,
    *,
    part_prefix: str = "part",
    partition_format: str | None = HOURLY_PARTITIONS,
    timezone: str = "UTC",
) -> FileSink:
    """`base_path` is a URI: file:///… locally, s3://… in production (Flink's S3 filesystem plugin).

    Partition folders follow the record's processing time, as Firehose's arrival-time prefixes do.
    """
    builder = FileSink.for_bulk_format(
        base_path, ParquetBulkWriters.for_row_type(schema.row_type(), utc_timestamp=True)
    ).with_output_file_config(
        OutputFileConfig.builder().with_part_prefix(part_prefix).with_part_suffix(".parquet").build()
    )
    if partition_format is not None:
        builder = builder.with_bucket_assigner(BucketAssigner.date_time_bucket_assigner(partition_format, timezone))
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
