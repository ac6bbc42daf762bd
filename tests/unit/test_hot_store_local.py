"""The local hot store on a real SQLite file: idempotency, traces, retention, concurrency."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.hot_store import (
    REJECT_INVALID_POSITION,
    REJECT_OLDER_THAN_RETENTION,
    StoreConfig,
    TelemetryPoint,
    TracePoint,
    open_hot_store,
)
from connectors.hot_store_local import LocalHotStore
from connectors.sqlite_db import StoreClosedError

HOUR_MS = 3_600_000
REPO = Path(__file__).resolve().parents[2]


def now_ms() -> int:
    return int(time.time() * 1000)


def point(vehicle_id: int, time_ms: int, **overrides) -> TelemetryPoint:
    base = TelemetryPoint(
        vehicle_id=vehicle_id, time_ms=time_ms, zone_id="u0yjjd", vehicle_type="scooter",
        latitude=50.1105, longitude=8.6821, battery_percent=68, speed_kmh=12.5,
    )
    return replace(base, **overrides)


class FakeClock:
    def __init__(self, start_ms: int):
        self.ms = start_ms

    def __call__(self) -> float:
        return self.ms / 1000


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "nested" / "hot.sqlite")  # the parent folder does not exist yet


@pytest.fixture
def store(db_path: str):
    s = LocalHotStore(db_path)
    yield s
    s.close()


def test_opens_in_wal_mode_and_creates_parent_folders(store: LocalHotStore, db_path: str):
    assert Path(db_path).is_file()
    with closing(sqlite3.connect(db_path)) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        columns = [row[1] for row in conn.execute("PRAGMA table_info(telemetry)")]
        assert columns == list(TelemetryPoint.__dataclass_fields__)


def test_empty_path_is_a_clear_error():
    with pytest.raises(ValueError, match="local_path is empty"):
        LocalHotStore("")
    with pytest.raises(ValueError, match="local_path is empty"):
        open_hot_store(StoreConfig(hot_store_backend="local", local_path=""))


def test_factory_opens_the_local_backend(tmp_path: Path):
    s = open_hot_store(StoreConfig(local_path=str(tmp_path / "f.sqlite"), retention_hours=5))
    try:
        assert isinstance(s, LocalHotStore) and s.retention_hours == 5
    finally:
        s.close()


def test_every_field_round_trips(store: LocalHotStore, db_path: str):
    full = point(
        7, now_ms(), heading=270.0, altitude=112.5, battery_voltage=36.4, battery_temperature=21.5,
        charging=False, in_use=True, trip_id="trip-42", odometer_km=1234.5,
    )
    assert store.write([full]).written == 1
    with closing(sqlite3.connect(db_path)) as conn:
        row = conn.execute("SELECT * FROM telemetry").fetchone()
    expected = tuple(int(v) if isinstance(v, bool) else v for v in (getattr(full, f) for f in TelemetryPoint.__dataclass_fields__))
    assert row == expected


def test_rewriting_the_same_points_leaves_one_each(store: LocalHotStore):
    t = now_ms()
    batch = [point(1, t - i * 1000) for i in range(50)]
    assert store.write(batch).written == 50
    assert store.write(batch).written == 50  # a replay after a Flink restart
    assert store.count() == 50
    # Same key, new values: the later write is what stays (upsert, not a second row).
    store.write([point(1, t, latitude=51.0, speed_kmh=None)])
    assert store.count() == 50
    assert store.trace(1, t, t) == [TracePoint(t, 51.0, 8.6821, None)]


def test_trace_is_newest_first_within_range_and_limit(store: LocalHotStore):
    t0 = now_ms() - 60_000
    store.write([point(1, t0 + i * 1000, speed_kmh=float(i)) for i in range(10)])
    store.write([point(2, t0 + i * 1000) for i in range(10)])  # another vehicle must not leak in

    everything = store.trace(1, since_ms=0)
    assert [p.time_ms for p in everything] == [t0 + i * 1000 for i in reversed(range(10))]
    assert everything[0].speed_kmh == 9.0

    window = store.trace(1, since_ms=t0 + 2000, until_ms=t0 + 5000)  # both ends inclusive
    assert [p.time_ms for p in window] == [t0 + 5000, t0 + 4000, t0 + 3000, t0 + 2000]

    assert [p.time_ms for p in store.trace(1, since_ms=0, limit=3)] == [t0 + 9000, t0 + 8000, t0 + 7000]
    assert store.trace(1, since_ms=0, limit=0) == []
    assert store.trace(3, since_ms=0) == []
    with pytest.raises(ValueError):
        store.trace(1, since_ms=0, limit=-1)


def test_points_older_than_retention_are_rejected_not_written(db_path: str):
    clock = FakeClock(1_000 * HOUR_MS)
    store = LocalHotStore(db_path, retention_hours=72, clock=clock)
    try:
        edge = clock.ms - 72 * HOUR_MS
        old, at_edge, fresh = point(1, edge - 1), point(1, edge), point(1, clock.ms)
        bad = point(2, clock.ms, latitude=float("nan"))
        result = store.write([old, at_edge, fresh, bad])
        assert result.written == 2
        assert [(r.point, r.reason) for r in result.rejected] == [
            (old, REJECT_OLDER_THAN_RETENTION), (bad, REJECT_INVALID_POSITION),
        ]
        assert [p.time_ms for p in store.trace(1, 0)] == [fresh.time_ms, at_edge.time_ms]
    finally:
        store.close()


def test_enforce_retention_deletes_and_counts(db_path: str):
    clock = FakeClock(1_000 * HOUR_MS)
    store = LocalHotStore(db_path, retention_hours=2, clock=clock)
    try:
        start = clock.ms
        store.write([point(1, start - i * 60_000) for i in range(100)])  # 0..99 minutes old
        later = start + HOUR_MS  # now 60..159 minutes old: those past 120 (39 of them) go
        assert store.enforce_retention(later) == 39
        assert store.count() == 61
        assert min(p.time_ms for p in store.trace(1, 0)) == later - 2 * HOUR_MS  # the edge stays
        assert store.enforce_retention(later) == 0
    finally:
        store.close()


def test_write_sweeps_retention_at_most_once_a_minute(db_path: str):
    clock = FakeClock(1_000 * HOUR_MS)
    start = clock.ms
    store = LocalHotStore(db_path, retention_hours=1, clock=clock)
    try:
        store.write([point(1, start - i * 60_000) for i in range(50)])  # 0..49 minutes old
        assert store.count() == 50

        clock.ms = start + 30 * 60_000  # points older than start - 30 min have expired (19 of them)
        store.write([point(2, clock.ms)])
        assert store.count() == 50 + 1 - 19

        clock.ms += 30_000  # the point from start - 30 min expires now, but the last sweep was 30 s ago
        store.write([point(2, clock.ms)])
        assert store.count() == 33
        assert store.trace(1, 0)[-1].time_ms == start - 30 * 60_000

        clock.ms += 30_000  # a minute since the last sweep: this write sweeps again
        store.write([point(2, clock.ms)])
        assert store.count() == 33 + 1 - 1
        assert store.trace(1, 0)[-1].time_ms == start - 29 * 60_000  # exactly at the edge: kept
    finally:
        store.close()


def test_concurrent_writers_lose_nothing(db_path: str):
    """4 threads on one shared store and 4 on stores of their own (like Flink subtasks) at once."""
    shared = LocalHotStore(db_path)
    own = [LocalHotStore(db_path) for _ in range(4)]
    t0 = now_ms() - 1_000_000
    errors: list[BaseException] = []

    def writer(s: LocalHotStore, vehicle_id: int) -> None:
        try:
            for batch in range(20):
                s.write([point(vehicle_id, t0 + batch * 100 + i) for i in range(50)])
        except BaseException as exc:  # noqa: BLE001 - a writer thread's error, asserted below  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(shared, v)) for v in range(4)]
    threads += [threading.Thread(target=writer, args=(s, 10 + v)) for v, s in enumerate(own)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not errors
        assert shared.count() == 8 * 20 * 50
        for vehicle_id in [0, 1, 2, 3, 10, 11, 12, 13]:
            assert len(shared.trace(vehicle_id, 0)) == 1000
    finally:
        for s in [shared, *own]:
            s.close()


_READER = """
import sys, time
from connectors.hot_store_local import LocalHotStore
store = LocalHotStore(sys.argv[1])
expected = int(sys.argv[2])
print("ready", flush=True)
deadline = time.monotonic() + 60
seen = []
while time.monotonic() < deadline:
    n = len(store.trace(1, 0))
    if not seen or seen[-1] != n:
        seen.append(n)
    if n == expected:
        break
