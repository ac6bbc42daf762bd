"""`telemetry bench live`'s measured window: rates, lag movement, CPU and the sustained verdict,
from two status snapshots whose figures the test chooses."""

from __future__ import annotations

from fleet.bench.live import _window, format_table


def _snap(fleet, telemetry, enriched, lag_pipeline, lag_alerts, cpu_pipeline, cpu_sim):
    return {
        "stages": [{"key": "fleet", "total": fleet}, {"key": "telemetry", "total": telemetry}, {"key": "enriched", "total": enriched}],
        "processes": [{"name": "pipeline", "cpu_s": cpu_pipeline}, {"name": "sim (round 1)", "cpu_s": cpu_sim}],
        "lag": {"pipeline": {"events": lag_pipeline}, "alerts": {"events": lag_alerts}},
        "latency_ms": {"event_to_enriched": {"p50": 1500.0, "p95": 2500.0}, "ingest_to_alert": {"p95": 400.0}},
        "bronze": {}, "dlq_by_reason": {}, "alerts_by_kind": {},
    }


def test_a_platform_that_keeps_up_is_sustained():
    samples = [(100.0, 1000.0, _snap(0, 0, 0, 2000, 100, 10.0, 5.0)),
               (200.0, 1150.0, _snap(200_000, 199_000, 198_000, 2100, 120, 60.0, 25.0))]
    w = _window(samples)
    assert w["window_s"] == 100.0
    assert w["rates"] == {"fleet": 2000.0, "telemetry": 1990.0, "enriched": 1980.0}
    assert w["lag_growth_events_per_s"] == {"pipeline": 1.0, "alerts": 0.2}
    assert w["lag_end_s"] == {"pipeline": round(2100 / 1990, 1), "alerts": round(120 / 1990, 1)}
    assert w["cores"] == {"pipeline": 0.5, "sim": 0.2} and w["cores_ours"] == 0.7
    assert w["cores_machine"] == 1.5 and w["cores_others"] == 0.8
    assert w["sustained"] is True
    assert "yes" in format_table([{"vehicles": 2000, "steady_after_s": 40.0, **w}])


def test_a_lag_growing_faster_than_five_percent_of_the_input_is_not_sustained():
    samples = [(0.0, 0.0, _snap(0, 0, 0, 0, 0, 0.0, 0.0)),
               (100.0, 100.0, _snap(300_000, 300_000, 290_000, 10_000, 0, 50.0, 20.0))]
    w = _window(samples)
    # 100 events/s of growth is under 5 % of 3,000/s ingested and the lag ends at 3.3 s of input: kept up
    assert w["lag_growth_events_per_s"]["pipeline"] == 100.0
    assert w["rates"]["enriched"] == 2900.0 and w["sustained"] is True  # 2,900 >= 0.9 x 3,000
    worse = [(0.0, 0.0, _snap(0, 0, 0, 0, 0, 0.0, 0.0)), (100.0, 100.0, _snap(300_000, 300_000, 250_000, 50_000, 0, 50.0, 20.0))]
    w = _window(worse)
    assert w["lag_growth_events_per_s"]["pipeline"] == 500.0 and w["sustained"] is False


def test_no_window_is_reported_as_such():
    assert _window([])["sustained"] is False and "no measured window" in _window([])["problem"]
