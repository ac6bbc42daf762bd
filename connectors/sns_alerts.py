"""Alerts to Amazon SNS (the seed's `sns.publish` to the operations team), via boto3.

Delivery is at least once: after a replay the same alert can be published again, with the same
`alert_id` in its message attributes so subscribers drop the repeat. A FIFO topic (name ending in
`.fifo`) drops it by itself: the alert id is the deduplication id.

`publish` sends one alert per call. `publish_batch` sends many: PublishBatch calls of up to 10
entries, several in flight at once (a bounded thread pool of `concurrency`), failed entries retried
with backoff. An entry SNS refuses as the sender's fault (SenderFault, e.g. an invalid parameter)
cannot succeed on a retry: it is returned as refused, not raised. Anything still failing after the
retries is raised, so the Flink job restarts from its checkpoint and publishes again (same ids).
On a FIFO topic the alerts of one message group (a vehicle) stay in one lane, in order.
"""

from __future__ import annotations

import random
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from connectors.aws_clients import RetryLater, RetryPolicy, call_with_retry, make_client
from connectors.hot_store import StoreConfig

BATCH_LIMIT = 10  # SNS PublishBatch: at most 10 entries per call
_ATTRIBUTES = ("alert_id", "kind", "severity", "vehicle_id")


@dataclass
class BatchResult:
    message_ids: dict[str, str] = field(default_factory=dict)  # alert_id → SNS MessageId
    refused: dict[str, str] = field(default_factory=dict)  # alert_id → "Code: message", permanently refused
    calls: int = 0  # PublishBatch requests made, retries included

    def merge(self, other: BatchResult) -> None:
        self.message_ids.update(other.message_ids)
        self.refused.update(other.refused)
        self.calls += other.calls


def message_group(alert: dict[str, Any]) -> str:
    """FIFO order is kept per vehicle; a storm summary (no vehicle) is grouped by kind and zone."""
    if alert.get("vehicle_id") is not None:
        return str(alert["vehicle_id"])
    return f"{alert['kind']}/{alert.get('zone_id') or '-'}"


class SnsAlertPublisher:
    def __init__(
        self, aws: StoreConfig, topic_name: str, retry: RetryPolicy = RetryPolicy(), *,
        concurrency: int = 8, client: Any = None, sleep: Callable[[float], None] = time.sleep,
    ):
        if concurrency < 1:
            raise ValueError(f"concurrency must be >= 1, got {concurrency}")
        self.topic_name = topic_name
        self.retry = retry
        self.concurrency = concurrency
        self.client = client if client is not None else make_client("sns", aws, max_connections=concurrency)
        self.fifo = topic_name.endswith(".fifo")
        self.sleep = sleep
        self._topic_arn: str | None = None
        self._pool: ThreadPoolExecutor | None = None

    def ensure_topic(self) -> str:
        """Create the topic if missing (idempotent in SNS) and return its ARN."""
        attributes = {"FifoTopic": "true", "ContentBasedDeduplication": "false"} if self.fifo else {}
        response = call_with_retry(
            lambda: self.client.create_topic(Name=self.topic_name, Attributes=attributes), policy=self.retry, what="sns create_topic"
        )
        self._topic_arn = response["TopicArn"]
        return self._topic_arn

    @property
    def topic_arn(self) -> str:
        return self._topic_arn or self.ensure_topic()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def _fields(self, alert: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "Subject": alert["subject"][:100],  # SNS limit
            "Message": orjson.dumps(alert).decode(),
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": str(alert[name])}
                for name in _ATTRIBUTES if alert.get(name) is not None  # SNS refuses an empty value
            },
        }
        if self.fifo:
            fields["MessageDeduplicationId"] = alert["alert_id"]
            fields["MessageGroupId"] = message_group(alert)
        return fields

    def publish(self, alert: dict[str, Any]) -> str:
        """Publish one alert; returns SNS's MessageId. Transient errors are retried, then raised."""
        request = {"TopicArn": self.topic_arn, **self._fields(alert)}
        message_id: str = call_with_retry(lambda: self.client.publish(**request), policy=self.retry, what="sns publish")["MessageId"]
        return message_id

    def publish_batch(self, alerts: Sequence[dict[str, Any]]) -> BatchResult:
        """Publish every alert (an id repeated in `alerts` once) in PublishBatch calls of ≤ 10,
        up to `concurrency` in flight. Returns the message ids and the refused entries; raises when
        transient failures outlast the retries."""
        unique: dict[str, dict[str, Any]] = {}
        for alert in alerts:
            unique.setdefault(alert["alert_id"], alert)
        lanes = self._lanes(list(unique.values()))
        result = BatchResult()
        if not lanes:
            return result
        topic_arn = self.topic_arn
        if len(lanes) == 1:
            result.merge(self._publish_lane(topic_arn, lanes[0]))
            return result
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="sns-publish")
        futures = [self._pool.submit(self._publish_lane, topic_arn, lane) for lane in lanes]
        errors = []
        for future in futures:  # wait for every call before raising: none is left running
            try:
                result.merge(future.result())
            except Exception as error:  # noqa: BLE001 - re-raised below
                errors.append(error)
        if errors:
            raise errors[0]
        return result

    def _lanes(self, alerts: list[dict[str, Any]]) -> list[list[list[dict[str, Any]]]]:
        """Units of work, each a list of chunks sent one after another. Standard topic: one chunk
        per lane (all in parallel). FIFO: one lane per message-group hash, chunks in order."""
        if not self.fifo:
            return [[alerts[i:i + BATCH_LIMIT]] for i in range(0, len(alerts), BATCH_LIMIT)]
        by_lane: dict[int, list[dict[str, Any]]] = {}
        for alert in alerts:
            by_lane.setdefault(zlib.crc32(message_group(alert).encode()) % self.concurrency, []).append(alert)
        return [[lane[i:i + BATCH_LIMIT] for i in range(0, len(lane), BATCH_LIMIT)] for _, lane in sorted(by_lane.items())]

    def _publish_lane(self, topic_arn: str, chunks: list[list[dict[str, Any]]]) -> BatchResult:
        result = BatchResult()
        for chunk in chunks:
            result.merge(self._publish_chunk(topic_arn, chunk))
        return result

    def _publish_chunk(self, topic_arn: str, chunk: list[dict[str, Any]]) -> BatchResult:
        entries = {f"a{i}": {"Id": f"a{i}", **self._fields(alert)} for i, alert in enumerate(chunk)}
        alert_of = {f"a{i}": alert["alert_id"] for i, alert in enumerate(chunk)}
        pending = list(entries)
        result = BatchResult()

        def attempt() -> None:
            nonlocal pending
            result.calls += 1
            response = self.client.publish_batch(TopicArn=topic_arn, PublishBatchRequestEntries=[entries[i] for i in pending])
            for ok in response.get("Successful", ()):
                result.message_ids[alert_of[ok["Id"]]] = ok["MessageId"]
            again = []
            for failed in response.get("Failed", ()):
                if failed.get("SenderFault"):
                    result.refused[alert_of[failed["Id"]]] = f"{failed.get('Code', '')}: {failed.get('Message', '')}"
                else:
                    again.append(failed["Id"])
            pending = again
            if again:
                first = next(f for f in response["Failed"] if f["Id"] == again[0])
                raise RetryLater(f"sns publish_batch: {len(again)} of {len(entries)} entries failed ({first.get('Code')}: {first.get('Message')})")

        call_with_retry(attempt, policy=self.retry, what="sns publish_batch", sleep=self.sleep, rng=random.Random())
        return result
