"""The arithmetic of the live status: counters across restarts, rates over a window, percentiles,
metric lookup by suffix, and what the panel and the plain line show."""

from __future__ import annotations

from fleet.config import load_config
from fleet.live.collector import Collector
from fleet.live.kafka_watch import percentiles
from fleet.live.prom_scrape import pick
from fleet.live.status_view import plain_line, render


def _collector(tmp_path):
    config = load_config("local", [f"infra.run_dir={tmp_path}"])
    return Collector(config)  # no Kafka is touched until prepare()/sample()


def test_a_counter_that_restarts_is_carried_on(tmp_path):
    c = _collector(tmp_path)
    assert [c._carried("fleet", v) for v in (0, 100, 250, 10, 40)] == [0, 100, 250, 260, 290]
    assert c._carried("fleet", None) is None


def test_rates_are_over_the_last_five_seconds_of_samples(tmp_path):
    c = _collector(tmp_path)
    for t, total in ((0.0, 0), (1.0, 100), (2.0, 300), (7.0, 1300), (8.0, 1500)):
        c._samples.append((t, {"fleet": total}))
    # window [3, 8]: the first sample inside it is t=7 (1300) → (1500 - 1300) / (8 - 7)
    assert c._rate("fleet") == 200.0
    c._samples.append((20.0, {"fleet": 2700}))  # 12 s after the previous: the last two samples
    assert c._rate("fleet") == 100.0
    assert c._rate("bridge") is None  # never reported


def test_percentiles_by_nearest_rank():
    values = list(range(100, 0, -1))  # 100..1, unsorted on purpose
    # nearest rank: the q-th percentile of 1..100 is q itself (q % of the values are at or below it)
    assert percentiles(values) == {"p50": 50, "p95": 95, "p99": 99, "max": 100, "count": 100}
    assert percentiles([7.0]) == {"p50": 7.0, "p95": 7.0, "p99": 7.0, "max": 7.0, "count": 1}
    assert percentiles([]) is None


def test_pick_finds_a_metric_by_suffix_and_sums_its_names():
    values = {"flink_taskmanager_job_task_operator_duplicates_dropped": 3.0, "flink_x_duplicates_dropped": 4.0,
              "flink_jobmanager_job_uptime": 10.0}
    assert pick(values, "_duplicates_dropped") == 7.0
    assert pick(values, "_nothing", "jobmanager_job_uptime") == 10.0
    assert pick(None, "x") is None and pick(values, "_nothing") is None


def _snapshot():
    return {
        "uptime_s": 75.0, "vehicles": 2000, "steady": True, "steady_after_s": 41.0,
        "stages": [{"key": "fleet", "label": "fleet → MQTT", "total": 150000.0, "rate": 2400.0},
                   {"key": "enriched", "label": "pipeline → telemetry-enriched", "total": 140000.0, "rate": 2390.0}],
        "lag": {"pipeline": {"group": "telemetry-pipeline", "events": 1200, "seconds": 0.5},
                "alerts": {"group": "anomaly-detection", "events": None, "seconds": None}},
        "latency_ms": {"event_to_enriched": {"p50": 1200.0, "p95": 2100.0, "p99": 2500.0, "max": 3000.0, "count": 9},
                       "ingest_to_enriched": None, "ingest_to_alert": None},
        "dlq_by_reason": {"bad_json": 12, "out_of_range": 3}, "alerts_by_kind": {"low_battery": 2},
        "recent_alerts": [{"kind": "low_battery", "vehicle_id": 10042, "zone_id": "u0yjjd", "event_time": "2026-12-02T17:00:01.200Z",
                           "message": "battery 9 %"}],
        "duplicates_dropped": 37.0, "checkpoints": {"completed": 30.0, "failed": 0.0, "last_duration_ms": 120.0},
        "bronze": {"files": 12, "rows": 130000, "files_total": 20, "rows_total": 150000},
        "processes": [{"name": "pipeline", "pid": 4242, "state": "running", "cores": 0.61}], "errors": [],
    }


def test_the_panel_shows_every_figure_of_the_snapshot():
    from rich.console import Console

    console = Console(width=160, record=True)
    console.print(render(_snapshot(), map_url="http://127.0.0.1:8088/", run_dir="/tmp/run"))
    text = console.export_text()
    for expected in ("2,400", "150,000", "1,200 events (0.5 s of input)", "no commit yet", "p50 1.20s  p95 2.10s",
                     "bad_json 12, out_of_range 3", "37", "30 completed, 0 failed, last took 120 ms",
                     "12 files, 130,000 rows this session", "10042", "u0yjjd", "4242", "0.61", "steady", "after 41 s",
                     "http://127.0.0.1:8088/"):
        assert expected in text, expected


def test_the_plain_line_names_rates_lag_and_latency():
    line = plain_line(_snapshot())
    assert "STEADY" in line and "fleet=2,400/s(150,000)" in line and "lag[pipeline]=1200" in line and "lag[alerts]=-" in line
    assert "e2e_p95=2100ms" in line and "dup=37" in line and "bronze_rows=130000" in line
    assert plain_line({}) == "live: starting"


def test_before_the_first_sample_the_views_say_starting_and_show_errors():
    from rich.console import Console

    snapshot = {"errors": ["sampling failed: KafkaException: broker down"]}
    assert plain_line(snapshot) == "live: starting ! sampling failed: KafkaException: broker down"
    console = Console(width=120, record=True)
    console.print(render(snapshot, map_url="-", run_dir="-"))
    assert "broker down" in console.export_text()
