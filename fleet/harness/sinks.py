"""Read back what a harness run left in every sink, as keys to count against fault_expectations.

Exactly-once sinks are read the way their consumers read them: the enriched topic and the DLQ
read_committed, Bronze only from committed files (in-progress files are dot-prefixed and
invisible), the hot store by its rows. Alerts go out at least once, so both the records and the
distinct alert ids are kept.
"""

from __future__ import annotations

import base64
import sqlite3
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import orjson

from connectors.kafka_clients import read_values
from udfs.telemetry_schema import parse_timestamp_ms


@dataclass(frozen=True)
class SinkContents:
    enriched: Counter  # (vehicle_id, event time ms) → copies
    bronze: Counter
    hot_store: Counter  # (vehicle_id, time) → records the store holds for it
    hot_store_rewrites: int  # writes that replaced a stored record (Timestream; 0 locally)
    dlq: Counter  # (reason, payload bytes) → copies
    alert_records: int
    alerts: Counter  # alert_id → copies
    alert_kinds: dict[str, str]  # alert_id → kind
    alert_episodes: dict[str, int]  # alert_id → episode start (epoch ms)


def enriched_keys(bootstrap: str, topic: str) -> Counter:
    keys: Counter = Counter()
    for value in read_values(bootstrap, topic):
        event = orjson.loads(value)
        keys[(event["vehicle_id"], parse_timestamp_ms(event["timestamp"]))] += 1
    return keys


def bronze_keys(root: Path) -> Counter:
    import pyarrow.parquet as pq

    keys: Counter = Counter()
    if not root.exists():
        return keys
    for path in root.rglob("*.parquet"):
        if path.name.startswith("."):
            continue  # in progress: not committed by a checkpoint yet
        table = pq.read_table(path, columns=["vehicle_id", "event_time_ms"])
        keys.update(zip(table.column("vehicle_id").to_pylist(), table.column("event_time_ms").to_pylist()))
    return keys


def hot_store_keys(sqlite_path: Path) -> Counter:
    if not sqlite_path.exists():
        return Counter()
    with sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True) as conn:
        return Counter(conn.execute("SELECT vehicle_id, time_ms FROM telemetry").fetchall())


def timestream_keys(moto_endpoint: str, database: str, table: str) -> tuple[Counter, int]:
    """The records moto's Timestream holds, as Timestream would hold them (timestream_identities)."""
    import urllib.request

    with urllib.request.urlopen(f"{moto_endpoint}/moto-api/data.json", timeout=30) as response:
        dump = orjson.loads(response.read())
    for candidate in dump.get("timestreamwrite", {}).get("TimestreamTable", []):
        if (candidate["db_name"], candidate["name"]) == (database, table):
            return timestream_identities(candidate["records"])
    return Counter(), 0


def timestream_identities(records: list[dict]) -> tuple[Counter, int]:
    """moto keeps every write; Timestream keeps one record per identity (dimensions, time, measure
    name), the newest version. So: per event (vehicle_id, time), how many records Timestream would
    hold — more than one is a duplicate series — and how many writes were rewrites of one."""
    identities: set = set()
    for record in records:
        dimensions = tuple(sorted((d["Name"], d["Value"]) for d in record["Dimensions"]))
        identities.add((dimensions, int(record["Time"]), record.get("MeasureName", "")))
    per_event: Counter = Counter()
    for dimensions, time_ms, _ in identities:
        per_event[(int(dict(dimensions)["vehicle_id"]), time_ms)] += 1
    return per_event, len(records) - len(identities)


def dlq_entries(bootstrap: str, topic: str) -> Counter:
    entries: Counter = Counter()
    for value in read_values(bootstrap, topic):
        record = orjson.loads(value)
        payload = record["payload"]
        raw = base64.b64decode(payload) if record["payload_encoding"] == "base64" else payload.encode("utf-8")
        entries[(record["reason"], raw)] += 1
    return entries


def alert_entries(bootstrap: str, topic: str) -> tuple[int, Counter, dict[str, str], dict[str, int]]:
    ids: Counter = Counter()
    kinds: dict[str, str] = {}
    episodes: dict[str, int] = {}
    records = read_values(bootstrap, topic)
    for value in records:
        alert = orjson.loads(value)
        ids[alert["alert_id"]] += 1
        kinds[alert["alert_id"]] = alert["kind"]
        episodes[alert["alert_id"]] = parse_timestamp_ms(alert["episode_start"])
    return len(records), ids, kinds, episodes


def read_sinks(bootstrap: str, *, enriched_topic: str, dlq_topic: str, alerts_topic: str, bronze_root: Path, hot_store: Path,
               timestream: tuple[str, str, str] | None = None) -> SinkContents:
    """`timestream`: (moto endpoint, database, table) when the hot store is Timestream on moto."""
    records, alerts, kinds, episodes = alert_entries(bootstrap, alerts_topic)
    hot, rewrites = timestream_keys(*timestream) if timestream else (hot_store_keys(hot_store), 0)
    return SinkContents(
        enriched=enriched_keys(bootstrap, enriched_topic),
        bronze=bronze_keys(bronze_root),
        hot_store=hot,
        hot_store_rewrites=rewrites,
        dlq=dlq_entries(bootstrap, dlq_topic),
        alert_records=records,
        alerts=alerts,
        alert_kinds=kinds,
        alert_episodes=episodes,
    )
