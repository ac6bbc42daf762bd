"""The failure harness in CI, at small scale: the telemetry pipeline and the anomaly job on a real
standalone Flink cluster (`flink run -py`), one failure per test, every record counted after.

`telemetry faults run` is the same harness at a larger scale; its table is in docs/failure-harness.md.
"""

from __future__ import annotations

import pytest

from fleet.fault_harness import FAULTS, Harness, HarnessPlan, summary_line

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

# Thousands of events per failure, with every kind of bad input and an offline episode. The
# offline timeout stays well above the longest pause a failure causes (a savepoint upgrade's
# resubmission: 20 s on an idle machine, 40 s seen under load).
CI_PLAN = HarnessPlan(vehicles=40, duration_s=60.0, duplicates=30, offline_vehicles=1, offline_s=53.0, offline_after_s=45.0)


@pytest.fixture(scope="module")
def harness(platform_config, kafka_bootstrap, moto_endpoint):
    with Harness(platform_config, CI_PLAN) as running:
        yield running


def _assert_exact(result) -> None:
    print(summary_line(result))
    assert result.sent > 1_500 and result.rejects > 0 and result.alerts_expected >= 4
    assert result.ambiguous_gaps == 0, "the plan put a silence near the offline timeout"
    for sink in (result.enriched, result.bronze, result.hot_store, result.dlq):
        assert (sink.lost, sink.duplicated, sink.unexpected) == (0, 0, 0), summary_line(result)
    assert result.enriched.records == result.bronze.records == result.hot_store.records == result.unique_valid
    assert result.dlq.records == result.rejects
    assert result.alerts_raised == result.alerts_expected and result.alerts_unexpected == 0, summary_line(result)
    assert result.exact


@pytest.mark.parametrize("fault", list(FAULTS))
def test_nothing_lost_or_duplicated_under_failure(harness, fault):
    result = harness.run(fault)
    _assert_exact(result)
    if fault in ("taskmanager_kill", "udf_failure"):
        # The failure really happened: both jobs went through their restart strategy.
        assert result.restarts == {"pipeline": 1, "alerts": 1}, result.restarts


def test_stop_with_savepoint_and_resume_loses_and_repeats_nothing(harness):
    result = harness.run("savepoint_upgrade")
    _assert_exact(result)
    assert "both restored from them" in result.fault_detail
    assert result.restarts == {"pipeline": 0, "alerts": 0}
