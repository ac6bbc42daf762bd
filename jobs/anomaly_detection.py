"""Anomaly and offline detection: real-time alerts from `vehicle-telemetry`, once per episode.

  source ─► batches per shard (Java) ─► alert detector ─┬──────────────► fan-out (jobs/alert_fanout) ─► `fleet-alerts` (Kafka)
                                        (low battery ·  │ input status   ▲ (storm guard; SNS PublishBatch,
                                         geofence ·     └─► platform ────┘  local log, vehicle status: offline)
                                         offline scan       monitor: one `input_stalled` per incident
                                         per shard, on the input clock)

The seed's Lambda 9.2 as a PyFlink job with its own consumer group. Alerts go out at least once,
not exactly once: an exactly-once Kafka sink would hold every alert until the next checkpoint
(2 s here), over the 1 s ingest→alert budget. Every alert carries a deterministic `alert_id`, so a
replay's repeat is dropped by id (SNS FIFO topics do it themselves).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field

from pyflink.common import Types, WatermarkStrategy
from pyflink.datastream import DataStream, StreamExecutionEnvironment
from pyflink.table import StreamTableEnvironment

from connectors.hot_store import StoreConfig
from connectors.kafka_sink import value_only_sink
from connectors.kafka_source import OffsetPosition, raw_bytes_source
from connectors.telemetry_batches import batches_by_shard, in_memory_payloads
from fleet.config import PlatformConfig
from jobs.alert_batch import PLATFORM_TAG, AlertBatchDetector
from jobs.alert_fanout import FanoutSettings, add_alert_fanout
from jobs.job_main import job_main
from jobs.platform_monitor import add_platform_monitor
from udfs.alert_rules import AlertPolicy
from udfs.fault_injection import FailOnce
from udfs.input_clock import InputPolicy
from udfs.telemetry_schema import DEFAULT_POLICY, ValidationPolicy

ALL_OUTPUTS = frozenset({"kafka", "sns", "log", "status"})


@dataclass(frozen=True)
class AnomalyConfig:
    bootstrap_servers: str
    telemetry_topic: str
    alerts_topic: str
    group_id: str
    start: OffsetPosition
    stop: OffsetPosition | None
    policy: AlertPolicy
    service_area: str
    timer_granularity_ms: int
    aws: StoreConfig
    sns_topic: str
    alert_log: str
    outputs: frozenset[str] = field(default=ALL_OUTPUTS)
    fail_once: FailOnce | None = None  # the failure harness's injected fault; None in real runs
    batch_window_ms: int = 50
    batch_shards: int = 8
    fanout: FanoutSettings = FanoutSettings()  # storm guard and SNS batching (jobs.alert_fanout)
    schema: ValidationPolicy = DEFAULT_POLICY  # payload limits ([schema])
    input_policy: InputPolicy = InputPolicy()  # when the input counts as stalled or lagging (udfs.input_clock)


def anomaly_config(platform: PlatformConfig, *, start: str = "committed", stop: str | None = None) -> AnomalyConfig:
    alerts = platform.alerts
    return AnomalyConfig(
        bootstrap_servers=platform.kafka.bootstrap_servers,
        telemetry_topic=platform.kafka.topic("telemetry").name,
        alerts_topic=platform.kafka.topic("alerts").name,
        group_id=alerts.group_id,
        start=OffsetPosition.parse(start),
        stop=OffsetPosition.parse(stop) if stop else None,
        policy=AlertPolicy(alerts.low_battery_percent, alerts.battery_rearm_percent, alerts.offline_after_s),
        service_area=alerts.service_area,
        timer_granularity_ms=alerts.offline_timer_granularity_ms,
        aws=platform.stores,
        sns_topic=alerts.sns_topic,
        alert_log=alerts.alert_log,
        fail_once=FailOnce.parse(platform.faults.fail_once_at, platform.faults.marker_dir, "alerts"),
        fanout=FanoutSettings.from_alert_settings(alerts),
        batch_window_ms=platform.pipeline.batch_window_ms,
        batch_shards=platform.pipeline.batch_shards,
        schema=platform.schema,
        input_policy=InputPolicy(int(alerts.input_stall_after_s * 1000), int(alerts.input_lag_limit_s * 1000)),
    )


def build(env: StreamExecutionEnvironment, config: AnomalyConfig, *, raw: DataStream | None = None) -> DataStream:
    """Add the job to `env`; returns the alert stream (JSON text). `raw` replaces Kafka in tests."""
    bounded = raw is not None or config.stop is not None
    if raw is None:
        source = raw_bytes_source(config.bootstrap_servers, config.telemetry_topic, config.group_id, start=config.start, stop=config.stop)
        raw = env.from_source(source, WatermarkStrategy.no_watermarks(), "vehicle-telemetry source").uid("alerts-telemetry-source")
    else:
        raw = in_memory_payloads(raw)
    t_env = StreamTableEnvironment.create(env)
    t_env.get_config().set("table.local-time-zone", "UTC")
    batches = batches_by_shard(t_env, raw, shards=config.batch_shards, window_ms=config.batch_window_ms, bounded=bounded, name="alerts")
    detector = AlertBatchDetector(config.policy, config.service_area, config.timer_granularity_ms, config.fail_once, config.schema, config.input_policy)
    alerts = batches.process(detector, output_type=Types.STRING()).name("alert detector").uid("alert-detector")
    # Instances that stop reporting while blind are forgotten after three of their report periods.
    platform = add_platform_monitor(alerts.get_side_output(PLATFORM_TAG), expire_ms=3 * config.input_policy.stall_after_ms)
    alerts = alerts.union(platform)
    if config.outputs & {"sns", "log", "status"}:
        alerts = add_alert_fanout(alerts, config)
    if "kafka" in config.outputs:
        alerts.sink_to(
            value_only_sink(config.bootstrap_servers, config.alerts_topic, "anomaly-detection-alerts", exactly_once=False)
        ).name("fleet-alerts sink").uid("alerts-sink")
    return alerts


def main(argv: list[str] | None = None) -> int:
    return job_main(argv, name="anomaly detection", description="Anomaly and offline detection: alerts once per episode.", make_config=anomaly_config, build=build)


if __name__ == "__main__":
    sys.exit(main())
