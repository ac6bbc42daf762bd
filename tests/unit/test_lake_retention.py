"""Retention on generated days of Bronze, Silver and Gold and a hot store: exactly the expired days
go, from the tables and from storage (vacuum), each removal in the audit log."""

from __future__ import annotations

import random
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pyarrow.parquet as pq
from deltalake import DeltaTable

from connectors.hot_store import TelemetryPoint
from connectors.hot_store_local import LocalHotStore
from lake import audit, gold, ledger, retention, silver
from lake.tables import LakeTables
from tests.unit.test_lake_silver import _row, _write

HOUR_MS = 3_600_000
NOW = int(datetime(2026, 4, 10, 12, tzinfo=UTC).timestamp() * 1000)
DATES = [f"2026-04-{day:02d}" for day in range(4, 11)]


def _ms(date: str, hour: int = 0, minute: int = 0) -> int:
    return int(datetime.fromisoformat(f"{date}T{hour:02d}:{minute:02d}:00+00:00").timestamp() * 1000)


def _dates(uri: str) -> set[str]:
    return {r["date"] for r in DeltaTable(uri).to_pyarrow_table(columns=["date"]).to_pylist()}


def test_retention_removes_exactly_the_expired_days_from_every_layer(tmp_path):
    rng = random.Random(3)
    tables = LakeTables(*(str(tmp_path / name) for name in ("bronze", "silver", "rejected", "gold", "ledger", "audit")))
    rows = []
    for date in DATES:
        day = [_row(rng, v, _ms(date, 10) + i * 5000, _ms(date, 10) + i * 5000 + 30) for v in (1, 2) for i in range(50)]
        day.append(dict(day[0], timestamp="bad", battery_percent=200.0))
        _write(tmp_path / "bronze" / date, "part-0.parquet", day)
        rows += day
    straddle = [_row(rng, 3, _ms("2026-04-07", 23, 30) + i * 60_000, _ms("2026-04-08", 1)) for i in range(60)]
    _write(tmp_path / "bronze" / "2026-04-08", "part-late.parquet", straddle)
    rows += straddle
    silver.update(tables.silver_paths())
    for date in DATES:
        gold.build_day(tables.silver, tables.gold, date)
    silver_before = DeltaTable(tables.silver).to_pyarrow_table().to_pylist()
    gold_before = DeltaTable(tables.gold).to_pyarrow_table().to_pylist()

    clock = [(NOW - 100 * HOUR_MS) / 1000]
    store = LocalHotStore(str(tmp_path / "hot.sqlite"), retention_hours=72, clock=lambda: clock[0])
    point_times = [NOW - h * HOUR_MS for h in range(0, 100, 4)]
    store.write([TelemetryPoint(1, t, "u0yj", "scooter", 50.1, 8.6, 50) for t in point_times])
    clock[0] = NOW / 1000

    policy = retention.RetentionPolicy(bronze_days=2, silver_days=3, gold_days=4)
    dry = retention.apply(tables, policy, now_ms=NOW, hot_store=store, dry_run=True)
    assert {r.layer for r in dry} == {"bronze", "ledger", "silver", "silver_rejected", "gold"} and audit.read(tables.audit) == []
    removals = retention.apply(tables, policy, now_ms=NOW, hot_store=store)

    bronze_cutoff = _ms("2026-04-08")  # 2 days before 2026-04-10
    kept = sorted((r["vehicle_id"], r["timestamp"]) for r in rows if r["event_time_ms"] >= bronze_cutoff)
    files = sorted(Path(tables.bronze).rglob("*.parquet"))
    assert sorted((r["vehicle_id"], r["timestamp"]) for f in files for r in pq.read_table(f).to_pylist()) == kept
    assert [f.parent.name for f in files] == ["2026-04-08", "2026-04-08", "2026-04-09", "2026-04-10"]  # the straddling file rewritten
    assert min(r["last_hour_ms"] for r in DeltaTable(tables.ledger).to_pyarrow_table().to_pylist()) >= bronze_cutoff

    by_key = lambda r: (r["vehicle_id"], r["timestamp"])  # noqa: E731
    assert sorted(DeltaTable(tables.silver).to_pyarrow_table().to_pylist(), key=by_key) == \
        sorted([r for r in silver_before if r["date"] >= "2026-04-07"], key=by_key)
    assert _dates(tables.silver) == set(DATES[3:]) and _dates(tables.silver_rejected) == set(DATES[3:])
    assert sorted(map(str, DeltaTable(tables.gold).to_pyarrow_table().to_pylist())) == \
        sorted(str(r) for r in gold_before if r["date"] >= "2026-04-06")
    for table, oldest in ((tables.silver, "2026-04-07"), (tables.gold, "2026-04-06")):  # vacuumed: gone from disk too
        on_disk = {p.parent.name.removeprefix("date=") for p in Path(table).rglob("*.parquet") if "_delta_log" not in p.parts}
        assert min(on_disk) == oldest

    with sqlite3.connect(tmp_path / "hot.sqlite") as conn:
        left = sorted(t for (t,) in conn.execute("SELECT time_ms FROM telemetry"))
    assert left == sorted(t for t in point_times if t >= NOW - 72 * HOUR_MS)

    counts = {r.layer: r.rows for r in removals}
    silver_expired = sum(1 for r in silver_before if r["date"] < "2026-04-07")
    assert counts == {
        "bronze": sum(1 for r in rows if r["event_time_ms"] < bronze_cutoff),
        "ledger": 4,  # the files of 04-04 .. 04-07 (the straddling one's last hour is kept)
        "silver": silver_expired,
        "silver_rejected": 3,  # one bad row a day, 04-04 .. 04-06
        "gold": sum(1 for r in gold_before if r["date"] < "2026-04-06"),
        "hot_store": len(point_times) - len(left),
    }
    logged = audit.read(tables.audit)
    assert {(r["layer"], r["rows"]) for r in logged} == set(counts.items()) and {r["action"] for r in logged} == {"retention"}
    assert next(r for r in logged if r["layer"] == "bronze")["files"] == 5  # four deleted, one rewritten

    assert retention.apply(tables, policy, now_ms=NOW, hot_store=store) == []  # nothing more is expired
    assert len(audit.read(tables.audit)) == len(logged)
    assert ledger.read_index(tables.ledger)  # the kept files are still known as read
    store.close()


def test_oldest_kept_date_is_today_minus_the_retention():
    assert retention.oldest_kept(NOW, 90) == ("2026-01-10", _ms("2026-01-10"))
    assert retention.oldest_kept(_ms("2026-04-10"), 1) == ("2026-04-09", _ms("2026-04-09"))
