"""Bronze → Silver on generated Bronze hours, checked against a plain-Python computation."""

from __future__ import annotations

import random

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from deltalake import DeltaTable

from lake import silver
from lake.bronze_index import HOUR_MS, list_bronze
from udfs.enrich import BRONZE_COLUMNS

_ARROW = {"bigint": pa.int64(), "double": pa.float64(), "string": pa.string(), "boolean": pa.bool_()}
SCHEMA = pa.schema([(name, _ARROW[kind]) for name, kind in BRONZE_COLUMNS])
HOUR0 = 1_767_225_600_000  # 2026-01-01T00:00Z


def _row(rng: random.Random, vehicle: int, event_ms: int, ingested_ms: int) -> dict:
    row = {name: None for name, _ in BRONZE_COLUMNS}
    row.update(
        vehicle_id=vehicle, timestamp=f"t{event_ms}", event_time_ms=event_ms,
        latitude=48.0 + rng.random(), longitude=2.0 + rng.random(), battery_percent=rng.uniform(0, 100),
        speed_kmh=rng.uniform(0, 25), in_use=rng.random() < 0.5, trip_id=f"trip-{vehicle}",
        zone_id="u09t", vehicle_type="scooter", ingested_at_ms=ingested_ms,
    )
    return row


def _write(folder, name: str, rows: list[dict]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), folder / name)


def _expected(rows: list[dict], hour_ms: int) -> tuple[dict, list]:
    """Independent: valid rows of the hour, earliest-ingested copy per (vehicle_id, timestamp)."""
    keep, rejected = {}, []
    for row in rows:
        if not hour_ms <= row["event_time_ms"] < hour_ms + HOUR_MS:
            continue
        b, lat, lon = row["battery_percent"], row["latitude"], row["longitude"]
        if b is None or not 0 <= b <= 100 or not -90 <= lat <= 90 or not -180 <= lon <= 180:
            rejected.append(row)
            continue
        key = (row["vehicle_id"], row["timestamp"])
        if key not in keep or row["ingested_at_ms"] < keep[key]["ingested_at_ms"]:
            keep[key] = row
    return keep, rejected


def _silver_rows(uri: str, hour: int) -> dict:
    table = DeltaTable(uri).to_pyarrow_table()
    return {(r["vehicle_id"], r["timestamp"]): r for r in table.to_pylist() if r["hour"] == hour}


def lake_paths(tmp_path) -> silver.LakePaths:
    return silver.LakePaths(*(str(tmp_path / part) for part in ("bronze", "silver", "rejected", "ledger")))


@pytest.fixture()
def lake(tmp_path):
    return lake_paths(tmp_path)


