"""SnsAlertPublisher.publish_batch against a fake SNS client: chunks of ≤ 10, bounded concurrency,
failed entries retried then raised, sender faults returned as refused, FIFO order per vehicle."""

import threading
import time

import pytest
from botocore.exceptions import ClientError

from connectors.aws_clients import RetryLater, RetryPolicy
from connectors.sns_alerts import SnsAlertPublisher

ARN = "arn:aws:sns:eu-central-1:123456789012:fleet-alerts"


def alert(n, vehicle_id=None, kind="geofence_exit"):
    return {
        "alert_id": f"id-{n}", "kind": kind, "severity": "critical", "vehicle_id": 1000 + n if vehicle_id is None else vehicle_id,
        "subject": f"Geofence Violation: Vehicle {n}", "message": "outside", "zone_id": "u0yhuh",
    }


class FakeSns:
    """Records every PublishBatch; `fail` decides per entry (alert id, attempt) what goes wrong."""

    def __init__(self, fail=None, delay_s=0.0):
        self.calls = []
        self.fail = fail or (lambda alert_id, attempt: None)
        self.attempts = {}
        self.delay_s = delay_s
        self.lock = threading.Lock()
        self.in_flight = self.max_in_flight = 0

    def create_topic(self, Name, Attributes):
        return {"TopicArn": ARN}

    def publish_batch(self, TopicArn, PublishBatchRequestEntries):
        with self.lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.calls.append(PublishBatchRequestEntries)
        time.sleep(self.delay_s)
        ok, failed = [], []
        for entry in PublishBatchRequestEntries:
            alert_id = entry["MessageAttributes"]["alert_id"]["StringValue"]
            with self.lock:
                self.attempts[alert_id] = attempt = self.attempts.get(alert_id, 0) + 1
            outcome = self.fail(alert_id, attempt)
            if outcome is None:
                ok.append({"Id": entry["Id"], "MessageId": f"m-{alert_id}"})
            else:
                failed.append({"Id": entry["Id"], "Code": outcome[0], "Message": "no", "SenderFault": outcome[1]})
        with self.lock:
            self.in_flight -= 1
        return {"Successful": ok, "Failed": failed}


def publisher(fake, topic="fleet-alerts", concurrency=8, attempts=4):
    sleeps = []
    pub = SnsAlertPublisher(None, topic, RetryPolicy(max_attempts=attempts), concurrency=concurrency, client=fake, sleep=sleeps.append)
    return pub, sleeps


def test_chunks_of_ten_every_alert_once():
    fake = FakeSns()
    pub, _ = publisher(fake)
    alerts = [alert(n) for n in range(25)]
    result = pub.publish_batch(alerts + alerts[:5])  # a replayed id is published once per call
    pub.close()
    assert sorted(len(c) for c in fake.calls) == [5, 10, 10]
    assert result.message_ids == {f"id-{n}": f"m-id-{n}" for n in range(25)} and result.refused == {} and result.calls == 3
    sent = [e for call in fake.calls for e in call]
    assert sorted(e["MessageAttributes"]["alert_id"]["StringValue"] for e in sent) == sorted(f"id-{n}" for n in range(25))
    assert all(len({e["Id"] for e in call}) == len(call) for call in fake.calls)
    assert "MessageDeduplicationId" not in sent[0]


def test_in_flight_calls_are_bounded():
    fake = FakeSns(delay_s=0.02)
    pub, _ = publisher(fake, concurrency=3)
    pub.publish_batch([alert(n) for n in range(100)])
    pub.close()
    assert len(fake.calls) == 10
    assert 1 < fake.max_in_flight <= 3


def test_failed_entries_are_retried_alone_then_succeed():
    fake = FakeSns(fail=lambda alert_id, attempt: ("Throttled", False) if alert_id in ("id-3", "id-7") and attempt < 3 else None)
    pub, sleeps = publisher(fake)
    result = pub.publish_batch([alert(n) for n in range(10)])
    assert [len(c) for c in fake.calls] == [10, 2, 2]
    assert len(result.message_ids) == 10 and result.calls == 3 and len(sleeps) == 2


def test_still_failing_after_the_retries_raises():
    fake = FakeSns(fail=lambda alert_id, attempt: ("InternalError", False) if alert_id == "id-0" else None)
    pub, _ = publisher(fake, attempts=3)
    with pytest.raises(RetryLater, match="1 of 10 entries failed"):
        pub.publish_batch([alert(n) for n in range(10)])
    assert fake.attempts["id-0"] == 3 and fake.attempts["id-1"] == 1


def test_sender_fault_is_refused_not_retried():
    fake = FakeSns(fail=lambda alert_id, attempt: ("InvalidParameter", True) if alert_id == "id-2" else None)
    pub, _ = publisher(fake)
    result = pub.publish_batch([alert(n) for n in range(4)])
    assert result.refused == {"id-2": "InvalidParameter: no"} and len(result.message_ids) == 3 and len(fake.calls) == 1


def test_throttled_request_is_retried():
    class Throttled(FakeSns):
        def publish_batch(self, TopicArn, PublishBatchRequestEntries):
            if len(self.calls) == 0:
                self.calls.append("throttled")
                raise ClientError({"Error": {"Code": "Throttling"}, "ResponseMetadata": {"HTTPStatusCode": 400}}, "PublishBatch")
            return super().publish_batch(TopicArn, PublishBatchRequestEntries)

    fake = Throttled()
    pub, sleeps = publisher(fake)
    assert len(pub.publish_batch([alert(n) for n in range(3)]).message_ids) == 3 and len(sleeps) == 1


def test_fifo_keeps_dedup_ids_and_each_vehicle_in_order_in_one_lane():
    fake = FakeSns(delay_s=0.005)
    pub, _ = publisher(fake, topic="fleet-alerts.fifo", concurrency=4)
    # Vehicle 7 raises 30 alerts among 60 others: its entries must go out in order, one call after another.
    alerts = []
    for n in range(90):
        alerts.append(alert(n, vehicle_id=7 if n % 3 == 0 else None))
    pub.publish_batch(alerts)
    pub.close()
    sent = [e for call in fake.calls for e in call]
    assert all(e["MessageDeduplicationId"] == e["MessageAttributes"]["alert_id"]["StringValue"] for e in sent)
    seven = [e["MessageDeduplicationId"] for call in fake.calls for e in call if e["MessageGroupId"] == "7"]
    assert seven == [f"id-{n}" for n in range(0, 90, 3)]


def test_summary_without_vehicle_has_no_empty_attribute_and_a_fifo_group():
    fake = FakeSns()
    pub, _ = publisher(fake, topic="fleet-alerts.fifo")
    summary = {**alert(1), "vehicle_id": None, "kind": "alert_storm"}
    pub.publish_batch([summary])
    entry = fake.calls[0][0]
    assert "vehicle_id" not in entry["MessageAttributes"] and entry["MessageGroupId"] == "alert_storm/u0yhuh"


def test_empty_batch_makes_no_call():
    fake = FakeSns()
    pub, _ = publisher(fake)
    assert pub.publish_batch([]).calls == 0 and fake.calls == []
