"""The state measurement of `telemetry bench pipeline` (fleet.bench.state) at smoke size, through the
real local Kafka and moto of the test session: both jobs unbounded on a standalone cluster, one
TaskManager each, every vehicle's events processed, checkpoints read while idle, TaskManager memory.

Presence and counts only: durations and sizes are the benchmark's output, asserted only as measured
(positive), never against a bound.
"""

from __future__ import annotations

import uuid

import pytest

from fleet.bench.state import JOBS, SMOKE_STATE, measure_state, state_markdown

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


@pytest.fixture(scope="module")
def state(platform_config, kafka_bootstrap, moto_endpoint, tmp_path_factory):
    folder = tmp_path_factory.mktemp("bench-state")
    return measure_state(platform_config, SMOKE_STATE, folder, prefix=f"test-state-{uuid.uuid4().hex[:8]}")


def test_every_vehicle_is_in_the_state_and_every_sink_counted(state):
    assert state["problems"] == []
    assert state["vehicles"] == SMOKE_STATE.vehicles
    assert state["events"] >= SMOKE_STATE.vehicles * SMOKE_STATE.events_per_vehicle
    assert set(state["jobs"]) == set(JOBS)
    pipeline, alerts = state["jobs"]["pipeline"]["outputs"], state["jobs"]["alerts"]["outputs"]
    assert pipeline["enriched"]["records"] == pipeline["enriched"]["distinct"] == state["unique_valid"] == state["events"]
    assert alerts["alerts"]["records"] == state["alerts_expected"] > 0


def test_checkpoints_and_taskmanager_memory_are_measured(state):
    pids = set()
    for kind, job in state["jobs"].items():
        idle = job["checkpoints"]["idle"]
        assert idle["count"] >= SMOKE_STATE.idle_checkpoints, kind
        for key in ("duration_ms", "checkpointed_bytes", "state_bytes"):
            assert idle["latest"][key] > 0 and idle[key]["max"] >= idle[key]["avg"] > 0, (kind, key)
        assert job["checkpoints"]["completed"] >= idle["count"]
        tm = job["taskmanager"]
        assert tm["peak_rss_mib"] >= tm["rss_mib"] > 0, kind
        assert tm["heap_used_mib"] > 0 and tm["managed_total_mib"] > 0, kind
        pids.add(job["taskmanager_id"])
    assert len(pids) == len(JOBS), "each job on a TaskManager of its own"


def test_the_report_section(state):
    text = "\n".join(state_markdown(state))
    assert text.startswith(f"## State at {SMOKE_STATE.vehicles // 1000}K vehicles")
    for kind in JOBS:
        assert f"| {kind} |" in text
    assert "TaskManager RSS ≤ 2 GiB" in text and "checkpoint ≤ 1 s" in text
