"""Silver → Gold on generated Bronze, checked against a plain-Python computation."""

from __future__ import annotations

import math
import random
from collections import defaultdict

from deltalake import DeltaTable

from lake import gold, silver
from lake.bronze_index import HOUR_MS
from tests.unit.test_lake_silver import HOUR0, _row, _write, lake_paths


def test_gold_hourly_summaries_equal_an_independent_computation_and_replace_the_date(tmp_path):
    lake = lake_paths(tmp_path)
    rng = random.Random(11)
    rows = []
    for vehicle in range(1, 8):
        for hour in (0, 1, 23):
            # 5 Hz for a stretch (many readings in one second), then every 10 s.
            start = HOUR0 + hour * HOUR_MS
            rows += [_row(rng, vehicle, start + i * 200, start + i * 200 + 30) for i in range(150)]
            rows += [_row(rng, vehicle, start + 60_000 + i * 10_000, start + 60_000 + i * 10_000 + 30) for i in range(40)]
    next_day = [_row(rng, 1, HOUR0 + 24 * HOUR_MS + 5, HOUR0 + 24 * HOUR_MS + 50)]
    _write(tmp_path / "bronze", "part-a.parquet", rows + next_day)
    silver.update(lake)
    gold_uri = str(tmp_path / "gold")

    result = gold.build_day(lake.silver, gold_uri, "2026-01-01")
    groups = defaultdict(list)
    for row in rows:
        groups[((row["event_time_ms"] - HOUR0) // HOUR_MS, row["vehicle_id"])].append(row)
    got = {(g["hour"], g["vehicle_id"]): g for g in DeltaTable(gold_uri).to_pyarrow_table().to_pylist()}
    assert result.gold_rows == len(groups) == len(got) and result.silver_rows == len(rows)
    for key, members in groups.items():
        g = got[key]
        batteries = [r["battery_percent"] for r in members]
        assert math.isclose(g["avg_battery_percent"], sum(batteries) / len(batteries), rel_tol=1e-9)
        assert g["min_battery_percent"] == min(batteries)
        assert g["max_speed_kmh"] == max(r["speed_kmh"] for r in members)
        assert g["seconds_in_use"] == len({r["event_time_ms"] // 1000 for r in members if r["in_use"]})
        cells = {(math.floor(r["latitude"] * 1000), math.floor(r["longitude"] * 1000)) for r in members}
        assert g["unique_locations"] == len(cells)
        assert g["readings"] == len(members)

    before = DeltaTable(gold_uri).to_pyarrow_table()
    gold.build_day(lake.silver, gold_uri, "2026-01-01")  # replaces the date: same rows, no doubles
    by_key = [("vehicle_id", "ascending"), ("hour", "ascending")]
    assert DeltaTable(gold_uri).to_pyarrow_table().sort_by(by_key).equals(before.sort_by(by_key))
    gold.build_day(lake.silver, gold_uri, "2026-01-02")
    assert DeltaTable(gold_uri).to_pyarrow_table().num_rows == len(groups) + 1
