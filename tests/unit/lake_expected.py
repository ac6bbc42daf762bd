"""Independent computations of what the lake's tables should hold, for the lake tests: plain Python
over the generated rows, sharing no code with lake/."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime

HOUR_MS = 3_600_000


def silver_rows(bronze_rows: list[dict]) -> dict[tuple, dict]:
    """(vehicle_id, timestamp) → the row Silver keeps: valid, earliest ingested copy."""
    keep: dict[tuple, dict] = {}
    for row in bronze_rows:
        b, lat, lon = row["battery_percent"], row["latitude"], row["longitude"]
        if b is None or not 0 <= b <= 100 or not -90 <= lat <= 90 or not -180 <= lon <= 180:
            continue
        key = (row["vehicle_id"], row["timestamp"])
        if key not in keep or row["ingested_at_ms"] < keep[key]["ingested_at_ms"]:
            keep[key] = row
    return keep


def rejected_rows(bronze_rows: list[dict]) -> list[dict]:
    return [r for r in bronze_rows if r["battery_percent"] is None or not 0 <= r["battery_percent"] <= 100
            or not -90 <= r["latitude"] <= 90 or not -180 <= r["longitude"] <= 180]


def date_hour(event_ms: int) -> tuple[str, int]:
    moment = datetime.fromtimestamp(event_ms / 1000, tz=UTC)
    return moment.strftime("%Y-%m-%d"), moment.hour


def gold_rows(silver: list[dict]) -> dict[tuple, dict]:
    """(date, hour, vehicle_id) → Gold's aggregates of those Silver rows."""
    groups = defaultdict(list)
    for row in silver:
        groups[(*date_hour(row["event_time_ms"]), row["vehicle_id"])].append(row)
    out = {}
    for key, members in groups.items():
        batteries = [r["battery_percent"] for r in members]
        out[key] = {
            "avg_battery_percent": sum(batteries) / len(batteries),
            "min_battery_percent": min(batteries),
            "max_speed_kmh": max(r["speed_kmh"] for r in members),
            "seconds_in_use": len({r["event_time_ms"] // 1000 for r in members if r["in_use"]}),
            "unique_locations": len({(math.floor(r["latitude"] * 1000), math.floor(r["longitude"] * 1000)) for r in members}),
            "readings": len(members),
        }
    return out


def assert_gold_equals(got: dict[tuple, dict], expected: dict[tuple, dict]) -> None:
    assert got.keys() == expected.keys()
    for key, want in expected.items():
        row = got[key]
        assert math.isclose(row["avg_battery_percent"], want["avg_battery_percent"], rel_tol=1e-9), key
        assert {k: row[k] for k in want if k != "avg_battery_percent"} == {k: v for k, v in want.items() if k != "avg_battery_percent"}, key
