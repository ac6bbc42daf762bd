"""What `telemetry query …` asks the stores, as plain functions returning rows; formatting is
fleet/cli/query.py's. Each takes the store objects (or the alert log's path, or DLQ records)
it reads, so a test can hand it the real store classes on a temporary file.

  trace    a vehicle's GPS trace, newest first (the seed's example query): any hot store backend
  status   a vehicle's last known state: any vehicle status backend
  alerts   recent alerts from the JSON-lines alert log (connectors/alert_log.py)
  zones    events per zone_id in a time window: a hot store with `zone_counts` (the local one)
  dlq      DLQ records counted by stage and reason (the records come from the topic, read by
           connectors/kafka_time_reader.py)

A vehicle neither store knows is UnknownVehicle: an empty trace of a known vehicle is an answer
(it was quiet), of an unknown one most likely a typo.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from connectors.hot_store import HotStore, TracePoint, VehicleStatus, VehicleStatusStore, ZoneCount
from udfs.telemetry_schema import parse_timestamp_ms


class UnknownVehicle(LookupError):
    def __init__(self, vehicle_id: int):
        super().__init__(f"vehicle {vehicle_id} is unknown: the vehicle status table has no row for it")
        self.vehicle_id = vehicle_id


class QueryNotSupported(RuntimeError):
    """The configured backend cannot answer this query."""


def vehicle_status(status_store: VehicleStatusStore, vehicle_id: int) -> VehicleStatus:
    status = status_store.get(vehicle_id)
    if status is None:
        raise UnknownVehicle(vehicle_id)
    return status


def vehicle_trace(
    hot_store: HotStore, status_store: VehicleStatusStore, vehicle_id: int, *, since_ms: int, limit: int | None = None,
) -> list[TracePoint]:
    """Points since `since_ms`, newest first; an empty trace only for a vehicle the status table knows."""
    points = hot_store.trace(vehicle_id, since_ms=since_ms, limit=limit)
    if not points and limit != 0:
        vehicle_status(status_store, vehicle_id)
    return points


@dataclass(frozen=True)
class ZoneTally:
    zones: list[ZoneCount]  # the busiest `limit`, most events first
    zone_total: int  # zones with any event in the window
    event_total: int


def zone_counts(hot_store: HotStore, *, since_ms: int, limit: int | None = 20) -> ZoneTally:
    count = getattr(hot_store, "zone_counts", None)
    if count is None:
        raise QueryNotSupported(
            f"events per zone need the local hot store; this profile's is {type(hot_store).__name__} "
            "(Timestream answers the same GROUP BY zone_id in its console)"
        )
    zones = count(since_ms)
    return ZoneTally(zones[:limit] if limit is not None else zones, len(zones), sum(z.events for z in zones))


@dataclass(frozen=True)
class AlertSelection:
    alerts: list[dict[str, Any]]  # newest first, at most `limit`
    matched: int  # alerts that passed the filters, before the limit
    unreadable_lines: int  # lines of the log that are not a JSON object (a torn last line after a crash)


def alert_time_ms(alert: dict[str, Any]) -> int | None:
    """When the alert was raised (the job's clock); an alert without it, by its event time.

    Raised, not event time: an offline alert's event time is the vehicle's last event, ten
    minutes before anyone could know."""
    raised = alert.get("raised_at_ms")
    if isinstance(raised, int) and not isinstance(raised, bool):
        return raised
    return parse_timestamp_ms(alert.get("event_time"))


def recent_alerts(
    alert_log_path: str,
    *,
    since_ms: int,
    kinds: Sequence[str] = (),
    vehicle_id: int | None = None,
    limit: int | None = 20,
) -> AlertSelection:
    """Alerts of the log raised at or after `since_ms`, of the given kinds (all if empty) and vehicle."""
    selected: list[tuple[int, int, dict[str, Any]]] = []
    unreadable = 0
    for position, alert in enumerate(_alert_lines(alert_log_path)):
        if alert is None:
            unreadable += 1
            continue
        at_ms = alert_time_ms(alert)
        if at_ms is None or at_ms < since_ms:
            continue
        if kinds and alert.get("kind") not in kinds:
            continue
        if vehicle_id is not None and alert.get("vehicle_id") != vehicle_id:
            continue
        selected.append((at_ms, position, alert))
    # Newest first; of equal times, the later line first (the order the log was written in, reversed).
    selected.sort(key=lambda item: (item[0], item[1]), reverse=True)
    shown = selected if limit is None else selected[:limit]
    return AlertSelection([alert for _, _, alert in shown], len(selected), unreadable)


def _alert_lines(path: str) -> Iterable[dict[str, Any] | None]:
    """Each line of the log as an object, None for one that is not; a missing log is an empty one
    (the anomaly job has not raised anything yet)."""
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        return
    with handle:
        for line in handle:
            if not line.strip():
                continue
            try:
                value = orjson.loads(line)
            except orjson.JSONDecodeError:
                yield None
                continue
            yield value if isinstance(value, dict) else None


@dataclass(frozen=True)
class DlqCount:
    stage: str
    reason: str
    records: int
    first_rejected_at: str | None
    last_rejected_at: str | None


@dataclass(frozen=True)
class DlqTally:
    counts: list[DlqCount]  # most records first, then by stage and reason
    records: int
    unreadable: int  # values that are not a DLQ record (not JSON, or no reason)


def dlq_counts(values: Iterable[bytes]) -> DlqTally:
    """DLQ records (udfs/dlq.py's JSON) counted by (stage, reason), with the span of their rejected_at."""
    counts: Counter[tuple[str, str]] = Counter()
    first: dict[tuple[str, str], tuple[int, str]] = {}
    last: dict[tuple[str, str], tuple[int, str]] = {}
    unreadable = 0
    for value in values:
        try:
            record = orjson.loads(value)
        except orjson.JSONDecodeError:
            record = None
        if not isinstance(record, dict) or not isinstance(record.get("reason"), str):
            unreadable += 1
            continue
        key = (str(record.get("stage") or "?"), record["reason"])
        counts[key] += 1
        at_ms = parse_timestamp_ms(record.get("rejected_at"))
        if at_ms is not None:
            seen = (at_ms, record["rejected_at"])
            first[key] = min(first.get(key, seen), seen)
            last[key] = max(last.get(key, seen), seen)
    rows = [
        DlqCount(stage, reason, n, first[(stage, reason)][1] if (stage, reason) in first else None,
                 last[(stage, reason)][1] if (stage, reason) in last else None)
        for (stage, reason), n in counts.items()
    ]
    rows.sort(key=lambda row: (-row.records, row.stage, row.reason))
    return DlqTally(rows, sum(counts.values()), unreadable)
