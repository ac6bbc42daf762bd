"""The AWS backends (Timestream hot store, DynamoDB vehicle status) against a real moto server.

What moto does not do, and how these tests cover it anyway:
  * moto's WriteRecords stores every record it gets: no versions, no duplicate detection, never a
    RejectedRecordsException or a throttle. Those answers are injected on the wire instead: a
    `before-send` hook hands botocore a genuine HTTP error response (status, JSON body with
    __type, RejectedRecords), so botocore's own parser builds the exception the store sees, exactly
    as it would from AWS. Requests without an injected answer go to moto as usual.
  * moto's timestream-query executes no SQL. It answers a query with results queued through its
    /moto-api/static/timestream/query-results endpoint, keyed by the exact query string, one queued
    page per call: so trace() is tested over HTTP with the real Query response shape (ColumnInfo,
    Rows of Data/ScalarValue/NullValue, NextToken pagination), and the exact query text is pinned
    (a different text would get no rows).
"""

from __future__ import annotations

import json
import time
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import pytest
from botocore.awsrequest import AWSResponse
from botocore.exceptions import ClientError, EndpointConnectionError

from connectors.aws_clients import RetryPolicy
from connectors.hot_store import (
    REJECT_OLDER_THAN_RETENTION,
    StoreConfig,
    TelemetryPoint,
    TracePoint,
    VehicleStatus,
    open_hot_store,
    open_status_store,
)
from connectors.hot_store_timestream import TimestreamHotStore
from connectors.vehicle_status_dynamodb import DynamoDbVehicleStatusStore
from infra.process import free_port

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(max_attempts=4, base_delay_s=0.001, max_delay_s=0.005)
JSON_1_0 = "application/x-amz-json-1.0"


# --- helpers ------------------------------------------------------------------------------------


class _Body:
    def __init__(self, data: bytes):
        self._data = data

    def stream(self, **_: Any):
        yield self._data


@dataclass
class WireTap:
    """A `before-send` hook: records every request body sent for one operation and, for the
    calls that have a canned (status, body) queued, answers with it instead of the server.
    `answer_for` picks the answer from the request body instead, for calls that go out in
    parallel (the Timestream writer sends a write's batches concurrently, in no fixed order)."""

    canned: list[tuple[int, dict[str, Any]] | None] = field(default_factory=list)
    answer_for: Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None] | None = None
    bodies: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: Any, **_: Any) -> AWSResponse | None:
        body = json.loads(request.body)
        self.bodies.append(body)
        if self.answer_for is not None:
            answer = self.answer_for(body)
        else:
            answer = self.canned.pop(0) if self.canned else None
        if answer is None:
            return None  # on to the server
        status, body = answer
        headers = {"Content-Type": JSON_1_0, "x-amzn-RequestId": str(uuid.uuid4())}
        return AWSResponse(request.url, status, headers, _Body(json.dumps(body).encode()))

    @property
    def calls(self) -> int:
        return len(self.bodies)


def tap(
    client: Any,
    event: str,
    canned: list[tuple[int, dict[str, Any]] | None] | None = None,
    answer_for: Callable[[dict[str, Any]], tuple[int, dict[str, Any]] | None] | None = None,
) -> WireTap:
    hook = WireTap(canned=list(canned or []), answer_for=answer_for)
    client.meta.events.register(event, hook)
    return hook


def aws_error(code: str, message: str, **extra: Any) -> dict[str, Any]:
    return {"__type": f"com.amazonaws.timestream.v20181101#{code}", "message": message, **extra}


def moto_timestream_records(endpoint: str, database: str, table: str) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"{endpoint}/moto-api/data.json", timeout=10) as response:
        data = json.load(response)
    for t in data.get("timestreamwrite", {}).get("TimestreamTable", []):
        if t["db_name"] == database and t["name"] == table:
            return t["records"]
    raise AssertionError(f"moto has no table {database}.{table}")


