"""Jars come from the pom once; afterwards fetch() runs no Maven and downloads nothing."""

import subprocess

import pytest

from connectors import jars

pytestmark = pytest.mark.integration


def test_fetch_is_idempotent_and_offline_after_the_first(monkeypatch):
    jars.fetch()  # make sure the cache is complete (setup already did this)

    def no_maven(*args, **kwargs):
        raise AssertionError(f"Maven ran again: {args}")

    monkeypatch.setattr(subprocess, "run", no_maven)
    again = {s.profile: s for s in jars.fetch()}
    names = {profile: {j.name for j in s.jars} for profile, s in again.items()}
    assert "flink-sql-connector-kafka-5.0.0-2.2.jar" in names["flink"]
    assert any(n.startswith("flink-parquet-2.2") for n in names["flink"])
    assert any(n.startswith("hadoop-client-api-") for n in names["flink"])
    assert not any(n.startswith("slf4j-api") for n in names["flink"])  # Flink brings its own
    assert any(n.startswith("kafka_2.13-4.") for n in names["kafka-broker"])
    assert any(n.startswith("log4j-core-") for n in names["kafka-broker"])
    # Flink's Prometheus reporter, as the plugin folder a cluster would load it from.
    assert [j.relative_to(again["flink-metrics"].folder).as_posix() for j in again["flink-metrics"].jars] == [
        "metrics-prometheus/flink-metrics-prometheus-2.2.1.jar"]


def test_jar_paths_come_from_one_place():
    urls = jars.flink_jar_urls()
    assert urls and all(u.startswith("file://") and u.endswith(".jar") for u in urls)
    assert "kafka_2.13" in jars.kafka_broker_classpath()
    [reporter] = jars.prometheus_reporter_jar_urls()
    assert reporter.startswith("file://") and reporter.endswith("/flink-metrics-prometheus-2.2.1.jar")


def test_a_missing_cache_says_how_to_fill_it(monkeypatch, tmp_path):
    monkeypatch.setenv("TELEMETRY_JARS_DIR", str(tmp_path))
    with pytest.raises(jars.JarsError, match="telemetry jars fetch"):
        jars.installed("flink")
