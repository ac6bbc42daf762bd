"""Python functions really run in thread mode: inside the TaskManager JVM, not in a separate Python
worker (PyFlink falls back to process mode silently for operators thread mode does not support)."""

import os

import pytest
from pyflink.common import Row, Types
from pyflink.java_gateway import get_gateway

from jobs.flink_env import create_env
from jobs.smoke_count import OUTCOME_TYPE, outcome_of

pytestmark = pytest.mark.job


def test_udfs_run_inside_the_jvm_process(platform_config):
    env = create_env(platform_config.flink)
    jvm_pid = get_gateway().jvm.java.lang.ProcessHandle.current().pid()
    assert jvm_pid != os.getpid()

    payloads = ['{"vehicle_id": 1}', "not json"]
    rows = list(
        env.from_collection(payloads, type_info=Types.STRING())
        .map(outcome_of, output_type=OUTCOME_TYPE)
        .map(lambda row: Row(row[0], os.getpid()), output_type=Types.ROW([Types.STRING(), Types.LONG()]))
        .execute_and_collect()
    )
    assert sorted(r[0] for r in rows) == ["rejected:bad_json", "rejected:missing_field"]
    assert {r[1] for r in rows} == {jvm_pid}