def test_hours_deduplicated_checked_idempotent_and_late_files_picked_up(lake, tmp_path):
    rng = random.Random(7)
    bronze = tmp_path / "bronze"
    hour0 = [_row(rng, v, HOUR0 + s * 1000, HOUR0 + s * 1000 + 50) for v in range(1, 6) for s in range(0, 3600, 97)]
    resent = [dict(r, ingested_at_ms=r["ingested_at_ms"] + 5000, speed_kmh=-1.0) for r in hour0[::4]]
    bad = [dict(hour0[3], timestamp="bad-b", battery_percent=130.0),
           dict(hour0[5], timestamp="bad-lat", latitude=91.0),
           dict(hour0[6], timestamp="bad-null", battery_percent=None)]
    # A file that holds the end of hour 0 and the start of hour 1 (written in hour 1's folder).
    straddle = [_row(rng, 9, HOUR0 + HOUR_MS - 2000 + i * 1000, HOUR0 + HOUR_MS + 10) for i in range(4)]
    _write(bronze / "hour=00", "part-a.parquet", hour0 + bad)
    _write(bronze / "hour=01", "part-b.parquet", resent + straddle)
    everything = hour0 + bad + resent + straddle

    results = silver.update(lake)
    assert [r.hour_ms for r in results] == [HOUR0, HOUR0 + HOUR_MS]
    for hour_index in (0, 1):
        keep, rejected = _expected(everything, HOUR0 + hour_index * HOUR_MS)
        got = _silver_rows(lake.silver, hour_index)
        assert got.keys() == keep.keys()
        assert all(got[k]["ingested_at_ms"] == keep[k]["ingested_at_ms"] for k in keep)
        assert all(got[k]["speed_kmh"] >= 0 for k in keep)  # the re-sent copy (ingested later) lost
    rejected_rows = DeltaTable(lake.silver_rejected).to_pyarrow_table().to_pylist()
    assert sorted((r["timestamp"], r["reason"]) for r in rejected_rows) == [
        ("bad-b", "battery_out_of_range"), ("bad-lat", "latitude_out_of_range"), ("bad-null", "battery_out_of_range")]
    assert results[0].duplicates == len(resent) - sum(1 for r in resent if r["event_time_ms"] >= HOUR0 + HOUR_MS)

    before = DeltaTable(lake.silver).to_pyarrow_table().sort_by([("vehicle_id", "ascending"), ("timestamp", "ascending")])
    assert silver.update(lake) == []  # nothing new
    silver.rebuild(lake, HOUR0)  # re-running an hour changes nothing
    after = DeltaTable(lake.silver).to_pyarrow_table().sort_by([("vehicle_id", "ascending"), ("timestamp", "ascending")])
    assert after.equals(before)

    # A late file for hour 0 lands after hour 0 was built: the next run picks it up, rebuilds hour 0 only.
    late = [_row(rng, 42, HOUR0 + s * 1000, HOUR0 + 7_200_000) for s in range(10)]
    _write(bronze / "hour=02", "part-late.parquet", late)
    results = silver.update(lake)
    assert [r.hour_ms for r in results] == [HOUR0]
    keep, _ = _expected(everything + late, HOUR0)
    assert _silver_rows(lake.silver, 0).keys() == keep.keys()
    assert len(_silver_rows(lake.silver, 1)) == len(_expected(everything, HOUR0 + HOUR_MS)[0])
    assert {r["date"] for r in DeltaTable(lake.silver).to_pyarrow_table().to_pylist()} == {"2026-01-01"}


def test_rebuild_of_an_hour_no_file_holds_is_a_clear_error(lake, tmp_path):
    (tmp_path / "bronze").mkdir()
    with pytest.raises(ValueError, match="no Bronze file holds hour 2026-01-01T00"):
        silver.rebuild(lake, HOUR0)


