"""Dead-letter records: what a rejected payload becomes on `telemetry-dlq`.

A DLQ record must let an operator see why a payload was refused and replay it after a fix, so it
carries the raw payload unchanged (UTF-8 text when it is text, base64 otherwise), the reason, the
field, where it came from and when it was refused.
"""

from __future__ import annotations

import base64
import time
from typing import Any

import orjson

from udfs.telemetry_schema import Rejection, format_timestamp_ms


def dlq_record(
    raw: bytes | str,
    rejection: Rejection,
    *,
    stage: str,
    source: dict[str, Any] | None = None,
    now_ms: int | None = None,
) -> dict[str, Any]:
    """Build the DLQ record for one rejected payload. `stage` names who rejected it (bridge, pipeline…)."""
    if isinstance(raw, str):
        payload, encoding = raw, "utf-8"
    else:
        try:
            payload, encoding = bytes(raw).decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            payload, encoding = base64.b64encode(bytes(raw)).decode("ascii"), "base64"
    rejected_at = int(time.time() * 1000) if now_ms is None else now_ms
    return {
        "reason": rejection.reason,
        "field": rejection.field,
        "detail": rejection.detail,
        "stage": stage,
        "source": source or {},
        "rejected_at": format_timestamp_ms(rejected_at),
        "payload_encoding": encoding,
        "payload": payload,
    }


def encode_dlq_record(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def original_payload(record: dict[str, Any]) -> bytes:
    """The exact bytes that were rejected, for replay after a fix."""
    if record["payload_encoding"] == "base64":
        return base64.b64decode(record["payload"])
    return record["payload"].encode("utf-8")
