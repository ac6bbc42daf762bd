"""Topics as code against the real broker: created idempotently, differences reported, safe fixes."""

import pytest
from confluent_kafka.admin import ConfigResource

from connectors.kafka_topics import admin_client, ensure_topics
from fleet.config import load_config

pytestmark = pytest.mark.integration


def renamed_topics(platform_config, suffix):
    """The profile's five topics under unique names, so this test owns them."""
    overrides = {f"topics.{spec.role}.name": f"{spec.name}-{suffix}" for spec in platform_config.kafka.topics}
    overrides["infra.run_dir"] = str(platform_config.infra.run_dir)
    overrides["infra.kafka_port"] = str(platform_config.infra.kafka_port)
    return load_config("local", overrides, environ={}).kafka.topics


def topic_configs(admin, name):
    [future] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, name)]).values()
    return {key: entry.value for key, entry in future.result().items()}


def test_all_topics_created_once_with_their_settings(kafka_bootstrap, platform_config):
    admin = admin_client(kafka_bootstrap)
    specs = renamed_topics(platform_config, "a")

    first = ensure_topics(admin, specs)
    assert [r.action for r in first] == ["created"] * 5
    second = ensure_topics(admin, specs)
    assert [(r.action, r.differences) for r in second] == [("ok", ())] * 5

    metadata = admin.list_topics(timeout=10).topics
    for spec in specs:
        assert len(metadata[spec.name].partitions) == spec.partitions
        configs = topic_configs(admin, spec.name)
        for key, value in spec.configs.items():
            assert configs[key] == value, (spec.name, key)
    telemetry = next(s for s in specs if s.role == "telemetry")
    assert topic_configs(admin, telemetry.name)["compression.type"] == "lz4"
    assert topic_configs(admin, telemetry.name)["retention.ms"] == "604800000"
    registry = next(s for s in specs if s.role == "registry")
    assert topic_configs(admin, registry.name)["cleanup.policy"] == "compact"


def test_differences_are_reported_and_only_configs_fixed(kafka_bootstrap, platform_config):
    admin = admin_client(kafka_bootstrap)
    specs = renamed_topics(platform_config, "b")
    ensure_topics(admin, specs)
    telemetry = next(s for s in specs if s.role == "telemetry")

    drifted = [
        type(s)(s.role, s.name, s.partitions + 2, s.replication_factor, {**s.configs, "retention.ms": "86400000"})
        if s.role == "telemetry" else s
        for s in specs
    ]
    report = {r.name: r for r in ensure_topics(admin, drifted)}[telemetry.name]
    assert report.action == "differs"
    assert any("partitions: broker has 4, spec says 6" in d for d in report.differences)
    assert any("retention.ms: broker has 604800000, spec says 86400000" in d for d in report.differences)

    fixed = {r.name: r for r in ensure_topics(admin, drifted, fix=True)}[telemetry.name]
    assert fixed.action == "updated"
    assert topic_configs(admin, telemetry.name)["retention.ms"] == "86400000"
    assert len(admin.list_topics(timeout=10).topics[telemetry.name].partitions) == 4  # never re-partitioned
