"""`telemetry bench pipeline --smoke` end to end through the real local Kafka of the test session:
every smoke stage (passthrough, the Quix Streams peer in its own venv, the pipeline and the alerts
job on the MiniCluster, the alerts job on a standalone cluster with one TaskManager, the pipeline on
one with two) drains the same preloaded topic, and each must output exactly what the input says.

Structure and counts only: a benchmark's timings are its output, never something a test asserts.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.bench.pipeline import SMOKE, STAGES
from fleet.cli import app as cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1_200)]


def _settings(config) -> list[str]:
    infra, flink = config.infra, config.flink
    pairs = {
        "infra.run_dir": str(infra.run_dir), "infra.kafka_port": infra.kafka_port,
        "infra.kafka_controller_port": infra.kafka_controller_port, "infra.mqtt_port": infra.mqtt_port,
        "infra.moto_port": infra.moto_port, "infra.kafka_heap": infra.kafka_heap,
        "flink.checkpoint_interval_ms": flink.checkpoint_interval_ms,
    }
    return [arg for key, value in pairs.items() for arg in ("--set", f"{key}={value}")]


@pytest.fixture(scope="module")
def smoke_run(platform_config, kafka_bootstrap, tmp_path_factory):
    markdown = tmp_path_factory.mktemp("bench") / "BENCHMARKS.md"
    bench_dir = Path(platform_config.infra.run_dir) / "bench"
    before = set(bench_dir.glob("pipeline-*.json"))
    code = cli.main([*_settings(platform_config), "bench", "pipeline", "--smoke", "--no-state", "--markdown", str(markdown)])
    written = sorted(set(bench_dir.glob("pipeline-*.json")) - before)
    assert len(written) == 1, f"one JSON report per run, got {written}"
    return code, json.loads(written[0].read_text()), markdown, written[0]


def test_every_stage_outputs_exactly_the_expected_records(smoke_run):
    code, report, _, _ = smoke_run
    stages = {s["stage"]: s for s in report["stages"]}
    assert list(stages) == list(SMOKE.stages) and set(STAGES) - set(stages) == {"enriched", "cluster-pipeline-1tm"}
    problems = [p for s in report["stages"] for p in s["problems"]]
    assert problems == [] and code == 0, "\n".join(problems)

    data = report["input"]
    assert data["sent"] == SMOKE.events + data["resends"] + len(data["alert_sentinels"])
    assert data["unique_valid"] == data["sent"] - data["resends"] - data["rejected"]
    assert data["rejected"] > 0 and data["resends"] > 0 and data["alerts"] == len(data["alert_sentinels"])

    assert stages["limit"]["outputs"] == {"output": {"records": data["sent"], "distinct": None, "expected": data["sent"]}}
    unique = {"records": data["unique_valid"], "distinct": data["unique_valid"], "expected": data["unique_valid"]}
    dlq = {"records": data["rejected"], "distinct": None, "expected": data["rejected"]}
    assert stages["peer"]["outputs"] == {"enriched": unique, "dlq": dlq}
    for name in ("pipeline", "cluster-pipeline-2tm"):
        assert stages[name]["outputs"] == {"enriched": unique, "dlq": dlq, "bronze": unique, "hot_store": unique}, name
    alerts = {"records": data["alerts"], "distinct": data["alerts"], "expected": data["alerts"]}
    for name in ("alerts", "cluster-alerts-1tm"):
        assert stages[name]["outputs"] == {"alerts": alerts}, name


def test_every_stage_has_a_rate_and_its_processes_measured(smoke_run):
    _, report, _, _ = smoke_run
    for stage in report["stages"]:
        # A rate needs two output records a millisecond apart at least; at smoke size the alerts job's
        # handful of alerts may share one (a timing, so not asserted). Counts are asserted above.
        assert stage["rate"] is None or (stage["rate"] > 0 and stage["window_s"] > 0), stage["stage"]
        assert stage["events_in"] == report["input"]["sent"]
        assert "broker" in stage["processes"], stage["stage"]
        assert all(p["peak_rss_mib"] > 0 for p in stage["processes"].values()), stage["stage"]
    roles = {s["stage"]: set(s["processes"]) for s in report["stages"]}
    assert "passthrough" in roles["limit"] and "peer" in roles["peer"]
    assert "minicluster-jvm" in roles["pipeline"]
    assert {"jobmanager", "taskmanager"} <= roles["cluster-pipeline-2tm"]
    cluster = {s["stage"]: s for s in report["stages"]}["cluster-pipeline-2tm"]
    assert cluster["processes"]["taskmanager"]["processes"] == 2
    assert report["peer_version"].startswith("3.")
    limit_rate = {s["stage"]: s for s in report["stages"]}["limit"]["rate"]
    assert set(report["ratios"]) == set(SMOKE.stages) and report["ratios"]["limit"]["to_limit"] == ("1.00" if limit_rate else "–")


def test_sustained_load_climbs_and_times_every_event(smoke_run, platform_config):
    _, report, _, _ = smoke_run
    sustained = report["sustained"]
    assert sustained["problems"] == []
    rates = [step["rate"] for step in sustained["steps"]]
    assert rates == list(SMOKE.sustained.rates)[: len(rates)] and rates
    assert all(step["produced"] == int(step["rate"] * SMOKE.sustained.step_s) for step in sustained["steps"])
    # Every event sent (warm-up, steps, latency step) arrived in telemetry-enriched exactly once.
    assert sustained["received"] == sustained["distinct"] == sustained["produced"]
    if sustained["max_sustained_rate"] is not None:
        latency = sustained["latency"]
        assert latency["rate"] == sustained["max_sustained_rate"] / 2
        # Every event of the latency step timed to every pipeline sink, once each (a missing or repeated
        # row would also be in `problems`); the alert sentinels' alerts, one per sentinel.
        timed, sentinels = int(latency["rate"] * SMOKE.sustained.latency_s), SMOKE.sustained.alert_sentinels
        assert latency["events_timed"] == timed and latency["alert_sentinels"] == sentinels
        expected = {"ingest_to_enriched_ms": timed, "ingest_to_enriched_append_ms": timed, "ingest_to_hot_store_ms": timed,
                    "ingest_to_bronze_ms": timed, "ingest_to_alert_ms": sentinels, "ingest_to_alert_append_ms": sentinels}
        for kind, samples in expected.items():
            assert set(latency[kind]) == {"p50", "p95", "p99", "max", "samples"}, kind
            assert latency[kind]["samples"] == samples, kind
        # A calm fleet raises nothing: the timed sentinels and one warm-up sentinel per input partition.
        warmup = platform_config.kafka.topic("telemetry").partitions
        assert latency["alerts_by_kind"] == {"low_battery": sentinels + warmup}


def test_the_report_files(smoke_run):
    _, report, markdown, json_path = smoke_run
    text = markdown.read_text()
    for stage in SMOKE.stages:
        assert f"| {stage} |" in text
    assert "bench pipeline --smoke" in text and "## Machine" in text and "## Sustained open-loop load" in text
    if report["sustained"]["max_sustained_rate"] is not None:
        for path in ("| hot store row", "| Bronze file committed", "| alert received"):
            assert path in text, path
    plots = [markdown.parent / "docs" / "benchmarks" / f"pipeline-{kind}.png" for kind in ("rates", "cpu", "sustained")]
    for plot in plots:
        assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert report["machine"]["nproc"] >= 1 and report["command"].startswith("telemetry ")


def test_the_report_renders_again_from_its_json(smoke_run, tmp_path):
    _, _, markdown, json_path = smoke_run
    again = tmp_path / "BENCHMARKS.md"
    assert cli.main(["bench", "pipeline", "--render", str(json_path), "--markdown", str(again)]) == 0

    def tables(path: Path) -> list[str]:
        return [line for line in path.read_text().splitlines() if line.startswith("| ")]

    assert tables(again) == tables(markdown)
