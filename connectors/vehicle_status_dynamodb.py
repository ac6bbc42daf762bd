"""The vehicle status table on DynamoDB (the seed's last-known-state table), via boto3.

Newest event wins through a conditional put: the item is written only if it is new or the stored
last_seen_ms is older. Conditional writes cannot go through BatchWriteItem, so one upsert call
first keeps only the newest status per vehicle, then issues the puts concurrently on a small
thread pool (boto3 clients are thread-safe). Retries and the client come from
connectors.aws_clients, shared with the Timestream hot store.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import ClientError

from connectors.aws_clients import RetryPolicy, call_with_retry, error_code, make_client
from connectors.erasure_subject import ErasureSubject
from connectors.hot_store import StatusWrite, StoreConfig, VehicleStatus, newest_per_vehicle

NEWER_THAN_STORED = "attribute_not_exists(vehicle_id) OR last_seen_ms < :ts"

# VehicleStatus field -> DynamoDB type; vehicle_id (the hash key) and last_seen_ms come first.
_ATTRIBUTE_TYPES = {
    "vehicle_id": "N",
    "last_seen_ms": "N",
    "latitude": "N",
    "longitude": "N",
    "zone_id": "S",
    "vehicle_type": "S",
    "battery_percent": "N",
    "charging": "BOOL",
    "in_use": "BOOL",
    "trip_id": "S",
    "speed_kmh": "N",
    "online": "BOOL",
}
_INTEGER_ATTRIBUTES = frozenset({"vehicle_id", "last_seen_ms", "battery_percent"})


def _number(name: str, value: int | float) -> str:
    return str(int(value)) if name in _INTEGER_ATTRIBUTES else repr(float(value))


def to_item(status: VehicleStatus) -> dict[str, dict[str, Any]]:
    """The DynamoDB item; None-valued optional attributes are left out, not stored as NULL."""
    item: dict[str, dict[str, Any]] = {}
    for name, kind in _ATTRIBUTE_TYPES.items():
        value = getattr(status, name)
        if value is None:
            continue
        if kind == "N":
            item[name] = {"N": _number(name, value)}
        elif kind == "BOOL":
            item[name] = {"BOOL": bool(value)}
        else:
            item[name] = {"S": str(value)}
    return item


def from_item(item: dict[str, dict[str, Any]]) -> VehicleStatus:
    values: dict[str, Any] = {}
    for name, kind in _ATTRIBUTE_TYPES.items():
        if name not in item:
            continue
        raw = item[name][kind]
        if kind == "N":
            values[name] = int(raw) if name in _INTEGER_ATTRIBUTES else float(raw)
        else:
            values[name] = raw
    return VehicleStatus(**values)


class DynamoDbVehicleStatusStore:
    def __init__(
        self,
        config: StoreConfig,
        *,
        retry: RetryPolicy = RetryPolicy(),
        sleep: Callable[[float], None] = time.sleep,
        max_workers: int = 8,
        client: Any = None,
    ):
        self.config = config
        self.table = config.dynamodb_table
        self.retry = retry
        self._sleep = sleep
        self._client = client or make_client("dynamodb", config)
        # Threads start only when first used; created here so concurrent upserts share one pool.
        self._pool: ThreadPoolExecutor | None = (
            ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="vehicle-status") if max_workers > 1 else None
        )

    @property
    def client(self) -> Any:
        return self._client

    def ensure_table(self) -> bool:
        """Create the table (on-demand capacity) if missing; True if this call created it."""
        try:
            self._call(lambda: self._client.describe_table(TableName=self.table), "DynamoDB DescribeTable")
            return False
        except ClientError as error:
            if error_code(error) != "ResourceNotFoundException":
                raise
        try:
            self._call(lambda: self._client.create_table(
                TableName=self.table,
                KeySchema=[{"AttributeName": "vehicle_id", "KeyType": "HASH"}],
                AttributeDefinitions=[{"AttributeName": "vehicle_id", "AttributeType": "N"}],
                BillingMode="PAY_PER_REQUEST",
            ), "DynamoDB CreateTable")
        except ClientError as error:
            if error_code(error) != "ResourceInUseException":  # created meanwhile by another subtask
                raise
            return False
        self._client.get_waiter("table_exists").wait(TableName=self.table, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        return True

    def upsert(self, statuses: Sequence[VehicleStatus]) -> int:
        return self.write_statuses(statuses).changed

    def write_statuses(self, statuses: Sequence[VehicleStatus]) -> StatusWrite:
        newest = newest_per_vehicle(statuses)
        if len(newest) <= 1 or self._pool is None:
            outcomes = [self._put_if_newer(s) for s in newest]
        else:
            # map() re-raises the first failure; the sink then fails and Flink replays (idempotently).
            outcomes = list(self._pool.map(self._put_if_newer, newest))
        refused = tuple((s, why) for s, why in zip(newest, outcomes) if isinstance(why, str))
        return StatusWrite(sum(outcome is True for outcome in outcomes), refused)

    def mark_offline(self, vehicle_id: int, last_seen_ms: int) -> bool:
        """Offline, unless an event newer than `last_seen_ms` was stored meanwhile (then it is back)."""
        try:
            self._call(
                lambda: self._client.update_item(
                    TableName=self.table,
                    Key={"vehicle_id": {"N": str(int(vehicle_id))}},
                    UpdateExpression="SET #online = :off",  # `online` is a DynamoDB reserved word
                    ConditionExpression="attribute_exists(vehicle_id) AND last_seen_ms <= :ts",
                    ExpressionAttributeNames={"#online": "online"},
                    ExpressionAttributeValues={":off": {"BOOL": False}, ":ts": {"N": str(int(last_seen_ms))}},
                ),
                "DynamoDB UpdateItem",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def mark_offline_many(self, offline: Sequence[tuple[int, int]]) -> int:
        """One conditional UpdateItem each: DynamoDB's batch writes take no conditions."""
        return sum(self.mark_offline(vehicle_id, last_seen_ms) for vehicle_id, last_seen_ms in offline)

    def get(self, vehicle_id: int) -> VehicleStatus | None:
        response = self._call(
            lambda: self._client.get_item(
                TableName=self.table, Key={"vehicle_id": {"N": str(int(vehicle_id))}}, ConsistentRead=True
            ),
            "DynamoDB GetItem",
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def erase(self, subject: ErasureSubject) -> int:
        """A trip: the items whose newest event is of that trip (a scan: the table holds one item
        per vehicle). A vehicle: its item, if its newest event is in the range. Deletes are
        conditional, so a newer status stored meanwhile is kept."""
        condition, values = "attribute_exists(vehicle_id)", {}
        if subject.trip_id is not None:
            condition += " AND trip_id = :trip"
            values[":trip"] = {"S": subject.trip_id}
        if subject.since_ms is not None:
            condition += " AND last_seen_ms >= :since"
            values[":since"] = {"N": str(int(subject.since_ms))}
        if subject.until_ms is not None:
            condition += " AND last_seen_ms < :until"
            values[":until"] = {"N": str(int(subject.until_ms))}
        values_arg = {"ExpressionAttributeValues": values} if values else {}
        if subject.vehicle_id is not None:
            vehicles = [subject.vehicle_id]
        else:
            vehicles = []
            scan = {"TableName": self.table, "ProjectionExpression": "vehicle_id", "FilterExpression": condition,
                    "ConsistentRead": True, **values_arg}
            while True:
                page = self._call(lambda: self._client.scan(**scan), "DynamoDB Scan")
                vehicles += [int(item["vehicle_id"]["N"]) for item in page.get("Items", [])]
                if "LastEvaluatedKey" not in page:
                    break
                scan["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        erased = 0
        for vehicle_id in vehicles:

            def delete(v: int = vehicle_id) -> Any:
                return self._client.delete_item(
                    TableName=self.table, Key={"vehicle_id": {"N": str(int(v))}}, ConditionExpression=condition, **values_arg,
                )

            try:
                self._call(delete, "DynamoDB DeleteItem")
                erased += 1
            except ClientError as error:
                if error_code(error) != "ConditionalCheckFailedException":
                    raise
        return erased

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if hasattr(self._client, "close"):
            self._client.close()

    def _put_if_newer(self, status: VehicleStatus) -> bool | str:
        """True if the item changed. A stored event as new or newer fails the condition: not an
        error, just no change. (If a put succeeds but its answer is lost, the retry fails the
        condition and counts as unchanged; the item is right either way.) An item DynamoDB refuses
        (ValidationException: too large, a value it does not take) returns DynamoDB's reason."""
        try:
            self._call(
                lambda: self._client.put_item(
                    TableName=self.table,
                    Item=to_item(status),
                    ConditionExpression=NEWER_THAN_STORED,
                    ExpressionAttributeValues={":ts": {"N": str(int(status.last_seen_ms))}},
                ),
                "DynamoDB PutItem",
            )
        except ClientError as error:
            if error_code(error) == "ConditionalCheckFailedException":
                return False
            if error_code(error) == "ValidationException":
                return f"refused by DynamoDB: {error.response.get('Error', {}).get('Message', error)}"
            raise
        return True

    def _call(self, call: Callable[[], Any], what: str) -> Any:
        return call_with_retry(call, policy=self.retry, what=what, sleep=self._sleep)

    def __enter__(self) -> DynamoDbVehicleStatusStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
