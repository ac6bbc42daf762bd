"""The local vehicle status table: newest event wins, in any order, across connections."""

from __future__ import annotations

import random
import sqlite3
import threading
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.hot_store import (
    StoreConfig,
    TelemetryPoint,
    VehicleStatus,
    newest_per_vehicle,
    open_status_store,
)
from connectors.hot_store_local import LocalHotStore
from connectors.vehicle_status_local import LocalVehicleStatusStore


def status(vehicle_id: int, last_seen_ms: int, **overrides) -> VehicleStatus:
    base = VehicleStatus(
        vehicle_id=vehicle_id, last_seen_ms=last_seen_ms, latitude=50.1105, longitude=8.6821,
        zone_id="u0yjjd", vehicle_type="scooter", battery_percent=68,
    )
    return replace(base, **overrides)


@pytest.fixture
def db_path(tmp_path: Path) -> str:
    return str(tmp_path / "state" / "fleet.sqlite")


@pytest.fixture
def store(db_path: str):
    s = LocalVehicleStatusStore(db_path)
    yield s
    s.close()


def test_insert_then_get_round_trips_every_field(store: LocalVehicleStatusStore):
    full = status(1, 1000, charging=True, in_use=False, trip_id="trip-9", speed_kmh=14.5, online=False)
    assert store.upsert([full]) == 1
    assert store.get(1) == full
    bare = status(2, 1000)  # optional fields stay None
    store.upsert([bare])
    assert store.get(2) == bare
    assert store.get(3) is None


def test_newer_event_overwrites_older_does_not(store: LocalVehicleStatusStore):
    store.upsert([status(1, 2000, battery_percent=50)])
    assert store.upsert([status(1, 3000, battery_percent=40)]) == 1
    assert store.get(1).battery_percent == 40
    assert store.upsert([status(1, 2500, battery_percent=99)]) == 0  # late, out-of-order event
    assert store.get(1) == status(1, 3000, battery_percent=40)


def test_equal_timestamp_changes_nothing(store: LocalVehicleStatusStore):
    store.upsert([status(1, 2000, battery_percent=50)])
    assert store.upsert([status(1, 2000, battery_percent=10)]) == 0
    assert store.get(1).battery_percent == 50


