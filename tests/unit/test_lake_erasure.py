"""GDPR erasure across the layers on generated data: the subject's rows leave Bronze, Silver (and
its rejected rows), Gold, the hot store and the status table; nothing else changes; the audit log
says what went where. Expectations are plain-Python computations over the generated rows."""

from __future__ import annotations

import random
import sqlite3
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from connectors.erasure_subject import ErasureSubject
from connectors.hot_store import TelemetryPoint, VehicleStatus
from connectors.hot_store_local import LocalHotStore
from connectors.vehicle_status_local import LocalVehicleStatusStore
from lake import audit, erasure, gold, silver
from lake.tables import LakeTables
from tests.unit import lake_expected
from tests.unit.test_lake_silver import HOUR0, _row, _write

HOUR_MS = 3_600_000
DAY2 = HOUR0 + 24 * HOUR_MS
TRIP = "trip-1-a"


def _rows(rng, vehicle, trip, start_ms, count, step_ms=1000):
    return [dict(_row(rng, vehicle, start_ms + i * step_ms, start_ms + i * step_ms + 40), trip_id=trip) for i in range(count)]


@pytest.fixture()
def lake(tmp_path):
    rng = random.Random(5)
    tables = LakeTables(*(str(tmp_path / name) for name in ("bronze", "silver", "rejected", "gold", "ledger", "audit")))
    only_trip = _rows(rng, 1, TRIP, HOUR0 + 60_000, 200, 200)  # 5 Hz
    mixed = (_rows(rng, 1, TRIP, HOUR0 + HOUR_MS, 50) + _rows(rng, 2, "trip-2-a", HOUR0 + HOUR_MS, 80)
             + _rows(rng, 3, "trip-3-a", HOUR0 + HOUR_MS - 600_000, 900))
    mixed += [dict(only_trip[7], ingested_at_ms=only_trip[7]["ingested_at_ms"] + 9000)]  # a re-sent copy
    mixed += [dict(mixed[0], timestamp="bad", battery_percent=130.0),  # rejected rows: one of the trip, one not
              dict(mixed[60], timestamp="bad", battery_percent=-1.0)]
    others = (_rows(rng, 1, "trip-1-b", HOUR0 + 2 * HOUR_MS, 60) + _rows(rng, 1, "trip-1-b", DAY2, 30)
              + _rows(rng, 4, None, HOUR0 + 3 * HOUR_MS, 40, 10_000))
    bronze = tmp_path / "bronze"
    _write(bronze / "hour=00", "part-only-trip.parquet", only_trip)
    _write(bronze / "hour=01", "part-mixed.parquet", mixed)
    _write(bronze / "hour=02", "part-others.parquet", others)
    silver.update(tables.silver_paths())
    for date in ("2026-01-01", "2026-01-02"):
        gold.build_day(tables.silver, tables.gold, date)

    everything = only_trip + mixed + others
    store = LocalHotStore(str(tmp_path / "hot.sqlite"), retention_hours=24 * 365, clock=lambda: (DAY2 + HOUR_MS) / 1000)
    store.write([TelemetryPoint(r["vehicle_id"], r["event_time_ms"], "u0yj", "scooter", r["latitude"], r["longitude"],
                                50, trip_id=r["trip_id"]) for r in everything if r["timestamp"] != "bad"])
    status = LocalVehicleStatusStore(str(tmp_path / "hot.sqlite"))
    newest = {}
    for r in everything:
        if r["timestamp"] != "bad" and (r["vehicle_id"] not in newest or r["event_time_ms"] > newest[r["vehicle_id"]]["event_time_ms"]):
            newest[r["vehicle_id"]] = r
    status.upsert([VehicleStatus(v, r["event_time_ms"], r["latitude"], r["longitude"], "u0yj", "scooter", 50, trip_id=r["trip_id"])
                   for v, r in newest.items()])
    yield tables, everything, store, status, tmp_path
    store.close()
    status.close()


def _bronze_rows(tables) -> list[dict]:
    return [row for f in sorted(Path(tables.bronze).rglob("*.parquet")) for row in pq.read_table(f).to_pylist()]