def queue_query_results(endpoint: str, region: str, query: str, pages: list[dict[str, Any]]) -> None:
    body = json.dumps({"region": region, "results": {query: pages}}).encode()
    request = urllib.request.Request(
        f"{endpoint}/moto-api/static/timestream/query-results", data=body, method="POST",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 201


def now_ms() -> int:
    return int(time.time() * 1000)


def point(vehicle_id: int, time_ms: int, **overrides: Any) -> TelemetryPoint:
    base = TelemetryPoint(
        vehicle_id=vehicle_id, time_ms=time_ms, zone_id="u0yjjd", vehicle_type="scooter",
        latitude=50.1105, longitude=8.6821, battery_percent=68, speed_kmh=12.5,
    )
    return replace(base, **overrides)


def status(vehicle_id: int, last_seen_ms: int, **overrides: Any) -> VehicleStatus:
    base = VehicleStatus(
        vehicle_id=vehicle_id, last_seen_ms=last_seen_ms, latitude=50.1105, longitude=8.6821,
        zone_id="u0yjjd", vehicle_type="scooter", battery_percent=68,
    )
    return replace(base, **overrides)


@pytest.fixture
def config(moto_endpoint: str) -> StoreConfig:
    # Fresh names per test: the moto server is shared by the whole session.
    suffix = uuid.uuid4().hex[:10]
    return StoreConfig(
        hot_store_backend="timestream", status_backend="dynamodb", endpoint_url=moto_endpoint,
        timestream_database=f"mobility_{suffix}", timestream_table="telemetry",
        dynamodb_table=f"vehicle-status-{suffix}",
    )


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def timestream(config: StoreConfig, sleeps: list[float]):
    store = TimestreamHotStore(config, retry=FAST_RETRY, sleep=sleeps.append)
    store.ensure_database_and_table()
    yield store
    store.close()


@pytest.fixture
def dynamodb(config: StoreConfig, sleeps: list[float]):
    store = DynamoDbVehicleStatusStore(config, retry=FAST_RETRY, sleep=sleeps.append)
    assert store.ensure_table() is True
    yield store
    store.close()


# --- Timestream ---------------------------------------------------------------------------------


def test_factory_opens_the_timestream_backend(config: StoreConfig):
    store = open_hot_store(config)
    try:
        assert isinstance(store, TimestreamHotStore)
        assert store.enforce_retention(now_ms()) == 0  # Timestream enforces retention itself
    finally:
        store.close()


def test_ensure_database_and_table_creates_once_with_the_retention(timestream: TimestreamHotStore, config: StoreConfig):
    timestream.ensure_database_and_table()  # a second call finds both and changes nothing
    table = timestream.write_client.describe_table(
        DatabaseName=config.timestream_database, TableName=config.timestream_table
    )["Table"]
    assert table["RetentionProperties"] == {
        "MemoryStoreRetentionPeriodInHours": 72, "MagneticStoreRetentionPeriodInDays": 1,
    }
    databases = [d["DatabaseName"] for d in timestream.write_client.list_databases()["Databases"]]
    assert databases.count(config.timestream_database) == 1


def test_250_points_go_in_three_write_calls_of_at_most_100(timestream: TimestreamHotStore, config: StoreConfig):
    wire = tap(timestream.write_client, "before-send.timestream-write.WriteRecords")
    t0 = now_ms() - 300_000
    points = [point(v % 7, t0 + v) for v in range(250)]

    result = timestream.write(points)

    assert result.written == 250 and result.rejected == ()
    # The three calls go out in parallel, so in any order.
    assert sorted(len(body["Records"]) for body in wire.bodies) == [50, 100, 100]
    stored = moto_timestream_records(config.endpoint_url, config.timestream_database, config.timestream_table)
    assert sorted(int(r["Time"]) for r in stored) == [p.time_ms for p in points]


def test_record_shape_follows_the_seed(timestream: TimestreamHotStore):
    wire = tap(timestream.write_client, "before-send.timestream-write.WriteRecords")
    t = now_ms()
    full = point(12345, t, heading=90.0, altitude=100.5, battery_voltage=36.1, battery_temperature=22.0,
                 charging=False, in_use=True, trip_id="trip-1", odometer_km=321.25)
    bare = point(12346, t, speed_kmh=None, trip_id="")  # None and empty measures are left out

    before = now_ms()
    assert timestream.write([full, bare]).written == 2

    body = wire.bodies[0]
    version = body["CommonAttributes"].pop("Version")
    assert body["CommonAttributes"] == {"MeasureName": "telemetry", "MeasureValueType": "MULTI", "TimeUnit": "MILLISECONDS"}
    assert before <= version <= now_ms()  # the write's time: the newest write of a point wins
    first, second = body["Records"]
    assert first["Time"] == str(t)
    # vehicle_id alone identifies the series: enrichment a replay may change is not part of it.
    assert first["Dimensions"] == [{"Name": "vehicle_id", "Value": "12345"}]
    assert {m["Name"]: (m["Value"], m["Type"]) for m in first["MeasureValues"]} == {
        "latitude": ("50.1105", "DOUBLE"), "longitude": ("8.6821", "DOUBLE"),
        "battery_percent": ("68", "BIGINT"), "speed_kmh": ("12.5", "DOUBLE"),
        "heading": ("90.0", "DOUBLE"), "altitude": ("100.5", "DOUBLE"),
        "battery_voltage": ("36.1", "DOUBLE"), "battery_temperature": ("22.0", "DOUBLE"),
        "charging": ("false", "BOOLEAN"), "in_use": ("true", "BOOLEAN"),
        "trip_id": ("trip-1", "VARCHAR"), "odometer_km": ("321.25", "DOUBLE"),
        "zone_id": ("u0yjjd", "VARCHAR"), "vehicle_type": ("scooter", "VARCHAR"),
    }
    assert [m["Name"] for m in second["MeasureValues"]] == ["latitude", "longitude", "battery_percent", "zone_id", "vehicle_type"]


def test_a_rewrite_sends_the_same_records_under_a_newer_version(timestream: TimestreamHotStore):
    # Timestream replaces a record of the same dimensions, time and measure name when the version is
    # higher. moto keeps no versions (it stores the replay again), so what is checked here is the
    # half the store owns: a replay is the same records, identified the same, under a newer version.
    wire = tap(timestream.write_client, "before-send.timestream-write.WriteRecords")
    points = [point(1, now_ms() - i * 1000, charging=True) for i in range(30)]
    fixed = [replace(p, zone_id="u0yjjf", vehicle_type="e-bike") for p in points]  # a backfill after an enrichment fix

    first = timestream.write(points)
    time.sleep(0.002)
    second = timestream.write(fixed)

    assert first.written == second.written == 30 and not first.rejected and not second.rejected
    old, new = wire.bodies
    assert new["CommonAttributes"]["Version"] > old["CommonAttributes"]["Version"]
    assert [(r["Time"], r["Dimensions"]) for r in new["Records"]] == [(r["Time"], r["Dimensions"]) for r in old["Records"]]


def test_rejected_records_come_back_as_rejected_points_and_are_not_resent(
    timestream: TimestreamHotStore, config: StoreConfig
):
    reason = "A record with the same dimensions, timestamp and measure name but a different measure value exists."
    rejection = aws_error(
        "RejectedRecordsException",
        "One or more records have been rejected. See RejectedRecords for details.",
        RejectedRecords=[
            {"RecordIndex": 3, "Reason": reason, "ExistingVersion": 1},
            {"RecordIndex": 7, "Reason": "Measure value is out of range."},
        ],
    )
    t0 = now_ms() - 300_000
    points = [point(1, t0 + i) for i in range(150)]
    second_batch = points[100:]
    # The first batch (100 records) to moto; the second (50) answered with HTTP 419
    # RejectedRecordsException, as AWS does. Told apart by size: the two go out in parallel.
    wire = tap(
        timestream.write_client, "before-send.timestream-write.WriteRecords",
        answer_for=lambda body: (419, rejection) if len(body["Records"]) == len(second_batch) else None,
    )

    result = timestream.write(points)

    assert result.written == 148
    assert [(r.point, r.reason) for r in result.rejected] == [
        (second_batch[3], reason + " (existing version 1)"),
        (second_batch[7], "Measure value is out of range."),
    ]
    # The other 48 of that batch were taken by Timestream in the same call: no third call.
    assert wire.calls == 2
    assert sorted(len(b["Records"]) for b in wire.bodies) == [50, 100]


def test_points_beyond_the_memory_store_window_are_refused_before_sending(timestream: TimestreamHotStore):
    wire = tap(timestream.write_client, "before-send.timestream-write.WriteRecords")
    too_old = point(1, now_ms() - 73 * 3_600_000)
    fresh = point(1, now_ms())

    result = timestream.write([too_old, fresh])

    assert result.written == 1
    assert [(r.point, r.reason) for r in result.rejected] == [(too_old, REJECT_OLDER_THAN_RETENTION)]
    assert [len(b["Records"]) for b in wire.bodies] == [1]


def test_throttling_and_server_errors_are_retried_then_the_write_lands(
    timestream: TimestreamHotStore, config: StoreConfig, sleeps: list[float]
):
    throttled = (400, aws_error("ThrottlingException", "Rate exceeded"))
    internal = (500, aws_error("InternalServerException", "Internal error"))
    wire = tap(timestream.write_client, "before-send.timestream-write.WriteRecords", [throttled, internal])
    points = [point(2, now_ms() - i) for i in range(10)]

    result = timestream.write(points)

    assert result.written == 10 and not result.rejected
    assert wire.calls == 3 and wire.bodies[0] == wire.bodies[2]
    assert len(sleeps) == 2 and all(0 <= s <= FAST_RETRY.max_delay_s for s in sleeps)
    stored = moto_timestream_records(config.endpoint_url, config.timestream_database, config.timestream_table)
    assert len(stored) == 10


def test_after_the_last_attempt_the_error_is_raised(timestream: TimestreamHotStore, sleeps: list[float]):
    throttled = (400, aws_error("ThrottlingException", "Rate exceeded"))
    wire = tap(timestream.write_client, "before-send.timestream-write.WriteRecords", [throttled] * 10)

    with pytest.raises(ClientError) as raised:
        timestream.write([point(3, now_ms())])

    assert raised.value.response["Error"]["Code"] == "ThrottlingException"
    assert "gave up after 4 attempts" in " ".join(raised.value.__notes__)
    assert wire.calls == FAST_RETRY.max_attempts and len(sleeps) == FAST_RETRY.max_attempts - 1


def test_a_validation_error_is_not_retried_and_its_record_is_rejected(timestream: TimestreamHotStore, sleeps: list[float]):
    invalid = (400, aws_error("ValidationException", "Invalid time"))
    wire = tap(timestream.write_client, "before-send.timestream-write.WriteRecords", [invalid])
    bad = point(3, now_ms())

    result = timestream.write([bad])
    assert result.written == 0 and [(r.point, r.reason) for r in result.rejected] == [(bad, "ValidationException: Invalid time")]
    assert wire.calls == 1 and sleeps == []


def test_a_request_refused_as_a_whole_is_halved_until_the_refused_record_stands_alone(timestream: TimestreamHotStore):
    """Timestream refuses a malformed request whole (ValidationException, nothing written). Here any
    request holding the record at `bad_ms` is refused; every other record must be written once."""
    t0 = now_ms() - 60_000
    points = [point(4, t0 + i) for i in range(40)]
    bad_ms = t0 + 13
    refused = (400, aws_error("ValidationException", "Dimension value can not be empty."))
    wire = tap(
        timestream.write_client, "before-send.timestream-write.WriteRecords",
        answer_for=lambda body: refused if any(r["Time"] == str(bad_ms) for r in body["Records"]) else None,
    )

    result = timestream.write(points)

    assert result.written == 39
    assert [(r.point.time_ms, r.reason) for r in result.rejected] == [(bad_ms, "ValidationException: Dimension value can not be empty.")]
    forwarded = [r["Time"] for body in wire.bodies if all(r["Time"] != str(bad_ms) for r in body["Records"]) for r in body["Records"]]
    assert sorted(forwarded) == sorted(str(p.time_ms) for p in points if p.time_ms != bad_ms)  # each once
    # The requests holding it: [0, 40) [0, 20) [10, 20) [10, 15) [12, 15) [13, 15) [13, 14); and
    # one written half beside each of the last six: 13 requests.
    assert wire.calls == 13


def test_connection_errors_are_retried_then_raised(sleeps: list[float]):
    nobody = StoreConfig(endpoint_url=f"http://127.0.0.1:{free_port()}", timestream_database="mobility")
    store = TimestreamHotStore(nobody, retry=FAST_RETRY, sleep=sleeps.append)
    try:
        with pytest.raises(EndpointConnectionError):
            store.write([point(4, now_ms())])
    finally:
        store.close()
    assert len(sleeps) == FAST_RETRY.max_attempts - 1


def _column(name: str, scalar_type: str) -> dict[str, Any]:
    return {"Name": name, "Type": {"ScalarType": scalar_type}}


def _row(*values: str | None) -> dict[str, Any]:
    return {"Data": [{"NullValue": True} if v is None else {"ScalarValue": v} for v in values]}


def test_trace_runs_the_seed_query_and_follows_pages(timestream: TimestreamHotStore, config: StoreConfig):
    vehicle_id = int(uuid.uuid4().int % 10**9)  # the queued answers are keyed by the query text
    since, until = 1736949600000, 1736953200000  # 2025-01-15 14:00 .. 15:00 UTC
    query = (
        f'SELECT time, latitude, longitude, speed_kmh FROM "{config.timestream_database}"."telemetry" '
        f"WHERE vehicle_id = '{vehicle_id}' AND measure_name = 'telemetry' "
        f"AND time BETWEEN from_milliseconds({since}) AND from_milliseconds({until}) ORDER BY time DESC"
    )
    columns = [_column("time", "TIMESTAMP"), _column("latitude", "DOUBLE"),
               _column("longitude", "DOUBLE"), _column("speed_kmh", "DOUBLE")]
    status_ = {"ProgressPercentage": 100.0, "CumulativeBytesScanned": 1024, "CumulativeBytesMetered": 10_000_000}
    pages = [
        {"QueryId": "q1", "NextToken": "page-2", "ColumnInfo": columns, "QueryStatus": status_, "Rows": [
            _row("2025-01-15 14:59:59.250000000", "50.1105", "8.6821", "18.5"),
            _row("2025-01-15 14:59:58.000000000", "50.1104", "8.682", None),
        ]},
        # Timestream may answer a page with no rows while the query is still running.
        {"QueryId": "q1", "NextToken": "page-3", "ColumnInfo": columns, "QueryStatus": status_, "Rows": []},
        {"QueryId": "q1", "ColumnInfo": columns, "QueryStatus": status_, "Rows": [
            _row("2025-01-15 14:00:00.007000000", "50.0", "8.5", "0.0"),
        ]},
    ]
    queue_query_results(config.endpoint_url, config.region, query, pages)

    trace = timestream.trace(vehicle_id, since, until)

    assert trace == [
        TracePoint(1736953199250, 50.1105, 8.6821, 18.5),
        TracePoint(1736953198000, 50.1104, 8.682, None),
        TracePoint(1736949600007, 50.0, 8.5, 0.0),
    ]


def test_trace_with_a_limit_stops_paging_and_asks_for_the_limit(timestream: TimestreamHotStore, config: StoreConfig):
    vehicle_id = int(uuid.uuid4().int % 10**9)
    since = 1736949600000
    query = (
        f'SELECT time, latitude, longitude, speed_kmh FROM "{config.timestream_database}"."telemetry" '
        f"WHERE vehicle_id = '{vehicle_id}' AND measure_name = 'telemetry' "
        f"AND time >= from_milliseconds({since}) ORDER BY time DESC LIMIT 1"
    )
    columns = [_column("time", "TIMESTAMP"), _column("latitude", "DOUBLE"),
               _column("longitude", "DOUBLE"), _column("speed_kmh", "DOUBLE")]
    queue_query_results(config.endpoint_url, config.region, query, [
        {"QueryId": "q2", "NextToken": "more", "ColumnInfo": columns,
         "Rows": [_row("2025-01-15 14:30:00", "50.2", "8.7", "5.5")]},
    ])
    wire = tap(timestream.query_client, "before-send.timestream-query.Query")

    assert timestream.trace(vehicle_id, since, limit=1) == [TracePoint(1736951400000, 50.2, 8.7, 5.5)]
    assert wire.calls == 1  # had what it needed: the NextToken was not followed


# --- DynamoDB -----------------------------------------------------------------------------------


def test_ensure_table_creates_an_on_demand_table_once(dynamodb: DynamoDbVehicleStatusStore, config: StoreConfig):
    assert dynamodb.ensure_table() is False  # the fixture created it
    table = dynamodb.client.describe_table(TableName=config.dynamodb_table)["Table"]
    assert table["KeySchema"] == [{"AttributeName": "vehicle_id", "KeyType": "HASH"}]
    assert table["AttributeDefinitions"] == [{"AttributeName": "vehicle_id", "AttributeType": "N"}]
    assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert table["TableStatus"] == "ACTIVE"


def test_factory_opens_the_dynamodb_backend(config: StoreConfig):
    store = open_status_store(config)
    try:
        assert isinstance(store, DynamoDbVehicleStatusStore)
    finally:
        store.close()


def test_newest_event_wins(dynamodb: DynamoDbVehicleStatusStore):
    assert dynamodb.get(1) is None
    assert dynamodb.upsert([status(1, 2000, battery_percent=50)]) == 1
    assert dynamodb.upsert([status(1, 1000, battery_percent=99)]) == 0  # older: not changed, no error
    assert dynamodb.upsert([status(1, 2000, battery_percent=10)]) == 0  # equal: a replay, not changed
    assert dynamodb.get(1) == status(1, 2000, battery_percent=50)
    assert dynamodb.upsert([status(1, 3000, battery_percent=40, charging=True)]) == 1
    assert dynamodb.get(1) == status(1, 3000, battery_percent=40, charging=True)


def test_mark_offline_only_when_no_newer_event_is_stored(dynamodb: DynamoDbVehicleStatusStore):
    assert dynamodb.mark_offline(2, 1000) is False  # no item yet
    dynamodb.upsert([status(2, 1000)])
    assert dynamodb.mark_offline(2, 1000) is True and dynamodb.get(2).online is False
    dynamodb.upsert([status(2, 2000)])  # the vehicle reports again
    assert dynamodb.get(2).online is True
    assert dynamodb.mark_offline(2, 1000) is False and dynamodb.get(2).online is True


def test_a_batch_is_reduced_to_the_newest_per_vehicle(dynamodb: DynamoDbVehicleStatusStore):
    wire = tap(dynamodb.client, "before-send.dynamodb.PutItem")
    events = [status(v, t, battery_percent=t % 100) for t in (1050, 1010, 1099, 1020) for v in range(30)]

    assert dynamodb.upsert(events) == 30
    assert wire.calls == 30  # one conditional put per vehicle, not per event
    for v in range(30):
        assert dynamodb.get(v) == status(v, 1099, battery_percent=99)
    assert dynamodb.upsert(events) == 0  # a replay of the whole batch changes nothing


def test_none_attributes_are_left_out_and_everything_round_trips(
    dynamodb: DynamoDbVehicleStatusStore, config: StoreConfig
):
    full = status(7, 5000, charging=False, in_use=True, trip_id="trip-3", speed_kmh=21.5, online=False)
    bare = status(8, 5000)
    dynamodb.upsert([full, bare])

    assert dynamodb.get(7) == full and dynamodb.get(8) == bare
    item = dynamodb.client.get_item(TableName=config.dynamodb_table, Key={"vehicle_id": {"N": "8"}})["Item"]
    assert set(item) == {
        "vehicle_id", "last_seen_ms", "latitude", "longitude", "zone_id", "vehicle_type", "battery_percent", "online",
    }
    assert item["last_seen_ms"] == {"N": "5000"} and item["online"] == {"BOOL": True}


def test_an_item_dynamodb_refuses_is_returned_with_its_reason_and_the_others_are_written(dynamodb: DynamoDbVehicleStatusStore):
    refused = (400, {
        "__type": "com.amazon.coral.validate#ValidationException",
        "message": "Item size has exceeded the maximum allowed size",
    })
    wire = tap(dynamodb.client, "before-send.dynamodb.PutItem",
               answer_for=lambda body: refused if body["Item"]["vehicle_id"]["N"] == "12" else None)

    result = dynamodb.write_statuses([status(11, 100), status(12, 100), status(13, 100)])

    assert result.changed == 2
    assert result.refused == ((status(12, 100), "refused by DynamoDB: Item size has exceeded the maximum allowed size"),)
    assert wire.calls == 3  # not retried
    assert dynamodb.get(11) is not None and dynamodb.get(13) is not None and dynamodb.get(12) is None


def test_throttled_puts_are_retried(dynamodb: DynamoDbVehicleStatusStore, sleeps: list[float]):
    throttled = (400, {
        "__type": "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException",
        "message": "The level of configured provisioned throughput for the table was exceeded.",
    })
    wire = tap(dynamodb.client, "before-send.dynamodb.PutItem", [throttled, throttled])

    assert dynamodb.upsert([status(9, 100)]) == 1
    assert wire.calls == 3 and len(sleeps) == 2
    assert dynamodb.get(9) == status(9, 100)


def test_erasure_deletes_the_items_whose_newest_event_is_the_subjects(dynamodb: DynamoDbVehicleStatusStore):
    from connectors.erasure_subject import ErasureSubject

    dynamodb.upsert([status(11, 1000, trip_id="trip-a"), status(12, 2000, trip_id="trip-a"),
                     status(13, 3000, trip_id="trip-b"), status(14, 4000)])
    assert dynamodb.erase(ErasureSubject(trip_id="trip-a")) == 2  # found by a scan
    assert dynamodb.get(11) is None and dynamodb.get(12) is None and dynamodb.get(13).trip_id == "trip-b"
    assert dynamodb.erase(ErasureSubject(vehicle_id=14, since_ms=0, until_ms=4000)) == 0  # its newest is after the range
    assert dynamodb.erase(ErasureSubject(vehicle_id=14, since_ms=4000)) == 1 and dynamodb.get(14) is None
    assert dynamodb.erase(ErasureSubject(vehicle_id=99)) == 0  # no such item: nothing, no error


def test_timestream_cannot_erase_points_and_says_when_they_age_out(timestream: TimestreamHotStore, config: StoreConfig):
    from connectors.erasure_subject import ErasureSubject

    assert timestream.erase(ErasureSubject(trip_id="trip-a")) is None
    assert timestream.ages_out_after_hours == config.retention_hours + 24
