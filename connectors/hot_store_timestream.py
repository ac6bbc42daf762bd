"""The hot store on Amazon Timestream for LiveAnalytics (seed sections 9.1 and 10), via boto3.

Records: one multi-measure record per point, MeasureName "telemetry", time in milliseconds, at
most 100 records per WriteRecords call. The one dimension is vehicle_id; zone_id and vehicle_type
are measures, not dimensions as in the seed's Lambda.

What a replay means, here as in the local store: a point is (vehicle_id, time), and the last write
of it wins. Timestream identifies a record by its dimensions, time and measure name, and replaces
a stored one only for a higher version; so the identity holds nothing enrichment can change (with
zone_id a dimension, a replay after a registry or zone fix wrote a second series beside the
first), and every write's version is the writer's clock in ms. A Flink replay after recovery
rewrites the same values (no change); a backfill after an enrichment fix replaces them.

Retries and client construction come from connectors.aws_clients, shared with the DynamoDB
status store.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, TypeVar

from botocore.exceptions import ClientError

from connectors.aws_clients import RetryPolicy, call_with_retry, error_code, make_client
from connectors.erasure_subject import ErasureSubject
from connectors.hot_store import (
    RejectedPoint,
    StoreConfig,
    TelemetryPoint,
    TracePoint,
    WriteResult,
    partition_points,
    wants_points,
)

MEASURE_NAME = "telemetry"
MAX_RECORDS_PER_WRITE = 100  # the WriteRecords API limit
WRITE_CONCURRENCY = 8  # WriteRecords calls in flight per store (per pipeline subtask)
# The minimum Timestream allows; the seed wants 0 (cold data goes to S3, not the magnetic store).
MAGNETIC_STORE_RETENTION_DAYS = 1

# Optional measures written when not None: (field, Timestream type).
_OPTIONAL_MEASURES = (
    ("speed_kmh", "DOUBLE"),
    ("heading", "DOUBLE"),
    ("altitude", "DOUBLE"),
    ("battery_voltage", "DOUBLE"),
    ("battery_temperature", "DOUBLE"),
    ("charging", "BOOLEAN"),
    ("in_use", "BOOLEAN"),
    ("trip_id", "VARCHAR"),
    ("odometer_km", "DOUBLE"),
)

T = TypeVar("T")


# --- records ------------------------------------------------------------------------------------


def _double(value: float) -> str:
    return repr(float(value))


def to_record(point: TelemetryPoint) -> dict[str, Any]:
    """One Timestream record; MeasureName, MeasureValueType, TimeUnit and Version are common
    attributes of the WriteRecords call."""
    measures = [
        {"Name": "latitude", "Value": _double(point.latitude), "Type": "DOUBLE"},
        {"Name": "longitude", "Value": _double(point.longitude), "Type": "DOUBLE"},
        {"Name": "battery_percent", "Value": str(int(point.battery_percent)), "Type": "BIGINT"},
    ]
    for name, measure_type in _OPTIONAL_MEASURES:
        value = _measure_value(getattr(point, name), measure_type)
        if value is not None:
            measures.append({"Name": name, "Value": value, "Type": measure_type})
    measures.append({"Name": "zone_id", "Value": point.zone_id, "Type": "VARCHAR"})
    measures.append({"Name": "vehicle_type", "Value": point.vehicle_type, "Type": "VARCHAR"})
    return {
        "Time": str(point.time_ms),
        "Dimensions": [{"Name": "vehicle_id", "Value": str(point.vehicle_id)}],
        "MeasureValues": measures,
    }


def _measure_value(value: Any, measure_type: str) -> str | None:
    """The measure's text, or None to leave it out: absent, NaN (Timestream refuses it; SQLite
    stores it as NULL, so both backends read it back as missing) or an empty string (the API
    requires a non-empty value; an empty trip_id means no trip)."""
    if value is None:
        return None
    if measure_type == "BOOLEAN":
        return "true" if value else "false"
    if measure_type == "DOUBLE":
        return _double(value) if math.isfinite(value) else None
    return str(value) or None


def common_attributes(version: int) -> dict[str, Any]:
    """`version`: when the write was made (ms), so the newest write of a point wins (module doc)."""
    return {"MeasureName": MEASURE_NAME, "MeasureValueType": "MULTI", "TimeUnit": "MILLISECONDS", "Version": version}


def _batches(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def rejected_from_error(error: ClientError, batch: Sequence[TelemetryPoint]) -> list[RejectedPoint]:
    """The points of `batch` that a RejectedRecordsException names, with Timestream's reason."""
    entries = error.response.get("RejectedRecords")
    if not entries:
        raise RuntimeError("Timestream answered RejectedRecordsException without RejectedRecords") from error
    rejected = []
    for entry in entries:
        index = entry.get("RecordIndex")
        if not isinstance(index, int) or not 0 <= index < len(batch):
            raise RuntimeError(f"Timestream rejected record index {index!r} of a {len(batch)}-record batch") from error
        reason = str(entry.get("Reason") or "rejected by Timestream")
        if entry.get("ExistingVersion") is not None:
            reason += f" (existing version {entry['ExistingVersion']})"
        rejected.append(RejectedPoint(batch[index], reason))
    return rejected


