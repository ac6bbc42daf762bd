"""infra/prometheus.py: Debian's Prometheus with the generated scrape config, against exporters the
test runs itself (the simulator's and a bridge's collectors, fed known counts) and ports where
nothing listens: the values it stores are the exporters', the silent targets are `down`."""

from __future__ import annotations

import pytest
import yaml

from device_sim.sim_metrics import SimMetrics
from fleet.config import load_config
from infra.process import free_port
from infra.prometheus import PrometheusServer, scrape_config
from ingest.metrics import BridgeMetricsServer
from tests.metrics_text import poll
from tests.unit.test_bridge_metrics import FakeBridge

pytestmark = pytest.mark.integration


def live_config(tmp_path, **ports: int):
    values = {"infra.run_dir": str(tmp_path), "live.bridges": "2", **{f"live.{k}": str(v) for k, v in ports.items()}}
    return load_config("local", values, environ={})


def test_scrape_config_lists_every_live_port(tmp_path):
    config = live_config(tmp_path, sim_metrics_port=7001, bridge_metrics_port=7010, pipeline_metrics_port=7020,
                         alerts_metrics_port=7021, metrics_port=7030)
    parsed = yaml.safe_load(scrape_config(config))
    assert parsed["global"]["scrape_interval"] == "2s"
    assert {job["job_name"]: job["static_configs"][0]["targets"] for job in parsed["scrape_configs"]} == {
        "telemetry-sim": ["127.0.0.1:7001"],
        "telemetry-bridge": ["127.0.0.1:7010", "127.0.0.1:7011"],  # bridge i on bridge_metrics_port + i
        "flink-pipeline": ["127.0.0.1:7020"],
        "flink-alerts": ["127.0.0.1:7021"],
        "telemetry-live": ["127.0.0.1:7030"],
    }


def test_prometheus_stores_what_the_exporters_said(tmp_path):
    sim = SimMetrics("mqtt", vehicles=40)
    sim_port = sim.serve("127.0.0.1", free_port())
    bridge = FakeBridge()
    bridge_server = BridgeMetricsServer(bridge.stats, "127.0.0.1", free_port())
    config = live_config(tmp_path, sim_metrics_port=sim_port, bridge_metrics_port=bridge_server.port,
                         pipeline_metrics_port=free_port(), alerts_metrics_port=free_port(), metrics_port=free_port())
    server = PrometheusServer(tmp_path, "127.0.0.1", free_port())
    try:
        list(sim.count_items(range(1234)))
        bridge.deliver(forwarded=321, iot_rule=4)
        pid = server.up(config)
        assert server.status().healthy and server.status().pid == pid
        assert (tmp_path / "prometheus" / "prometheus.yml").read_text() == scrape_config(config)

        targets = poll(server.targets, lambda ts: len(ts) == 6 and all(t["health"] != "unknown" for t in ts), timeout_s=20,
                       what="every target scraped once")
        health = {(t["job"], t["labels"]["instance"]): t["health"] for t in targets}
        assert health == {
            ("telemetry-sim", f"127.0.0.1:{sim_port}"): "up",
            ("telemetry-bridge", f"127.0.0.1:{bridge_server.port}"): "up",
            ("telemetry-bridge", f"127.0.0.1:{bridge_server.port + 1}"): "down",  # bridge 1 is not running
            ("flink-pipeline", f"127.0.0.1:{config.live.pipeline_metrics_port}"): "down",
            ("flink-alerts", f"127.0.0.1:{config.live.alerts_metrics_port}"): "down",
            ("telemetry-live", f"127.0.0.1:{config.live.metrics_port}"): "down",
        }
        assert server.query('sim_events_generated_total{job="telemetry-sim"}')[0][1] == 1234
        assert server.query("sim_vehicles")[0][1] == 40
        assert server.query('bridge_forwarded_total{job="telemetry-bridge"}')[0][1] == 321
        assert server.query('bridge_rejected_total{reason="iot_rule"}')[0][1] == 4
        # A counter that moves shows in the next scrape (every 2 s).
        bridge.deliver(forwarded=79)
        poll(lambda: server.query("bridge_forwarded_total")[0][1], lambda v: v == 400, timeout_s=10, what="the next scrape")
    finally:
        assert server.down()
        sim.close()
        bridge_server.close()
    assert server.status().pid is None and not server.status().healthy