print(" ".join(map(str, seen)), flush=True)
"""


def test_another_process_reads_while_this_one_writes(store: LocalHotStore, db_path: str):
    batches, size = 40, 100
    reader = subprocess.Popen(
        [sys.executable, "-c", _READER, db_path, str(batches * size)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert reader.stdout is not None
        assert reader.stdout.readline().strip() == "ready"
        t0 = now_ms() - 1_000_000
        for b in range(batches):
            store.write([point(1, t0 + b * size + i) for i in range(size)])
            time.sleep(0.01)
        out, err = reader.communicate(timeout=60)
    finally:
        if reader.poll() is None:
            reader.kill()
    assert reader.returncode == 0, err
    seen = [int(n) for n in out.split()]
    assert seen[-1] == batches * size
    # The reader saw the file grow while it was being written, and only ever whole batches
    # (one transaction per write call), never a torn one.
    assert any(0 < n < batches * size for n in seen), seen
    assert all(n % size == 0 for n in seen), seen
    assert seen == sorted(seen)


def test_closed_store_says_so(db_path: str):
    s = LocalHotStore(db_path)
    s.close()
    s.close()  # idempotent
    with pytest.raises(StoreClosedError):
        s.write([point(1, now_ms())])


def test_many_subtasks_opening_a_fresh_file_at_once(tmp_path: Path):
    """Switching a new file to WAL can report "database is locked" to all but one opener."""
    from connectors.vehicle_status_local import LocalVehicleStatusStore

    for round_ in range(30):
        path = str(tmp_path / f"fresh-{round_}.sqlite")
        opened: list = []
        errors: list[BaseException] = []
        barrier = threading.Barrier(8)

        # Bound per round: the threads are joined before the next round rebinds the names.
        def open_one(kind: type, barrier=barrier, path=path, opened=opened, errors=errors) -> None:
            barrier.wait()
            try:
                opened.append(kind(path))
            except BaseException as exc:  # noqa: BLE001 - an opener thread's error, asserted below
                errors.append(exc)

        threads = [threading.Thread(target=open_one, args=(LocalHotStore if i % 2 else LocalVehicleStatusStore,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        for s in opened:
            s.close()
        assert not errors, errors
        assert len(opened) == 8


def test_a_point_sqlite_refuses_comes_back_rejected_and_the_rest_is_written(store: LocalHotStore):
    """SQLite cannot bind an integer over 64 bits (the schema never lets one through; a sink must
    still not fail the job, and its batch, on one): that point is rejected, its batch written."""
    t0 = now_ms()
    good = [point(1, t0 - i) for i in range(5)]
    bad = point(2, t0, battery_percent=2**70)
    result = store.write([*good[:2], bad, *good[2:]])
    assert result.written == 5
    [rejected] = result.rejected
    assert rejected.point == bad and rejected.reason.startswith("refused by SQLite: OverflowError")
    assert [p.time_ms for p in store.trace(1, since_ms=0)] == [p.time_ms for p in good]
    assert store.trace(2, since_ms=0) == []
