"""Flink's Prometheus reporter on the pipeline's MiniCluster: with `[flink] prometheus_port` set, the
job's /metrics carries our functions' counters, Flink's record counts and its checkpoint metrics,
each equal to what the test put in the topic (or found on disk), not merely present.

The job reads an unbounded topic and is cancelled after the scrape: a finished job's metrics are
unregistered with it."""

import copy
import random
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from connectors.kafka_clients import make_consumer, make_producer
from connectors.kafka_topics import TopicSpec, admin_client, ensure_topics
from device_sim.fleet_model import Fleet, FleetSpec
from device_sim.kafka_output import produce_events
from fleet.config import load_config
from infra.process import free_port
from jobs.flink_env import create_env
from jobs.telemetry_pipeline import build, pipeline_config
from tests.metrics_text import poll, scrape, value, values

pytestmark = [pytest.mark.integration, pytest.mark.job]

MALFORMED = [b"{broken", b"[]", b'{"vehicle_id": 5}']
JOB_NAME = "pipeline metrics test"
# Label values as the reporter writes them: every character but [A-Za-z0-9:_] becomes "_" (measured).
JOB_LABEL = "pipeline_metrics_test"
SOURCE = "Source:_vehicle_telemetry_source"
ENRICH = "parse__dedup__enrich__store"


