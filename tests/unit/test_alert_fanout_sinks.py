"""The batch forms the alert fan-out flushes with: the alert log's append_many (one write, whole
lines) and the local status table's mark_offline_many (one transaction, the same rule as mark_offline)."""

from connectors.alert_log import AlertLog, read_alert_log
from connectors.hot_store import VehicleStatus
from connectors.vehicle_status_local import LocalVehicleStatusStore


def test_append_many_writes_every_line_after_the_existing_ones(tmp_path):
    log = AlertLog(str(tmp_path / "logs" / "alerts.log"))
    log.append({"alert_id": "a"})
    log.append_many([{"alert_id": "b", "paged": False}, {"alert_id": "c"}])
    log.append_many([])
    assert read_alert_log(log.path) == [{"alert_id": "a"}, {"alert_id": "b", "paged": False}, {"alert_id": "c"}]


def test_mark_offline_many_only_when_nothing_newer_arrived(tmp_path):
    with LocalVehicleStatusStore(str(tmp_path / "fleet.sqlite")) as store:
        store.upsert([
            VehicleStatus(vehicle_id=v, last_seen_ms=1_000, latitude=50.1, longitude=8.6, zone_id="u0yjjd", vehicle_type="scooter", battery_percent=60)
            for v in (1, 2)
        ])
        # 1: silent since 1000 → offline; 2: a verdict about an older silence → unchanged; 3: no row.
        assert store.mark_offline_many([(1, 1_000), (2, 500), (3, 1_000)]) == 1
        assert store.get(1).online is False and store.get(2).online is True and store.get(3) is None
        assert store.mark_offline_many([(1, 1_000)]) == 0 and store.mark_offline_many([]) == 0
