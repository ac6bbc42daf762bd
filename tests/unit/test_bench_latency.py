"""The sustained stage's latency probes (fleet.bench.latency) without Flink or Kafka: each must see
exactly the latency step's events, once each, and count alerts per sentinel. Counts only."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from connectors.hot_store import TelemetryPoint
from connectors.hot_store_local import LocalHotStore
from device_sim.fleet_model import Fleet, FleetSpec
from fleet.bench.latency import (
    TIMED_SENTINEL_FIRST_ID,
    WARMUP_SENTINEL_FIRST_ID,
    AlertProbe,
    BronzeProbe,
    HotStoreProbe,
    SentKeys,
)
from fleet.config import load_config


def _sent(vehicles: int = 5, ticks: int = 3) -> SentKeys:
    sent = SentKeys(Fleet(FleetSpec(vehicles=vehicles)).events(ticks))
    list(sent)  # as the producer would consume it
    return sent


def _point(vehicle: int, time_ms: int) -> TelemetryPoint:
    return TelemetryPoint(vehicle, time_ms, "u0yjjd", "scooter", 50.1, 8.6, 80, None, None, None, None, None, None, None, None, None)


def test_hot_store_probe_sees_each_sent_row_once(tmp_path: Path) -> None:
    sent = _sent()
    path = tmp_path / "hot.sqlite"
    probe = HotStoreProbe(path, sent)
    probe.poll()  # no file yet: nothing, no error
    with LocalHotStore(str(path)) as store:
        store.write([_point(v, t) for v, t in sent.keys[:7]] + [_point(1, sent.keys[0][1])])  # + one row not sent
        probe.poll()
        assert set(probe.first_seen) == set(sent.keys[:7])
        store.write([_point(v, t) for v, t in sent.keys[7:]])
        probe.poll()
        probe.poll()
    assert set(probe.first_seen) == sent.key_set and probe.missing() == 0
    probe.stop()


def _bronze_file(path: Path, keys: list[tuple[int, int]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"vehicle_id": [k[0] for k in keys], "event_time_ms": [k[1] for k in keys],
                             "ingested_at_ms": [k[1] + 5 for k in keys]}), path)


def test_bronze_probe_reads_committed_files_only_and_counts_repeats(tmp_path: Path) -> None:
    sent = _sent()
    hour = tmp_path / "bronze" / "year=2025" / "hour=01"
    _bronze_file(hour / "telemetry-a-0.parquet", [(99, 1)])  # committed before the step: never read
    probe = BronzeProbe((tmp_path / "bronze").as_uri(), "telemetry", sent)
    _bronze_file(hour / ".telemetry-b-1.parquet.inprogress.x", sent.keys[:5])  # not committed yet
    _bronze_file(hour / "telemetry-b-0.parquet", sent.keys[:8] + [(99, 2)])
    probe.poll()
    assert set(probe.first_seen) == set(sent.keys[:8]) and probe.files_read == 1
    _bronze_file(hour / "telemetry-b-1.parquet", sent.keys[5:])
    probe.poll()
    assert set(probe.first_seen) == sent.key_set and probe.duplicates == 3 and probe.files_read == 2
    assert all(probe.ingested[k] == k[1] + 5 for k in sent.keys)


def test_alert_probe_wants_exactly_one_low_battery_alert_per_sentinel(tmp_path: Path) -> None:
    probe = AlertProbe(load_config("local", environ={}), {}, "in", "alerts", 2, tmp_path / "log")
    probe.timed_ids = [TIMED_SENTINEL_FIRST_ID + i for i in range(3)]
    keep = probe.reader._keep
    for vehicle in (*probe.warmup_ids, *probe.timed_ids[:2], probe.timed_ids[1]):
        keep({"kind": "low_battery", "vehicle_id": vehicle, "ingested_at_ms": 10}, 20, 30)
    keep({"kind": "offline", "vehicle_id": TIMED_SENTINEL_FIRST_ID, "ingested_at_ms": None}, 20, 30)
    keep({"kind": "low_battery", "vehicle_id": 10_500, "ingested_at_ms": 10}, 20, 30)  # a fleet vehicle: not a sentinel
    timed, by_kind, problems = probe.results()
    assert probe.warmup_ids == [WARMUP_SENTINEL_FIRST_ID, WARMUP_SENTINEL_FIRST_ID + 1]
    assert timed == [(10, 20, 30), (10, 20, 30)] and by_kind == {"low_battery": 6, "offline": 1}
    assert problems == ["sustained: 3 timed low-battery sentinels raised 3 alerts (one each expected; 1 without, 1 with more than one)"]