class CommittedCount:
    """Records a read_committed consumer has seen on a topic so far."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = make_consumer(bootstrap, f"verify-{uuid.uuid4().hex[:8]}")
        self.consumer.subscribe([topic])
        self.count = 0

    def __call__(self) -> int:
        self.count += sum(1 for m in self.consumer.consume(num_messages=10_000, timeout=0.5) if m.error() is None)
        return self.count

    def close(self) -> None:
        self.consumer.close()


def completed_checkpoint_ids(checkpoint_dir: Path) -> list[int]:
    """Ids of the checkpoints on disk that completed (a chk-N folder gets _metadata last)."""
    return sorted(int(p.parent.name[4:]) for p in checkpoint_dir.glob("*/chk-*/_metadata"))


def test_pipeline_counters_records_and_checkpoints_on_the_reporter(kafka_bootstrap, platform_config, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    topics = {role: f"{role}-{suffix}" for role in ("telemetry", "enriched", "dlq", "registry")}
    ensure_topics(admin_client(kafka_bootstrap), [TopicSpec(role, name, 2, 1, {}) for role, name in topics.items()])
    valid = list(Fleet(FleetSpec(vehicles=12, seed=21)).take(400))
    resent = [copy.deepcopy(e) for e in random.Random(21).sample(valid, 35)]
    assert produce_events(kafka_bootstrap, topics["telemetry"], valid + resent).failed == 0
    producer = make_producer(kafka_bootstrap)
    for payload in MALFORMED:
        producer.produce(topics["telemetry"], payload)
    assert producer.flush(30) == 0
    total = len(valid) + len(resent) + len(MALFORMED)

    port = free_port()
    platform = load_config("local", {
        "infra.run_dir": str(tmp_path), "infra.kafka_port": str(platform_config.infra.kafka_port),
        "flink.checkpoint_interval_ms": "500", "flink.restart_attempts": "0", "flink.prometheus_port": str(port),
    }, environ={})
    config = replace(
        pipeline_config(platform, start="earliest"),  # no stop: the job runs until cancelled
        telemetry_topic=topics["telemetry"], enriched_topic=topics["enriched"], dlq_topic=topics["dlq"],
        registry_topic=topics["registry"], group_id=f"pipeline-{suffix}", transactional_id_prefix=f"tx-{suffix}",
    )
    env = create_env(platform.flink)
    build(env, config)
    started = time.monotonic()
    client = env.execute_async(JOB_NAME)
    enriched = CommittedCount(kafka_bootstrap, topics["enriched"])
    try:
        # Every unique valid event committed to telemetry-enriched (so a checkpoint completed),
        # and every record read, as Kafka and the reporter each say.
        poll(enriched, lambda n: n >= len(valid), timeout_s=120, what=f"{len(valid)} committed enriched records")
        first = poll(lambda: scrape(port), lambda s: sum(values(s, "flink_taskmanager_job_task_operator_numRecordsOut", operator_name=SOURCE)) >= total,
                     timeout_s=30, what=f"the source's numRecordsOut reaching {total}")
        checkpoints_on_disk = completed_checkpoint_ids(Path(platform.flink.checkpoint_dir.removeprefix("file://")))
        second = scrape(port)
        elapsed_ms = (time.monotonic() - started) * 1000
        assert enriched() == len(valid)  # nothing more arrived meanwhile
    finally:
        enriched.close()
        client.cancel().result()

    job = {"job_name": JOB_LABEL}
    operator = "flink_taskmanager_job_task_operator_"
    # Our functions' counters (jobs/pipeline_batch.py), as many as the test caused.
    assert value(second, operator + "duplicates_dropped", operator_name=ENRICH, **job) == len(resent)
    assert value(second, operator + "payloads_rejected", operator_name=ENRICH, **job) == len(MALFORMED)
    assert value(second, operator + "hot_store_points_written", operator_name=ENRICH, **job) == len(valid)
    # Flink's record counts: operators, and tasks (a task's In/Out are what crosses its chain's edges).
    assert value(second, operator + "numRecordsOut", operator_name=SOURCE, **job) == total
    assert value(second, operator + "numRecordsOut", operator_name=ENRICH, **job) == len(valid)  # its main output: the enriched rows
    [enriched_writer] = {s.labels["operator_name"] for s in second
                         if s.name == operator + "numRecordsSend" and s.labels["operator_name"].startswith("telemetry_enriched")}
    assert value(second, operator + "numRecordsSend", operator_name=enriched_writer) == len(valid)
    source_task = [s for s in second if s.name == "flink_taskmanager_job_task_numRecordsOut" and s.labels["task_name"].startswith(SOURCE)]
    assert [s.value for s in source_task] == [total]
    assert sum(values(second, "flink_taskmanager_job_task_numRecordsIn", **job)) >= total  # every record crosses at least one edge
    # Checkpoints: the newest completed one on disk lies between the two scrapes' ids.
    assert checkpoints_on_disk, "no completed checkpoint on disk"
    assert value(first, "flink_jobmanager_job_lastCompletedCheckpointId", **job) <= checkpoints_on_disk[-1] \
        <= value(second, "flink_jobmanager_job_lastCompletedCheckpointId", **job)
    completed = value(second, "flink_jobmanager_job_numberOfCompletedCheckpoints", **job)
    assert completed >= len(checkpoints_on_disk) and completed >= 1
    assert 0 <= value(second, "flink_jobmanager_job_lastCheckpointDuration", **job) < elapsed_ms
    assert value(second, "flink_jobmanager_job_numRestarts", **job) == 0


def test_standalone_cluster_processes_each_serve_the_reporter(tmp_path):
    """infra/flink_cluster.py with a port range: the JobManager and the TaskManager each take a port
    of it (the reporter from PyFlink's plugins/, which a cluster loads) and report the cluster."""
    from infra.flink_cluster import FlinkCluster

    first = free_port()
    cluster = FlinkCluster(tmp_path, slots=3, taskmanager_memory="1024m", prometheus_ports=f"{first}-{first + 3}")
    try:
        cluster.up(taskmanagers=1)
        # The TaskManager registers, then reports its slots.
        jobmanager = poll(lambda: scrape(first), lambda s: value(s, "flink_jobmanager_taskSlotsTotal") > 0, timeout_s=30,
                          what="the TaskManager's slots registered")
        assert value(jobmanager, "flink_jobmanager_numRegisteredTaskManagers") == 1
        assert value(jobmanager, "flink_jobmanager_taskSlotsTotal") == 3
        assert cluster.status().detail.endswith("3/3 slots free")  # what the REST API says
        [taskmanager_id] = [tm["id"] for tm in cluster.taskmanagers()]
        taskmanager = scrape(first + 1)
        assert {s.labels.get("tm_id") for s in taskmanager if s.name.startswith("flink_taskmanager_")} == {
            taskmanager_id.replace(".", "_").replace("-", "_")}  # label values keep only [A-Za-z0-9:_]
    finally:
        cluster.down()