def _key(row: dict) -> tuple:
    return (row["vehicle_id"], row["timestamp"], row["ingested_at_ms"])


def _silver(tables) -> dict[tuple, dict]:
    return {(r["vehicle_id"], r["timestamp"]): r for r in DeltaTable(tables.silver).to_pyarrow_table().to_pylist()}


def _gold(tables) -> dict[tuple, dict]:
    return {(r["date"], r["hour"], r["vehicle_id"]): r for r in DeltaTable(tables.gold).to_pyarrow_table().to_pylist()}


def _hot_rows(tmp_path, where="1=1", params=()):
    with sqlite3.connect(tmp_path / "hot.sqlite") as conn:
        return conn.execute(f"SELECT vehicle_id, time_ms, trip_id FROM telemetry WHERE {where}", params).fetchall()


def test_erasing_a_trip_removes_it_from_every_layer_and_nothing_else(lake):
    tables, everything, store, status, tmp_path = lake
    silver_before, gold_before = _silver(tables), _gold(tables)
    others_file = next(p for p in (tmp_path / "bronze").rglob("part-others.parquet"))
    others_bytes = others_file.read_bytes()
    hot_before = _hot_rows(tmp_path)

    report = erasure.erase(ErasureSubject(trip_id=TRIP), tables, hot_store=store, status_store=status)

    remaining = [r for r in everything if r["trip_id"] != TRIP]
    assert sorted(map(_key, _bronze_rows(tables))) == sorted(map(_key, remaining))
    assert not (tmp_path / "bronze" / "hour=00" / "part-only-trip.parquet").exists()  # held only the trip
    assert others_file.read_bytes() == others_bytes  # held none of it: untouched
    expected_silver = lake_expected.silver_rows(remaining)
    assert _silver(tables) == {k: v for k, v in silver_before.items() if v["trip_id"] != TRIP}
    assert _silver(tables).keys() == expected_silver.keys()
    rejected = DeltaTable(tables.silver_rejected).to_pyarrow_table().to_pylist()
    assert [(r["vehicle_id"], r["trip_id"]) for r in rejected] == [(2, "trip-2-a")]
    lake_expected.assert_gold_equals(_gold(tables), lake_expected.gold_rows(list(expected_silver.values())))
    assert {k: v for k, v in _gold(tables).items() if k[2] != 1} == {k: v for k, v in gold_before.items() if k[2] != 1}
    assert _hot_rows(tmp_path, "trip_id = ?", (TRIP,)) == []
    assert sorted(_hot_rows(tmp_path)) == sorted(r for r in hot_before if r[2] != TRIP)
    assert status.get(1).trip_id == "trip-1-b"  # its newest event is of another trip: kept

    trip_bronze = [r for r in everything if r["trip_id"] == TRIP]
    counts = {r.layer: r.rows for r in report.removals}
    assert counts == {
        "gold": 2,  # vehicle 1's hours 0 and 1 held only the trip; its hour 2 was recomputed, the same
        "bronze": len(trip_bronze),
        "silver": len(lake_expected.silver_rows(trip_bronze)),
        "silver_rejected": 1,
        "hot_store": len({(r["vehicle_id"], r["event_time_ms"]) for r in trip_bronze if r["timestamp"] != "bad"}),
        "vehicle_status": 0,
        "gold_beyond_silver": 0,  # every Gold date is still in Silver
    }
    logged = audit.read(tables.audit)
    assert {(row["layer"], row["rows"]) for row in logged} == set(counts.items())
    assert {row["run_id"] for row in logged} == {report.run_id} and {row["action"] for row in logged} == {"erasure"}
    assert all(TRIP in row["subject"] for row in logged)
    bronze_log = next(row for row in logged if row["layer"] == "bronze")
    assert bronze_log["files"] == 2 and "1 files deleted, 1 rewritten" in bronze_log["note"]

    # No data file of any Delta table (older versions included) still holds a row of the trip.
    for table in (tables.silver, tables.silver_rejected):
        for f in Path(table).rglob("*.parquet"):
            if "_delta_log" not in f.parts:
                assert TRIP not in pq.read_table(f, columns=["trip_id"]).column("trip_id").to_pylist(), f

    # Again: nothing left to erase, nothing changes; Silver's next run rebuilds the rewritten file's hours the same.
    silver_after, gold_after = _silver(tables), _gold(tables)
    again = erasure.erase(ErasureSubject(trip_id=TRIP), tables, hot_store=store, status_store=status)
    assert all(not r.rows for r in again.removals)
    silver.update(tables.silver_paths())
    assert _silver(tables) == silver_after and _gold(tables) == gold_after


