"""`telemetry bench storm` end to end at a small scale, through the test session's Kafka and moto:
the command runs, writes one JSON report, and every alert of its storm is accounted for (recorded,
paged as the guard says, one summary per zone and window over the limit, every ordinary alert).
Structure and counts only: the timings are the benchmark's output, never asserted."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fleet.cli import app as cli

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def _settings(config) -> list[str]:
    infra = config.infra
    pairs = {
        "infra.run_dir": str(infra.run_dir), "infra.kafka_port": infra.kafka_port,
        "infra.kafka_controller_port": infra.kafka_controller_port, "infra.mqtt_port": infra.mqtt_port,
        "infra.moto_port": infra.moto_port, "infra.kafka_heap": infra.kafka_heap,
        "alerts.storm_window_s": 2, "alerts.storm_pages_per_window": 5,
    }
    return [arg for key, value in pairs.items() for arg in ("--set", f"{key}={value}")]


@pytest.mark.parametrize("through", ["detector", "fanout"])
def test_bench_storm_smoke(platform_config, kafka_bootstrap, moto_endpoint, through, capsys):
    bench_dir = Path(platform_config.infra.run_dir) / "bench"
    before = set(bench_dir.glob("storm-*.json"))
    code = cli.main([*_settings(platform_config), "bench", "storm", "--through", through, "--alerts", "400", "--zones", "4",
                     "--rate", "400", "--ordinary-every-ms", "100", "--sequential", "10", "--batched", "40"])
    assert code == 0
    written = sorted(set(bench_dir.glob("storm-*.json")) - before)
    assert len(written) == 1
    result = json.loads(written[0].read_text())
    assert result["storm_alerts_recorded"] == 400 and result["through"] == through
    assert result["summaries"] == result["summaries_expected"] >= 4
    assert result["pages"] == result["pages_expected"]
    assert result["suppressed"] == 400 - (result["storm_pages"])
    assert result["ordinary_received"] == result["ordinary_sent"] > 0
    assert result["limits"]["publish_batch_calls"] == 4
    assert "ordinary alerts during the storm" in capsys.readouterr().out
