from pathlib import Path

import pytest

from fleet.config import ConfigError, load_config


def test_local_profile_defaults():
    config = load_config("local", environ={"HOME": "/home/x"})
    assert config.profile == "local"
    assert config.kafka.bootstrap_servers == "127.0.0.1:9092"
    assert config.infra.run_dir == Path("/home/x/.local/state/fleet-telemetry")
    assert config.flink.execution_mode == "thread"
    assert config.flink.checkpoint_interval_ms <= 2000
    assert config.flink.checkpoint_dir == "file:///home/x/.local/state/fleet-telemetry/checkpoints"
    assert config.aws.endpoint_url == "http://127.0.0.1:5000"


def test_topics_as_in_the_seed():
    production = load_config("production", environ={})
    telemetry = production.kafka.topic("telemetry")
    assert telemetry.name == "vehicle-telemetry"
    assert telemetry.partitions == 50
    assert telemetry.replication_factor == 3
    assert telemetry.configs["compression.type"] == "lz4"
    assert telemetry.configs["retention.ms"] == str(7 * 24 * 3600 * 1000)
    assert telemetry.configs["min.insync.replicas"] == "2"
    registry = production.kafka.topic("registry")
    assert registry.name == "vehicle-registry"
    assert registry.configs["cleanup.policy"] == "compact"
    assert "retention.ms" not in registry.configs
    assert [t.name for t in production.kafka.topics] == [
        "vehicle-telemetry", "telemetry-enriched", "telemetry-dlq", "fleet-alerts", "vehicle-registry",
    ]
    assert production.aws.endpoint_url is None
    local = load_config("local", environ={})
    assert local.kafka.topic("telemetry").partitions < 50
    assert local.kafka.topic("telemetry").replication_factor == 1


def test_overrides_are_typed_and_env_comes_before_flags():
    config = load_config(
        "local",
        ["kafka.bootstrap_servers=broker:9094", "flink.parallelism=3", "topics.telemetry.partitions=12"],
        environ={"TELEMETRY__FLINK__PARALLELISM": "2", "TELEMETRY__INFRA__KAFKA_PORT": "19092"},
    )
    assert config.kafka.bootstrap_servers == "broker:9094"
    assert config.flink.parallelism == 3
    assert config.infra.kafka_port == 19092
    assert config.kafka.topic("telemetry").partitions == 12


def test_bootstrap_follows_the_local_broker_port():
    config = load_config("local", {"infra.kafka_port": "29092"}, environ={})
    assert config.kafka.bootstrap_servers == "127.0.0.1:29092"


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["flink.paralelism=2"], "unknown key 'paralelism'"),
        (["flink.parallelism=two"], "expected int"),
        (["nosection.key=1"], "no section 'nosection'"),
        (["flink.parallelism"], "not section.key=value"),
        (["flink.execution_mode=loop"], "thread or process"),
        (["infra.kafka_port=70000"], "not a TCP port"),
        (["topics.dlq.partitions=0"], "partitions must be >= 1"),
    ],
)
def test_bad_overrides_fail_clearly(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config("local", overrides, environ={})


def test_unknown_profile_lists_known_ones():
    with pytest.raises(ConfigError, match="local, production"):
        load_config("staging", environ={})


def test_config_is_frozen():
    config = load_config("local", environ={})
    with pytest.raises(AttributeError):
        config.flink.parallelism = 4


def test_restart_strategy_is_always_bounded_and_production_backs_off_exponentially():
    from jobs.flink_env import restart_strategy_settings

    production = restart_strategy_settings(load_config("production", environ={}).flink)
    assert production["restart-strategy.type"] == "exponential-delay"
    assert production["restart-strategy.exponential-delay.attempts-before-reset-backoff"] == "10"
    assert production["restart-strategy.exponential-delay.max-backoff"] == "120000 ms"
    local = restart_strategy_settings(load_config("local", environ={}).flink)
    assert local == {"restart-strategy.type": "fixed-delay", "restart-strategy.fixed-delay.attempts": "3",
                     "restart-strategy.fixed-delay.delay": "1000 ms"}
    assert restart_strategy_settings(load_config("local", ["flink.restart_attempts=0"], environ={}).flink) == {"restart-strategy.type": "none"}
    with pytest.raises(ConfigError, match="restart_strategy"):
        load_config("local", ["flink.restart_strategy=forever"], environ={})
