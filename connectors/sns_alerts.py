"""Alerts to Amazon SNS (the seed's `sns.publish` to the operations team), via boto3.

Delivery is at least once: after a replay the same alert can be published again, with the same
`alert_id` in its message attributes so subscribers drop the repeat. A FIFO topic (name ending in
`.fifo`) drops it by itself: the alert id is the deduplication id.
"""

from __future__ import annotations

from typing import Any

import orjson

from connectors.aws_clients import RetryPolicy, call_with_retry, make_client
from connectors.hot_store import StoreConfig


class SnsAlertPublisher:
    def __init__(self, aws: StoreConfig, topic_name: str, retry: RetryPolicy = RetryPolicy()):
        self.topic_name = topic_name
        self.retry = retry
        self.client = make_client("sns", aws)
        self.fifo = topic_name.endswith(".fifo")
        self._topic_arn: str | None = None

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

    def publish(self, alert: dict[str, Any]) -> str:
        """Publish one alert; returns SNS's MessageId. Transient errors are retried, then raised."""
        request: dict[str, Any] = {
            "TopicArn": self.topic_arn,
            "Subject": alert["subject"][:100],  # SNS limit
            "Message": orjson.dumps(alert).decode(),
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": str(alert[name])}
                for name in ("alert_id", "kind", "severity", "vehicle_id")
            },
        }
        if self.fifo:
            request["MessageDeduplicationId"] = alert["alert_id"]
            request["MessageGroupId"] = str(alert["vehicle_id"])
        return call_with_retry(lambda: self.client.publish(**request), policy=self.retry, what="sns publish")["MessageId"]
