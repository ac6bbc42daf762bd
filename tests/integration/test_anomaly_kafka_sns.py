"""The anomaly job through real Kafka and the moto server: alerts arrive on `fleet-alerts` and in SNS
(read back through an SQS subscription), once each; a restart from a checkpoint re-raises no open
episode and still fires the offline timer that was pending when the job stopped."""

import threading
import time
import uuid
from collections import Counter
from dataclasses import replace
from pathlib import Path

import orjson
import pytest

from connectors.kafka_clients import make_consumer
from connectors.kafka_topics import TopicSpec, admin_client, ensure_topics
from device_sim.kafka_output import produce_events
from fleet.config import load_config
from jobs.anomaly_detection import anomaly_config, build
from jobs.flink_env import create_env
from tests.integration.test_moto_server import client
from udfs.telemetry_schema import format_timestamp_ms

pytestmark = [pytest.mark.integration, pytest.mark.job]

OFFLINE_S = 12  # long enough that stopping and restoring the job happens while 602's timer is pending
STALL_S = 11  # 601 reports every 0.5 s throughout (the input never stalls); above a restore's first-record wait


def event(vehicle_id, percent=80, lat=50.1105, lon=8.6821):
    return {
        "vehicle_id": vehicle_id, "timestamp": format_timestamp_ms(int(time.time() * 1000)),
        "location": {"lat": lat, "lon": lon}, "battery": {"percent": percent, "charging": False},
    }


class AlertReader:
    """Reads the alerts topic and the SQS queue subscribed to the SNS topic as they arrive."""

    def __init__(self, bootstrap, topic, sqs, queue_url):
        self.consumer = make_consumer(bootstrap, f"alerts-{uuid.uuid4().hex[:6]}", **{"isolation.level": "read_uncommitted"})
        self.consumer.subscribe([topic])
        self.sqs, self.queue_url = sqs, queue_url
        self.kafka, self.sns = [], []

    def poll(self):
        self.kafka += [orjson.loads(m.value()) for m in self.consumer.consume(num_messages=100, timeout=0.2) if m.error() is None]
        for message in self.sqs.receive_message(QueueUrl=self.queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", []):
            self.sns.append(orjson.loads(message["Body"]))
            self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=message["ReceiptHandle"])

    def wait_for(self, predicate, timeout_s=30):
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.poll()
            if predicate(self):
                return
        raise AssertionError(f"timed out; kafka={self.kafka} sns={self.sns}")

    def settle(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.poll()

    def close(self):
        self.consumer.close()


def kinds(alerts):
    return Counter((a["vehicle_id"], a["kind"]) for a in alerts)


def latest_checkpoint(checkpoints: Path, job_id: str, newer_than: int = 0) -> tuple[int, Path] | None:
    done = [
        (int(p.name.split("-")[1]), p) for p in (checkpoints / job_id).glob("chk-*") if (p / "_metadata").is_file()
    ]
    done = [c for c in done if c[0] > newer_than]
    return max(done) if done else None


def wait_checkpoint(checkpoints, job_id, newer_than, timeout_s=20):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = latest_checkpoint(checkpoints, job_id, newer_than)
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("no checkpoint completed")


def test_alerts_to_kafka_and_sns_once_and_restart_from_checkpoint(kafka_bootstrap, moto_endpoint, tmp_path):
    suffix = uuid.uuid4().hex[:8]
    telemetry, alerts_topic, sns_topic = f"telemetry-{suffix}", f"alerts-{suffix}", f"fleet-alerts-{suffix}"
    ensure_topics(admin_client(kafka_bootstrap), [TopicSpec("t", telemetry, 2, 1, {}), TopicSpec("a", alerts_topic, 1, 1, {})])
    sns, sqs = client("sns", moto_endpoint), client("sqs", moto_endpoint)
    topic_arn = sns.create_topic(Name=sns_topic)["TopicArn"]
    queue_url = sqs.create_queue(QueueName=f"ops-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic_arn, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})

    platform = load_config("local", {
        "infra.run_dir": str(tmp_path), "infra.kafka_port": kafka_bootstrap.rsplit(":", 1)[1],
        "infra.moto_port": moto_endpoint.rsplit(":", 1)[1],
        "flink.checkpoint_interval_ms": "300", "flink.restart_attempts": "0",
        "alerts.offline_after_s": str(OFFLINE_S), "alerts.offline_timer_granularity_ms": "200",
        "alerts.input_stall_after_s": str(STALL_S), "alerts.sns_topic": sns_topic,
    }, environ={})
    config = replace(anomaly_config(platform, start="earliest"), telemetry_topic=telemetry, alerts_topic=alerts_topic, group_id=f"alerts-{suffix}")
    checkpoints = Path(platform.flink.checkpoint_dir.removeprefix("file://"))
    reader = AlertReader(kafka_bootstrap, alerts_topic, sqs, queue_url)
    stop_601 = threading.Event()
    try:
        env = create_env(platform.flink)
        build(env, config)
        first = env.execute_async("anomaly detection (first run)")
        job_id = str(first.get_job_id())

        # 601 runs low and keeps reporting, through the restart too (Kafka holds what the stopped
        # job misses); 602 reports and then goes silent.
        silent_since = time.monotonic()  # 602's silence counts from its record's ingest time: at or after this
        produce_events(kafka_bootstrap, telemetry, [event(601, 40), event(602), event(601, 12), event(602)])

        def keep_reporting():
            while not stop_601.wait(0.5):  # still the same low-battery episode: no new alert
                produce_events(kafka_bootstrap, telemetry, [event(601, 11)])

        reporter = threading.Thread(target=keep_reporting, daemon=True)
        reporter.start()
        reader.wait_for(lambda r: (601, "low_battery") in kinds(r.kafka) and (601, "low_battery") in kinds(r.sns))
        seen_at_alert = latest_checkpoint(checkpoints, job_id)
        wait_checkpoint(checkpoints, job_id, newer_than=seen_at_alert[0] if seen_at_alert else 0)
        first.cancel().result()
        reader.settle(0.5)
        assert (602, "offline") not in kinds(reader.kafka), "the offline timer fired before the restart: nothing tested"

        restored = latest_checkpoint(checkpoints, job_id)[1]
        env = create_env(platform.flink, extra={"execution.state-recovery.path": restored.as_uri()})
        build(env, config)
        second = env.execute_async("anomaly detection (restored)")
        try:
            reader.wait_for(lambda r: (602, "offline") in kinds(r.kafka) and (602, "offline") in kinds(r.sns), timeout_s=OFFLINE_S + 20)
            assert time.monotonic() - silent_since >= OFFLINE_S  # raised by the restored timer, not early
            reader.settle(2)
        finally:
            second.cancel().result()
    finally:
        stop_601.set()
        reader.close()

    expected = Counter({(601, "low_battery"): 1, (602, "offline"): 1})
    assert kinds(reader.kafka) == expected, reader.kafka
    assert kinds(reader.sns) == expected, reader.sns
    assert {a["alert_id"] for a in reader.kafka} == {a["alert_id"] for a in reader.sns}
    offline = next(a for a in reader.kafka if a["kind"] == "offline")
    assert offline["message"] == f"Vehicle 602 hasn't reported telemetry for {OFFLINE_S / 60:g} minutes."