def test_within_one_batch_the_newest_wins_whatever_the_order(store: LocalVehicleStatusStore):
    events = [status(1, t, battery_percent=t // 100) for t in (4000, 1000, 9000, 3000, 9000 - 1)]
    events += [status(2, 500), status(2, 700, zone_id="u0yjje")]
    assert store.upsert(events) == 2  # counted per vehicle changed, not per event
    assert store.get(1).last_seen_ms == 9000 and store.get(1).battery_percent == 90
    assert store.get(2).zone_id == "u0yjje"


def test_random_order_delivery_ends_at_the_newest(store: LocalVehicleStatusStore):
    rng = random.Random(7)
    events = [status(v, t, battery_percent=t % 100) for v in range(20) for t in range(1000, 1050)]
    rng.shuffle(events)
    for start in range(0, len(events), 37):
        store.upsert(events[start:start + 37])
    for v in range(20):
        assert store.get(v) == status(v, 1049, battery_percent=49)


def test_newest_per_vehicle_keeps_the_first_of_equal_timestamps():
    first, second = status(1, 5, battery_percent=1), status(1, 5, battery_percent=2)
    assert newest_per_vehicle([first, second]) == [first]
    assert newest_per_vehicle([]) == []


def test_concurrent_upserts_from_threads_keep_the_newest(db_path: str):
    stores = [LocalVehicleStatusStore(db_path) for _ in range(4)]
    errors: list[BaseException] = []

    def writer(s: LocalVehicleStatusStore, offset: int) -> None:
        try:
            # Each thread writes every vehicle, with interleaved timestamps: thread 3 holds the newest.
            for t in range(0, 200, 4):
                s.upsert([status(v, 10_000 + t + offset, battery_percent=offset) for v in range(25)])
        except BaseException as exc:  # noqa: BLE001 - a writer thread's error, asserted below  # pragma: no cover
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    try:
        assert not errors
        for v in range(25):
            assert stores[0].get(v).last_seen_ms == 10_000 + 196 + 3
    finally:
        for s in stores:
            s.close()


def test_shares_the_file_with_the_hot_store_and_other_connections_see_commits(db_path: str):
    hot = LocalHotStore(db_path)
    status_store = LocalVehicleStatusStore(db_path)
    try:
        status_store.upsert([status(1, 1000)])
        hot.write([TelemetryPoint(1, 2**41, "u0yjjd", "scooter", 50.0, 8.0, 60)])
        # A plain second connection (as a CLI in another process would open) reads both tables.
        with closing(sqlite3.connect(db_path)) as reader:
            assert reader.execute("SELECT last_seen_ms FROM vehicle_status").fetchall() == [(1000,)]
            assert reader.execute("SELECT count(*) FROM telemetry").fetchone() == (1,)
            reader.execute("BEGIN")  # a read snapshot held open while the store keeps writing
            assert reader.execute("SELECT last_seen_ms FROM vehicle_status").fetchone() == (1000,)
            assert status_store.upsert([status(1, 2000)]) == 1  # WAL: not blocked by the reader
            assert reader.execute("SELECT last_seen_ms FROM vehicle_status").fetchone() == (1000,)
            reader.execute("COMMIT")
            assert reader.execute("SELECT last_seen_ms FROM vehicle_status").fetchone() == (2000,)
    finally:
        hot.close()
        status_store.close()


def test_factory_and_empty_path(tmp_path: Path):
    s = open_status_store(StoreConfig(status_backend="local", local_path=str(tmp_path / "s.sqlite")))
    try:
        assert isinstance(s, LocalVehicleStatusStore)
    finally:
        s.close()
    with pytest.raises(ValueError, match="local_path is empty"):
        open_status_store(StoreConfig(status_backend="local", local_path=""))


def test_mark_offline_only_when_nothing_newer_arrived(tmp_path):
    import dataclasses

    from connectors.hot_store import VehicleStatus
    from connectors.vehicle_status_local import LocalVehicleStatusStore

    store = LocalVehicleStatusStore(str(tmp_path / "s.sqlite"))
    try:
        status = VehicleStatus(vehicle_id=9, last_seen_ms=1_000, latitude=50.1, longitude=8.6, zone_id="u0yjjd", vehicle_type="scooter", battery_percent=50)
        assert store.mark_offline(9, 1_000) is False  # no row yet: nothing to mark
        store.upsert([status])
        assert store.mark_offline(9, 1_000) is True and store.get(9).online is False
        assert store.mark_offline(9, 1_000) is False  # already offline
        store.upsert([dataclasses.replace(status, last_seen_ms=2_000)])
        assert store.get(9).online is True  # the next event brings it back
        assert store.mark_offline(9, 1_000) is False  # an offline verdict about an older silence
    finally:
        store.close()


def test_a_status_sqlite_refuses_is_returned_and_the_others_are_written(store: LocalVehicleStatusStore):
    bad = status(2, 1000, battery_percent=2**70)
    result = store.write_statuses([status(1, 1000), bad, status(3, 1000)])
    assert result.changed == 2
    [(refused, reason)] = result.refused
    assert refused == bad and reason.startswith("refused by SQLite: OverflowError")
    assert store.get(1) is not None and store.get(3) is not None and store.get(2) is None


def test_status_rows_reads_every_vehicle_in_id_order_with_the_chosen_columns(store: LocalVehicleStatusStore):
    store.upsert([status(7, 1000, in_use=True), status(3, 2000, battery_percent=9), status(5, 1500, online=False)])
    store.mark_offline(7, 1000)
    assert store.status_rows(("vehicle_id", "battery_percent", "in_use", "online")) == [
        (3, 9, None, 1), (5, 68, None, 0), (7, 68, 1, 0),
    ]
    full = store.status_rows()
    assert [VehicleStatus(*row) for row in full][0] == status(3, 2000, battery_percent=9)
    with pytest.raises(ValueError, match="speed; DROP"):
        store.status_rows(("vehicle_id", "speed; DROP"))
