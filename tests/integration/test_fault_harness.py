"""The failure harness in CI, at small scale: the telemetry pipeline and the anomaly job on a real
standalone Flink cluster (`flink run -py`), one failure per test, every record counted after.

`telemetry faults run` is the same harness at a larger scale; its table is in docs/failure-harness.md.
"""

from __future__ import annotations

from dataclasses import replace

import pytest

from fleet.harness.runner import Harness, HarnessPlan, summary_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# Thousands of events per failure, every kind of bad input. The offline timeout stays well above
# the longest pause a failure causes (a savepoint upgrade's resubmission: ~20 s on an idle machine,
# 40 s seen under load); the runs with a planned offline episode need input for longer than it.
WITH_OFFLINE = HarnessPlan(vehicles=40, duration_s=60.0, duplicates=30, offline_vehicles=1, offline_s=53.0, offline_after_s=45.0)
SHORT = replace(WITH_OFFLINE, duration_s=30.0, offline_vehicles=0)
# Nothing reaches Kafka from 15 s to 40 s: longer than the offline timeout (20 s), far longer than
# the stall period (6 s). Every vehicle's send gap spans the outage; only the vehicle that never
# comes back has 20 s of silence the platform could see (6 s into the outage + 20 s after it).
INGEST_OUTAGE = replace(WITH_OFFLINE, offline_vehicles=0, offline_after_s=20.0, input_stall_after_s=6.0, outage_s=25.0, fault_at=0.25)


@pytest.fixture(scope="module")
def harness(platform_config, kafka_bootstrap, moto_endpoint):
    with Harness(platform_config, WITH_OFFLINE) as running:
        yield running


def _run(harness: Harness, fault: str, plan: HarnessPlan):
    harness.plan = plan
    result = harness.run(fault)
    print(summary_line(result))
    assert result.sent > 1_500 and result.rejects > 0 and result.alerts_expected >= 4
    assert result.ambiguous_gaps == 0, "the plan put a silence near the offline timeout"
    for sink in (result.enriched, result.bronze, result.hot_store, result.dlq):
        assert (sink.lost, sink.duplicated, sink.unexpected) == (0, 0, 0), summary_line(result)
    assert result.enriched.records == result.bronze.records == result.hot_store.records == result.unique_valid
    assert result.dlq.records == result.rejects
    assert result.alerts_raised == result.alerts_expected and result.alerts_unexpected == 0, summary_line(result)
    assert result.platform_ok, summary_line(result)
    assert result.exact
    return result


def test_taskmanager_killed_mid_stream(harness):
    result = _run(harness, "taskmanager_kill", WITH_OFFLINE)
    assert result.restarts == {"pipeline": 1, "alerts": 1}  # both failed over from a checkpoint
    # The silent vehicle's offline episode spans the failure: raised once, closed once.
    assert result.alerts_expected_by_kind["offline"] == result.alerts_expected_by_kind["back_online"] == 1


def test_python_function_fails_once(harness):
    result = _run(harness, "udf_failure", SHORT)
    assert result.restarts == {"pipeline": 1, "alerts": 1}


def test_kafka_broker_restarted(harness):
    _run(harness, "kafka_restart", SHORT)


def test_timestream_endpoint_unavailable_for_30_s(harness):
    result = _run(harness, "hot_store_outage", replace(SHORT, store="timestream", outage_s=30.0))
    # Writes failed and the job restarted from its checkpoint (retrying in place cannot outlast
    # 30 s); the replayed batches are rewrites, which Timestream turns into no-ops.
    assert result.restarts["pipeline"] >= 1


def test_stop_with_savepoint_and_resume(harness):
    result = _run(harness, "savepoint_upgrade", WITH_OFFLINE)
    assert "both restored from them" in result.fault_detail
    assert result.alerts_expected_by_kind["offline"] == 1
    assert result.restarts == {"pipeline": 0, "alerts": 0}


def test_ingest_path_down_longer_than_the_offline_timeout(harness):
    result = _run(harness, "ingest_outage", INGEST_OUTAGE)
    # One platform alert for the incident, no page per vehicle for it, and the one vehicle that
    # really went silent during it still goes offline (and never comes back).
    assert result.platform_alerts == {"input_restored": 1, "input_stalled": 1}
    assert result.alerts_expected_by_kind.get("offline") == 1 and "back_online" not in result.alerts_expected_by_kind
    assert result.restarts == {"pipeline": 0, "alerts": 0}
