"""The live status of `telemetry live` against what Kafka and the Bronze folder hold, read here
independently: each figure must lie between two status samples taken around the independent read."""

from __future__ import annotations

import time
from collections import Counter

import orjson
import pyarrow.parquet as pq
import pytest

from connectors.kafka_clients import read_values

pytestmark = pytest.mark.integration

_TAIL_SLACK_S = 6.0  # after the independent read: the tail's next poll and a Bronze rescan (every 5 s)


def _bronze_rows(root: str) -> int:
    from pathlib import Path

    base = Path(root.removeprefix("file://"))
    return sum(pq.ParquetFile(f).metadata.num_rows for f in base.rglob("*.parquet") if not f.name.startswith("."))


def test_status_shows_every_stage_flowing_with_its_processes(live_platform):
    status = live_platform.wait_steady()
    rates = {s["key"]: s["rate"] for s in status["stages"]}
    totals = {s["key"]: s["total"] for s in status["stages"]}
    for key in ("fleet", "bridge", "telemetry", "enriched"):
        assert rates[key] and rates[key] > 0, f"{key} not flowing: {status['stages']}"
    # 300 vehicles at the seed's rates send ~1.18 events/s each: the fleet stage shows that order.
    assert 0.3 * 300 < rates["fleet"] < 3 * 300 * 5, rates
    # A sample reads the topic's end offsets, then scrapes the bridge. A record is in the log before
    # the bridge's delivery callback counts it, so the topic may be ahead of "forwarded" by what the
    # bridge still holds unconfirmed (CI once saw 16,715 vs 16,701) — never by more. And everything
    # counted as forwarded is in the log by the next sample's read. (The simulator counts PUBACKs
    # on its own thread, possibly after the bridge forwarded a message: no inequality there.)
    assert totals["telemetry"] <= totals["bridge"] + status["bridge_in_flight"], (totals, status["bridge_in_flight"])
    later = live_platform.wait_for(lambda st: st.get("time", 0) > status["time"], timeout_s=30, what="the next status")
    assert totals["bridge"] <= next(s["total"] for s in later["stages"] if s["key"] == "telemetry"), (totals, later["stages"])
    names = {p["name"].split(" ")[0]: p for p in status["processes"]}
    # its children, the local servers it started, and itself
    assert set(names) == {"pipeline", "alerts", "bridge-0", "sim", "kafka", "mosquitto", "moto", "telemetry"}, names
    assert all(p["state"] == "running" for p in names.values()), names
    assert status["exporters"] == {"simulator": True, "bridges": 1, "pipeline": True, "alerts": True}
    for job in ("pipeline", "alerts"):
        assert status["lag"][job]["events"] is not None and status["lag"][job]["events"] >= 0, status["lag"]
    latency = status["latency_ms"]["event_to_enriched"]
    assert latency and 0 < latency["p50"] <= latency["p95"] <= latency["max"] < status["uptime_s"] * 1000, latency
    assert status["checkpoints"]["completed"] and status["checkpoints"]["completed"] >= 1, status["checkpoints"]


def test_status_counts_match_kafka_and_bronze_read_independently(live_platform):
    config = live_platform.config
    bootstrap = config.kafka.bootstrap_servers
    before = live_platform.wait_steady()
    # The run folder is this test package's own: every record on these topics is this session's.
    dlq = Counter(orjson.loads(v)["reason"] for v in read_values(bootstrap, config.kafka.topic("dlq").name))
    enriched = read_values(bootstrap, config.kafka.topic("enriched").name)
    bronze_rows = _bronze_rows(config.pipeline.bronze_path)
    read_done = time.time()
    # A status sampled after the collector's tail caught up and Bronze was rescanned (every 5 s).
    after = live_platform.wait_for(lambda st: st.get("time", 0) > read_done + _TAIL_SLACK_S, timeout_s=60, what="a later status")

    assert before["stages"][3]["key"] == "enriched"
    assert before["stages"][3]["total"] <= len(enriched) <= after["stages"][3]["total"], (before["stages"][3], len(enriched))
    assert sum(dlq.values()) > 0, "the live fleet sends corrupt payloads: the DLQ must have some"
    for reason, count in dlq.items():
        assert before["dlq_by_reason"].get(reason, 0) <= count <= after["dlq_by_reason"].get(reason, 0), (reason, before["dlq_by_reason"], dlq)
    assert set(before["dlq_by_reason"]) <= set(dlq), "a reason the status showed is not on the topic"
    assert before["bronze"]["rows"] <= bronze_rows <= after["bronze"]["rows"], (before["bronze"], bronze_rows, after["bronze"])
    # Every Bronze row is an enriched event of this session (Bronze commits with the same checkpoints).
    assert bronze_rows <= after["stages"][3]["total"]


def test_duplicates_dropped_are_repeats_that_reached_the_pipeline(live_platform):
    config = live_platform.config
    status = live_platform.wait_for(lambda s: (s.get("duplicates_dropped") or 0) > 0, timeout_s=180, what="a dropped duplicate")
    seen: Counter = Counter()
    for value in read_values(config.kafka.bootstrap_servers, config.kafka.topic("telemetry").name):
        event = orjson.loads(value)
        seen[(event["vehicle_id"], event["timestamp"])] += 1
    repeats = sum(n - 1 for n in seen.values() if n > 1)
    # The pipeline can only have dropped repeats it read, and it reads a prefix of the topic.
    assert 0 < status["duplicates_dropped"] <= repeats, (status["duplicates_dropped"], repeats)