def test_erasing_a_vehicle_in_a_range_keeps_its_data_outside_it(lake):
    tables, everything, store, status, tmp_path = lake
    since, until = HOUR0 + HOUR_MS - 300_000, HOUR0 + HOUR_MS + 400_000
    subject = ErasureSubject(vehicle_id=3, since_ms=since, until_ms=until)
    dry = erasure.erase(subject, tables, hot_store=store, status_store=status, dry_run=True)
    in_range = [r for r in everything if r["vehicle_id"] == 3 and since <= r["event_time_ms"] < until]
    assert {r.layer: r.rows for r in dry.removals}["bronze"] == len(in_range)
    assert audit.read(tables.audit) == [] and sorted(map(_key, _bronze_rows(tables))) == sorted(map(_key, everything))

    (tmp_path / "bronze" / "hour=02" / "part-broken.parquet").write_bytes(b"not parquet")
    report = erasure.erase(subject, tables, hot_store=store, status_store=status)
    assert "1 unreadable files not checked (fix and erase again)" in next(r.note for r in report.removals if r.layer == "bronze")
    (tmp_path / "bronze" / "hour=02" / "part-broken.parquet").unlink()
    remaining = [r for r in everything if r not in in_range]
    assert sorted(map(_key, _bronze_rows(tables))) == sorted(map(_key, remaining))
    expected_silver = lake_expected.silver_rows(remaining)
    assert _silver(tables).keys() == expected_silver.keys()
    lake_expected.assert_gold_equals(_gold(tables), lake_expected.gold_rows(list(expected_silver.values())))
    assert _hot_rows(tmp_path, "vehicle_id = 3 AND time_ms >= ? AND time_ms < ?", (since, until)) == []
    assert _hot_rows(tmp_path, "vehicle_id = 3 AND time_ms < ?", (since,)) != []  # before the range: kept
    assert status.get(3) is None  # its newest event (the end of its trip) was in the range


def test_a_subject_is_one_trip_or_one_vehicle_with_a_sane_range():
    with pytest.raises(ValueError, match="not both or neither"):
        ErasureSubject()
    with pytest.raises(ValueError, match="not both or neither"):
        ErasureSubject(trip_id="t", vehicle_id=1)
    with pytest.raises(ValueError, match="trip_id"):
        ErasureSubject(trip_id="x' OR '1'='1")
    with pytest.raises(ValueError, match="empty range"):
        ErasureSubject(vehicle_id=1, since_ms=5, until_ms=5)
    assert ErasureSubject(vehicle_id=7, since_ms=0).literal_where("t") == "vehicle_id = 7 AND t >= 0"


def test_a_vehicles_gold_rows_on_dates_silver_no_longer_holds_go_whole(lake):
    from lake.delta_delete import delete_rows

    tables, everything, store, status, tmp_path = lake
    delete_rows(tables.silver, "date = '2026-01-01'")  # Silver's retention (2 years) passed; Gold keeps 5
    gold_before = _gold(tables)
    report = erasure.erase(ErasureSubject(vehicle_id=1, until_ms=HOUR0 + 2 * HOUR_MS), tables)
    gone = {k for k in gold_before if k[0] == "2026-01-01" and k[2] == 1 and k[1] < 2}
    assert gone and _gold(tables) == {k: v for k, v in gold_before.items() if k not in gone}
    assert {r.layer: r.rows for r in report.removals}["gold_beyond_silver"] == len(gone)
    trip = erasure.erase(ErasureSubject(trip_id="trip-2-a"), tables, dry_run=True)
    assert "cannot be tied to a trip" in next(r.note for r in trip.removals if r.layer == "gold_beyond_silver")
