"""The PyFlink smoke job (MiniCluster, thread mode) reads the real broker through KafkaSource from the
Maven-fetched connector jar and counts exactly what was produced."""

import pytest

from connectors.kafka_clients import end_offsets
from connectors.kafka_source import OffsetPosition
from device_sim.defects import with_defects
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import produce_events
from jobs.flink_env import create_env
from jobs.smoke_count import SmokeConfig, run

pytestmark = [pytest.mark.integration, pytest.mark.job]


def smoke(bootstrap, topic, start="earliest", stop="latest"):
    return SmokeConfig(bootstrap, topic, f"smoke-{topic}", OffsetPosition.parse(start), OffsetPosition.parse(stop))


def test_kafka_source_counts_exactly_ten_thousand(kafka_bootstrap, fresh_topic, platform_config):
    topic = fresh_topic(partitions=4)
    report = produce_events(kafka_bootstrap, topic, Fleet(FleetSpec(vehicles=100, seed=1)).take(10_000))
    assert report.acknowledged == 10_000

    totals = run(create_env(platform_config.flink), smoke(kafka_bootstrap, topic))
    assert dict(totals) == {"valid": 10_000}


def test_rejections_counted_by_reason_and_start_offsets_respected(kafka_bootstrap, fresh_topic, platform_config):
    topic = fresh_topic(partitions=3)
    produce_events(kafka_bootstrap, topic, Fleet(FleetSpec(vehicles=10, seed=2)).take(500))  # before the window
    before = end_offsets(kafka_bootstrap, topic)
    events = with_defects(Fleet(FleetSpec(vehicles=50, seed=3)).take(2_000), 2_000, 40, seed=4)
    assert produce_events(kafka_bootstrap, topic, events).acknowledged == 2_000

    start = "offsets=" + ",".join(f"{p}:{o}" for p, o in before.items())
    totals = run(create_env(platform_config.flink), smoke(kafka_bootstrap, topic, start=start))
    assert sum(totals.values()) == 2_000
    assert totals["valid"] == 1_960
    assert totals == {
        "valid": 1_960, "rejected:out_of_range": 10, "rejected:missing_field": 10,
        "rejected:bad_timestamp": 10, "rejected:wrong_type": 10,
    }