def test_an_hour_built_in_vehicle_slices_equals_the_hour_built_whole(tmp_path):
    rng = random.Random(12)
    bronze = tmp_path / "bronze"
    rows = [_row(rng, v, HOUR0 + s * 1000, HOUR0 + s * 1000 + 50) for v in range(1, 40) for s in range(0, 3600, 61)]
    resent = [dict(r, ingested_at_ms=r["ingested_at_ms"] + 7000) for r in rows[::9]]
    bad = [dict(rows[4], timestamp="bad", battery_percent=101.0), dict(rows[500], timestamp="bad2", longitude=200.0)]
    edge = [_row(rng, 3, HOUR0 - 5000, HOUR0), _row(rng, 4, HOUR0 + HOUR_MS + 5, HOUR0 + HOUR_MS)]  # other hours
    _write(bronze, "part-a.parquet", rows[: len(rows) // 2] + edge)
    _write(bronze, "part-b.parquet", rows[len(rows) // 2:] + resent + bad)
    filesystem, files = list_bronze(str(bronze))
    results = {}
    for name, max_rows in (("whole", 10**9), ("sliced", 400)):  # ~3,000 rows: 8 slices, each file split across them
        paths = silver.LakePaths(str(bronze), str(tmp_path / name / "s"), str(tmp_path / name / "r"), str(tmp_path / name / "l"))
        results[name] = silver.build_hour(paths, HOUR0, files, filesystem, max_slice_rows=max_rows)
        key = lambda r: (r["vehicle_id"], r["timestamp"])  # noqa: E731
        results[name, "silver"] = sorted(DeltaTable(paths.silver).to_pyarrow_table().to_pylist(), key=key)
        results[name, "rejected"] = sorted(DeltaTable(paths.silver_rejected).to_pyarrow_table().to_pylist(), key=key)
    keep, rejected = _expected(rows + resent + bad + edge, HOUR0)
    assert [(r["vehicle_id"], r["timestamp"]) for r in results["sliced", "silver"]] == sorted(keep)
    assert results["sliced", "silver"] == results["whole", "silver"]
    assert results["sliced", "rejected"] == results["whole", "rejected"] and len(rejected) == 2
    assert results["sliced"] == results["whole"]
    assert len(DeltaTable(str(tmp_path / "sliced" / "s")).file_uris()) > 1  # one file a slice, one commit


def test_a_run_reads_the_footers_of_new_files_only(lake, tmp_path, monkeypatch):
    from lake import bronze_index

    rng = random.Random(2)
    for name in ("part-a.parquet", "part-b.parquet"):
        _write(tmp_path / "bronze", name, [_row(rng, 1, HOUR0 + i, HOUR0 + i) for i in range(5)])
    silver.update(lake)
    opened = []
    real = bronze_index._event_time_range
    monkeypatch.setattr(bronze_index, "_event_time_range", lambda path, filesystem: opened.append(path) or real(path, filesystem))
    _write(tmp_path / "bronze", "part-c.parquet", [_row(rng, 2, HOUR0 + i, HOUR0 + i) for i in range(5)])
    [result] = silver.update(lake)
    assert [p.rsplit("/", 1)[1] for p in opened] == ["part-c.parquet"]
    assert result.silver_rows == 10 + 5 - 5  # vehicle 1's rows of both files are one set of keys, plus vehicle 2's


def test_a_file_without_event_times_holds_no_hour_and_stops_nothing(lake, tmp_path):
    rng = random.Random(3)
    _write(tmp_path / "bronze" / "event_time=unknown", "part-x.parquet", [dict(_row(rng, 1, HOUR0, HOUR0), event_time_ms=None)] * 3)
    _write(tmp_path / "bronze" / "hour=00", "part-a.parquet", [_row(rng, 2, HOUR0 + 5, HOUR0 + 9)])
    [result] = silver.update(lake)
    assert result.silver_rows == 1
    _, files = list_bronze(str(tmp_path / "bronze"))
    assert [f.path.rsplit("/", 2)[1] for f in files if f.unplaced] == ["event_time=unknown"]


def test_rows_with_a_column_the_table_lacks_are_refused_and_leave_no_file(lake, tmp_path):
    rng = random.Random(5)
    _write(tmp_path / "bronze", "part-a.parquet", [_row(rng, 1, HOUR0 + i, HOUR0 + i) for i in range(3)])
    silver.update(lake)
    files_before = sorted(p.name for p in (tmp_path / "silver").rglob("*.parquet"))
    extra = pa.schema([*SCHEMA, ("charger_id", pa.string())])
    rows = [dict(_row(rng, 2, HOUR0 + 9, HOUR0 + 9), charger_id="c1")]
    pq.write_table(pa.Table.from_pylist(rows, schema=extra), tmp_path / "bronze" / "part-b.parquet")
    with pytest.raises(ValueError, match=r"new: \['charger_id'\]"):
        silver.update(lake)
    assert sorted(p.name for p in (tmp_path / "silver").rglob("*.parquet")) == files_before


def test_a_lost_commit_leaves_no_file_behind(lake, tmp_path, monkeypatch):
    from deltalake import DeltaTable as Table

    rng = random.Random(6)
    _write(tmp_path / "bronze", "part-a.parquet", [_row(rng, 1, HOUR0 + i, HOUR0 + i) for i in range(3)])
    silver.update(lake)
    files_before = sorted(p.name for p in (tmp_path / "silver").rglob("*.parquet"))
    _write(tmp_path / "bronze", "part-b.parquet", [_row(rng, 2, HOUR0 + 9, HOUR0 + 9)])

    def lost(self, *args, **kwargs):
        raise RuntimeError("CommitFailedError: a concurrent transaction won")

    monkeypatch.setattr(Table, "create_write_transaction", lost)
    with pytest.raises(RuntimeError, match="concurrent"):
        silver.update(lake)
    assert sorted(p.name for p in (tmp_path / "silver").rglob("*.parquet")) == files_before


def test_a_late_file_for_an_hour_bronze_no_longer_holds_whole_is_added_not_rebuilt(lake, tmp_path):
    rng = random.Random(13)
    old = [_row(rng, v, HOUR0 + s * 1000, HOUR0 + s * 1000 + 50) for v in (1, 2) for s in range(100)]
    old.append(dict(old[0], timestamp="bad", battery_percent=300.0))
    _write(tmp_path / "bronze", "part-old.parquet", old)
    silver.update(lake)
    (tmp_path / "bronze" / "part-old.parquet").unlink()  # expired from Bronze (90 days); Silver keeps 2 years
    before = _silver_rows(lake.silver, 0)
    late = [_row(rng, 3, HOUR0 + 77, HOUR0 + 9 * HOUR_MS),  # new: added
            dict(old[5], ingested_at_ms=old[5]["ingested_at_ms"] + 9 * HOUR_MS, speed_kmh=-1.0),  # a copy: Silver's stays
            dict(old[-1], ingested_at_ms=old[-1]["ingested_at_ms"] + 9 * HOUR_MS)]  # a rejected row's copy: rejected, once more
    _write(tmp_path / "bronze", "part-late.parquet", late)

    [result] = silver.update(lake, complete_from_ms=HOUR0 + 2 * HOUR_MS)
    after = _silver_rows(lake.silver, 0)
    assert after.keys() == before.keys() | {(3, late[0]["timestamp"])}
    assert all(after[k] == before[k] for k in before)  # nothing Silver had was lost or replaced
    assert (result.silver_rows, result.duplicates, result.rejected) == (1, 1, 1)
    rejected = DeltaTable(lake.silver_rejected).to_pyarrow_table().to_pylist()
    assert sorted(r["ingested_at_ms"] for r in rejected) == sorted([old[-1]["ingested_at_ms"], late[2]["ingested_at_ms"]])
    with pytest.raises(ValueError, match="older than Bronze's retention"):
        silver.rebuild(lake, HOUR0, complete_from_ms=HOUR0 + 2 * HOUR_MS)


def test_one_instant_written_two_ways_is_two_rows_and_a_resend_of_either_is_dropped(lake, tmp_path):
    rng = random.Random(14)
    zulu = dict(_row(rng, 8, HOUR0 + 1000, HOUR0 + 1050), timestamp="2026-01-01T00:00:01Z")
    offset = dict(_row(rng, 8, HOUR0 + 1000, HOUR0 + 1060), timestamp="2026-01-01T01:00:01+01:00")  # the same instant
    resent = dict(offset, ingested_at_ms=HOUR0 + 9000, speed_kmh=-1.0)
    others = [_row(rng, 8, HOUR0 + s * 1000, HOUR0 + s * 1000) for s in range(2, 50)]
    _write(tmp_path / "bronze", "part-a.parquet", [resent, zulu] + others + [offset])
    silver.update(lake)
    keep, _ = _expected([resent, zulu, offset] + others, HOUR0)
    got = _silver_rows(lake.silver, 0)
    assert got.keys() == keep.keys() and {(8, zulu["timestamp"]), (8, offset["timestamp"])} <= got.keys()
    assert got[8, offset["timestamp"]]["ingested_at_ms"] == offset["ingested_at_ms"]  # the earlier copy


def test_a_broken_bronze_file_is_named_skipped_and_retried_not_a_stop(lake, tmp_path):
    rng = random.Random(15)
    _write(tmp_path / "bronze", "part-a.parquet", [_row(rng, 1, HOUR0 + 5, HOUR0 + 9)])
    (tmp_path / "bronze" / "part-broken.parquet").write_bytes(b"PAR1 half a file")
    [result] = silver.update(lake)
    assert result.silver_rows == 1
    _, files = list_bronze(str(tmp_path / "bronze"))
    [broken] = [f for f in files if f.unreadable]
    assert broken.path.endswith("part-broken.parquet") and not broken.hours()
    assert silver.pending_hours(lake)[1] == [broken]  # not recorded as read: looked at again next run
