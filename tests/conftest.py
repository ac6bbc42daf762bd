"""Shared fixtures. Real servers are session-scoped and started only by the tests that ask for them,
each on free loopback ports in a run folder of its own, so a developer's `telemetry infra up`
(default ports) and the test suite never collide."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.kafka_topics import TopicSpec
from fleet.config import PlatformConfig, load_config
from infra.manager import LocalInfra
from infra.moto_server import MotoServer
from infra.process import free_port


def _test_config(run_dir: Path) -> PlatformConfig:
    return load_config(
        "local",
        {
            "infra.run_dir": str(run_dir),
            "infra.kafka_port": str(free_port()),
            "infra.kafka_controller_port": str(free_port()),
            "infra.mqtt_port": str(free_port()),
            "infra.moto_port": str(free_port()),
            "infra.kafka_heap": "768m",
            "flink.checkpoint_interval_ms": "500",
            "flink.restart_attempts": "0",
        },
        environ={},  # hermetic: a developer's TELEMETRY__* variables must not leak into tests
    )


@pytest.fixture(scope="session")
def platform_config(tmp_path_factory: pytest.TempPathFactory) -> PlatformConfig:
    return _test_config(tmp_path_factory.mktemp("run"))


@pytest.fixture(scope="session")
def local_infra(platform_config: PlatformConfig) -> Iterator[LocalInfra]:
    infra = LocalInfra(platform_config.infra)
    try:
        yield infra
    finally:
        infra.down()


@pytest.fixture(scope="session")
def kafka_bootstrap(local_infra: LocalInfra, platform_config: PlatformConfig) -> str:
    local_infra.up(["kafka"])
    return platform_config.kafka.bootstrap_servers


@pytest.fixture(scope="session")
def mqtt_address(local_infra: LocalInfra, platform_config: PlatformConfig) -> tuple[str, int]:
    local_infra.up(["mosquitto"])
    return platform_config.infra.host, platform_config.infra.mqtt_port


@pytest.fixture(scope="session")
def moto_endpoint(local_infra: LocalInfra, platform_config: PlatformConfig) -> str:
    local_infra.up(["moto"])
    return platform_config.infra.moto_endpoint


@pytest.fixture()
def private_moto(tmp_path: Path) -> Iterator[MotoServer]:
    """A moto server of the test's own, for tests that leave S3 objects behind: the session's
    server's /moto-api/data.json (which test_pipeline_aws_stores reads) fails with a 500 once S3
    holds what Flink's S3 writer or the lake's rewrites left (found in CI)."""
    server = MotoServer(tmp_path / "private-moto", "127.0.0.1", free_port())
    server.up()
    yield server
    server.down()


_topic_numbers = itertools.count()


@pytest.fixture
def fresh_topic(kafka_bootstrap: str):
    """Factory: a new, uniquely named topic (so tests never see each other's records)."""
    from connectors.kafka_topics import admin_client, ensure_topics

    admin = admin_client(kafka_bootstrap)

    def make(partitions: int = 4, *, prefix: str = "test") -> str:
        name = f"{prefix}-{next(_topic_numbers)}-{uuid.uuid4().hex[:8]}"
        spec = TopicSpec("test", name, partitions, 1, {"compression.type": "lz4", "cleanup.policy": "delete"})
        ensure_topics(admin, [spec])
        return name

    return make