# --- query results ------------------------------------------------------------------------------


def parse_timestamp_ms(text: str) -> int:
    """Timestream's TIMESTAMP text, 'YYYY-MM-DD HH:MM:SS[.fffffffff]' in UTC, as epoch ms."""
    whole, _, fraction = text.strip().partition(".")
    seconds = datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp()
    millis = int((fraction + "000")[:3]) if fraction else 0
    return int(seconds) * 1000 + millis


def _scalar(datum: dict[str, Any]) -> str | None:
    if datum.get("NullValue"):
        return None
    return datum.get("ScalarValue")


def parse_trace_rows(response: dict[str, Any]) -> list[TracePoint]:
    """Rows of one Query page; columns are found by name, not position."""
    names = [column["Name"] for column in response.get("ColumnInfo", [])]
    points = []
    for row in response.get("Rows", []):
        values = dict(zip(names, (_scalar(d) for d in row["Data"])))
        speed = values.get("speed_kmh")
        points.append(TracePoint(
            time_ms=parse_timestamp_ms(values["time"]),
            latitude=float(values["latitude"]),
            longitude=float(values["longitude"]),
            speed_kmh=None if speed is None else float(speed),
        ))
    return points


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def trace_query(
    database: str, table: str, vehicle_id: int, since_ms: int, until_ms: int | None, limit: int | None
) -> str:
    """The seed's example query, with an explicit time range instead of ago(1h)."""
    if until_ms is None:
        time_filter = f"time >= from_milliseconds({int(since_ms)})"
    else:
        time_filter = f"time BETWEEN from_milliseconds({int(since_ms)}) AND from_milliseconds({int(until_ms)})"
    sql = (
        f"SELECT time, latitude, longitude, speed_kmh FROM {_quote_identifier(database)}.{_quote_identifier(table)} "
        f"WHERE vehicle_id = '{int(vehicle_id)}' AND measure_name = '{MEASURE_NAME}' AND {time_filter} "
        "ORDER BY time DESC"
    )
    return sql + (f" LIMIT {int(limit)}" if limit is not None else "")


# --- the store ----------------------------------------------------------------------------------


