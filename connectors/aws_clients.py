"""AWS client plumbing shared by the boto3 backends: the Timestream hot store
(hot_store_timestream) and the DynamoDB vehicle status table (vehicle_status_dynamodb).

It holds the retry policy (RetryPolicy, is_retryable, call_with_retry on connectors.retry), error_code
and make_client. They live here, not in either store, so both backends retry the same transient errors
the same way and build their clients alike (botocore's own retries off, dummy credentials for a
local endpoint such as moto).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError, HTTPClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from connectors.aws_residency import check_residency
from connectors.hot_store import StoreConfig
from connectors.retry import retry_call

# Dummy credentials for a local endpoint (moto): boto3 must never go looking for real ones there.
LOCAL_ENDPOINT_CREDENTIALS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}

_RETRYABLE_CODES = frozenset({
    "ThrottlingException", "Throttling", "ThrottledException", "TooManyRequestsException",
    "RequestLimitExceeded", "ProvisionedThroughputExceededException",
    "InternalServerException", "InternalServerError", "InternalFailure",
    "ServiceUnavailable", "ServiceUnavailableException",
    "RequestTimeout", "RequestTimeoutException", "TransactionConflictException",
})

T = TypeVar("T")


class RetryLater(Exception):
    """A call that partly failed with transient errors (a batch API's failed entries): raised by the
    call so that call_with_retry tries again, with the same backoff as for a throttled request."""


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff with full jitter. Defaults are small: the Flink job's own restart from
    its checkpoint is the long-period backoff; this only rides out short throttling bursts."""

    max_attempts: int = 6
    base_delay_s: float = 0.05
    max_delay_s: float = 1.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts}")

    def delay_s(self, failed_attempts: int, rng: random.Random) -> float:
        return rng.uniform(0.0, min(self.max_delay_s, self.base_delay_s * 2 ** (failed_attempts - 1)))


def is_retryable(error: BaseException) -> bool:
    if isinstance(error, (BotoConnectionError, HTTPClientError, RetryLater)):
        return True
    if isinstance(error, ClientError):
        if error.response.get("Error", {}).get("Code") in _RETRYABLE_CODES:
            return True
        return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)) >= 500
    return False


def error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def call_with_retry(
    call: Callable[[], T],
    *,
    policy: RetryPolicy,
    what: str,
    sleep: Callable[[float], None] = time.sleep,
    rng: random.Random | None = None,
) -> T:
    """Run `call`, retrying transient AWS errors. After the last attempt the error is raised:
    a sink must fail (and Flink restart from its checkpoint, replaying idempotently) rather than
    drop data."""
    draw = rng or random.Random()
    return retry_call(
        call, retry_if=is_retryable, wait=lambda failed: policy.delay_s(failed, draw),
        attempts=policy.max_attempts, what=what, sleep=sleep,
    )


def make_client(service: str, config: StoreConfig, *, max_connections: int = 10) -> Any:
    check_residency(config.region, allow_outside_eu=config.allow_outside_eu)
    # botocore's own retries are off so exactly one policy (ours, visible and testable) applies,
    # instead of botocore's attempts multiplied by ours. `max_connections`: at least the number of
    # threads calling the client at once (botocore's pool holds 10 by default).
    kwargs: dict[str, Any] = {
        "region_name": config.region,
        "config": Config(
            retries={"total_max_attempts": 1}, connect_timeout=5, read_timeout=30,
            max_pool_connections=max(10, max_connections),
        ),
    }
    if config.endpoint_url:
        kwargs.update(endpoint_url=config.endpoint_url, **LOCAL_ENDPOINT_CREDENTIALS)
    # A session per client: boto3's default session is not safe to create clients from in threads.
    return boto3.session.Session().client(service, **kwargs)
