"""What a backfill job reports back: how many records it sent to each output, counted inside the job.

Reading the sinks afterwards cannot tell this run's records from the live job's (both write to
`telemetry-enriched`, the DLQ and the hot store), so the job counts its own outputs. The count runs
in the JVM (Table API, mini-batched, two-phase): no Python per record and no hot key on one subtask.

The running totals go to small files beside the run's checkpoints, committed with each checkpoint,
rather than to the client: a collect sink's state cannot be restored by a new client process, and
a resumed run must still report its whole total. Totals only grow, so the largest value written
per output is the final one, whichever attempt wrote it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from pyflink.common import Encoder, Row, Types
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.datastream.connectors.file_system import BucketAssigner, FileSink, OutputFileConfig
from pyflink.table import StreamTableEnvironment

CATEGORIES = ("enriched", "dlq_input", "dlq_store", "dlq_registry")
_PART_PREFIX = "counts"

# DLQ records by origin: a payload the schema refused, a point the hot store refused, a bad
# registry record (the registry topic is read whole by every run).
_COUNT_SQL = """
SELECT category, COUNT(*) AS n FROM (
  SELECT 'enriched' AS category FROM backfill_enriched
  UNION ALL
  SELECT CASE
    WHEN JSON_VALUE(f0, '$.stage') = 'hot-store' THEN 'dlq_store'
    WHEN JSON_VALUE(f0, '$.source.topic') = '{registry_topic}' THEN 'dlq_registry'
    ELSE 'dlq_input' END AS category
  FROM backfill_dlq
) GROUP BY category
"""


@dataclass(frozen=True)
class OutputCounts:
    enriched: int = 0  # unique valid events: what enriched, Bronze and the store writer each got
    dlq_input: int = 0
    dlq_store: int = 0
    dlq_registry: int = 0

    @property
    def dlq(self) -> int:
        return self.dlq_input + self.dlq_store + self.dlq_registry


def _as_line(row: Row) -> str:
    return json.dumps([row[0], row[1]])


def add_output_counts(
    env: StreamExecutionEnvironment, enriched: DataStream, dlq: DataStream, registry_topic: str, counts_uri: str
) -> None:
    """Count each output and write the running totals as JSON lines under `counts_uri`."""
    t_env = StreamTableEnvironment.create(env)
    config = t_env.get_config()
    # Without mini-batches the aggregate would emit an update per record.
    config.set("table.exec.mini-batch.enabled", "true")
    config.set("table.exec.mini-batch.allow-latency", "1 s")
    config.set("table.exec.mini-batch.size", "10000")
    t_env.create_temporary_view("backfill_enriched", t_env.from_data_stream(enriched))
    t_env.create_temporary_view("backfill_dlq", t_env.from_data_stream(dlq))
    # Kafka topic names are [a-zA-Z0-9._-]: nothing to escape in a SQL literal.
    totals = t_env.to_changelog_stream(t_env.sql_query(_COUNT_SQL.format(registry_topic=registry_topic)))
    sink = (
        FileSink.for_row_format(counts_uri, Encoder.simple_string_encoder())
        .with_bucket_assigner(BucketAssigner.base_path_bucket_assigner())
        .with_output_file_config(OutputFileConfig.builder().with_part_prefix(_PART_PREFIX).with_part_suffix(".jsonl").build())
        .build()
    )
    (
        totals.map(_as_line, output_type=Types.STRING()).name("backfill counts as lines").uid("backfill-counts-lines")
        .sink_to(sink).name("backfill counts sink").uid("backfill-counts-sink")
    )


def read_counts(counts_uri: str) -> OutputCounts | None:
    """The final totals from the committed count files; None when there are none."""
    from pyarrow import fs

    filesystem, base = fs.FileSystem.from_uri(counts_uri)
    latest: dict[str, int] = {}
    for info in filesystem.get_file_info(fs.FileSelector(base, recursive=True, allow_not_found=True)):
        if info.type != fs.FileType.File or not info.base_name.startswith(_PART_PREFIX):
            continue  # in-progress files are hidden (dot-prefixed) until their checkpoint commits them
        with filesystem.open_input_stream(info.path) as stream:
            for line in stream.read().decode().splitlines():
                if line.strip():
                    category, total = json.loads(line)
                    latest[category] = max(total, latest.get(category, 0))
    if not latest:
        return None
    return OutputCounts(**{name: latest.get(name, 0) for name in CATEGORIES})