class TimestreamHotStore:
    def __init__(
        self,
        config: StoreConfig,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        write_client: Any = None,
        query_client: Any = None,
    ):
        self.config = config
        self.retry = retry
        self._sleep = sleep
        self._clock = clock
        self._write = write_client or make_client("timestream-write", config)
        self._query_client = query_client  # created on first trace(): a writing job never needs it
        self._pool: ThreadPoolExecutor | None = None

    @property
    def write_client(self) -> Any:
        return self._write

    @property
    def query_client(self) -> Any:
        if self._query_client is None:
            self._query_client = make_client("timestream-query", self.config)
        return self._query_client

    def ensure_database_and_table(self, retention_hours: int | None = None) -> None:
        """Create the database and table if missing (an existing table is left as it is)."""
        hours = self.config.retention_hours if retention_hours is None else retention_hours
        database, table = self.config.timestream_database, self.config.timestream_table
        if not self._exists(lambda: self._write.describe_database(DatabaseName=database)):
            self._create(lambda: self._write.create_database(DatabaseName=database))
        if not self._exists(lambda: self._write.describe_table(DatabaseName=database, TableName=table)):
            self._create(lambda: self._write.create_table(
                DatabaseName=database,
                TableName=table,
                RetentionProperties={
                    "MemoryStoreRetentionPeriodInHours": hours,
                    "MagneticStoreRetentionPeriodInDays": MAGNETIC_STORE_RETENTION_DAYS,
                },
            ))

    def write(self, points: Sequence[TelemetryPoint]) -> WriteResult:
        # Points outside the memory store window are refused before sending, with the same reason
        # the local backend gives; Timestream itself stays the authority for everything else.
        now_ms = int(self._clock() * 1000)
        accepted, rejected = partition_points(points, now_ms, self.config.retention_hours)
        batches = list(_batches(accepted, MAX_RECORDS_PER_WRITE))
        if len(batches) > 1:
            # One WriteRecords takes tens of ms and carries at most 100 points: a batch of a few
            # hundred goes out in parallel (boto3 clients are thread-safe), or one job thread could
            # not keep up with the fleet. The first failure is raised after all calls return.
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=WRITE_CONCURRENCY, thread_name_prefix="timestream-write")
            results = list(self._pool.map(lambda batch: self._write_batch(batch, now_ms), batches))
        else:
            results = [self._write_batch(batch, now_ms) for batch in batches]
        written = 0
        for batch, refused in zip(batches, results):
            written += len(batch) - len(refused)
            rejected.extend(refused)
        return WriteResult(written=written, rejected=tuple(rejected))

    def trace(
        self, vehicle_id: int, since_ms: int, until_ms: int | None = None, limit: int | None = None
    ) -> list[TracePoint]:
        if not wants_points(limit):
            return []
        sql = trace_query(
            self.config.timestream_database, self.config.timestream_table, vehicle_id, since_ms, until_ms, limit
        )
        points: list[TracePoint] = []
        next_token: str | None = None
        # Timestream pages results (and may hand out pages with no rows while the query runs):
        # follow NextToken until it is gone.
        while True:
            kwargs: dict[str, Any] = {"QueryString": sql}
            if next_token:
                kwargs["NextToken"] = next_token

            def query(kwargs: dict[str, Any] = kwargs) -> Any:
                return self.query_client.query(**kwargs)

            response = call_with_retry(query, policy=self.retry, what="Timestream Query", sleep=self._sleep)
            points.extend(parse_trace_rows(response))
            next_token = response.get("NextToken")
            if not next_token or (limit is not None and len(points) >= limit):
                break
        return points[:limit] if limit is not None else points

    def enforce_retention(self, now_ms: int) -> int:
        """Nothing to do: Timestream moves points out of the memory store (and deletes them from
        the magnetic store) by the table's retention properties on its own."""
        return 0

    @property
    def ages_out_after_hours(self) -> int:
        return self.config.retention_hours + 24 * MAGNETIC_STORE_RETENTION_DAYS

    def erase(self, subject: ErasureSubject) -> None:
        """Timestream (LiveAnalytics) has no API that deletes records: a subject's points leave
        with the table's retention, memory store then magnetic store (`ages_out_after_hours`)."""
        return None

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        for client in (self._write, self._query_client):
            if client is not None and hasattr(client, "close"):
                client.close()

    def _write_batch(self, batch: Sequence[TelemetryPoint], version: int) -> list[RejectedPoint]:
        """Write one batch of at most 100 as `version`; return the points Timestream refused.

        A retried call may re-send records an earlier attempt already stored (e.g. the connection
        dropped after Timestream took them): harmless, the same version and values are a no-op.
        """
        records = [to_record(p) for p in batch]
        try:
            call_with_retry(
                lambda: self._write.write_records(
                    DatabaseName=self.config.timestream_database,
                    TableName=self.config.timestream_table,
                    CommonAttributes=common_attributes(version),
                    Records=records,
                ),
                policy=self.retry,
                what="Timestream WriteRecords",
                sleep=self._sleep,
            )
        except ClientError as error:
            code = error_code(error)
            if code == "ValidationException":
                return self._isolate_refused(batch, version, error)
            if code != "RejectedRecordsException":
                raise
            # The records not named here were written by this very call: nothing to re-send.
            return rejected_from_error(error, batch)
        return []

    def _isolate_refused(self, batch: Sequence[TelemetryPoint], version: int, error: ClientError) -> list[RejectedPoint]:
        """Timestream refused the whole request as malformed (ValidationException: nothing of it was
        written, and resending it cannot succeed). Halve it until the records it refuses stand alone:
        those are rejected with Timestream's message, the rest written (log2(100) < 7 rounds)."""
        if len(batch) == 1:
            return [RejectedPoint(batch[0], f"ValidationException: {error.response.get('Error', {}).get('Message', error)}")]
        middle = len(batch) // 2
        return self._write_batch(batch[:middle], version) + self._write_batch(batch[middle:], version)

    def _exists(self, describe: Callable[[], Any]) -> bool:
        try:
            call_with_retry(describe, policy=self.retry, what="Timestream describe", sleep=self._sleep)
        except ClientError as error:
            if error_code(error) == "ResourceNotFoundException":
                return False
            raise
        return True

    def _create(self, create: Callable[[], Any]) -> None:
        try:
            call_with_retry(create, policy=self.retry, what="Timestream create", sleep=self._sleep)
        except ClientError as error:
            if error_code(error) != "ConflictException":  # created meanwhile by another subtask
                raise

    def __enter__(self) -> TimestreamHotStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
