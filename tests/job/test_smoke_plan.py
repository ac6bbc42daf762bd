"""The smoke job's plan has the named operators (no broker needed to build it)."""

import json

import pytest

from connectors.kafka_source import OffsetPosition
from jobs.flink_env import create_env
from jobs.smoke_count import SmokeConfig, build

pytestmark = pytest.mark.job


def test_plan_names_every_operator(platform_config):
    env = create_env(platform_config.flink)
    config = SmokeConfig("127.0.0.1:1", "vehicle-telemetry", "plan", OffsetPosition("earliest"), OffsetPosition("latest"))
    build(env, config)
    plan = json.loads(env.get_execution_plan())
    contents = " | ".join(node["contents"] for node in plan["nodes"])
    for name in ("vehicle-telemetry source", "validate payload", "count per outcome"):
        assert name in contents, contents
