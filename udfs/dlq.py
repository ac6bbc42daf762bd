"""Dead-letter records: what a rejected payload becomes on `telemetry-dlq`.

A DLQ record must let an operator see why a payload was refused and replay it after a fix, so it
carries the raw payload unchanged (UTF-8 text when it is text, base64 otherwise), the reason, the
field, where it came from and when it was refused.

Except a payload too large to keep: a DLQ record must fit the DLQ topic (Kafka refuses messages over
1 MB by default, and a record that cannot be written would stop the job that rejected it, on every
restart). Beyond `keep_bytes` the record holds the first `keep_bytes` (base64: a cut may split a
character), the payload's size and its SHA-256, marked `payload_truncated`.
"""

from __future__ import annotations

import base64
import hashlib
import time
from typing import Any

import orjson

from edge_agent.wire import format_timestamp_ms
from udfs.telemetry_schema import Rejection

# The schema's default max_payload_bytes: whatever the limit, a record stays far below 1 MB.
KEEP_BYTES = 131_072


def dlq_record(
    raw: bytes | str,
    rejection: Rejection,
    *,
    stage: str,
    source: dict[str, Any] | None = None,
    now_ms: int | None = None,
    keep_bytes: int = KEEP_BYTES,
) -> dict[str, Any]:
    """Build the DLQ record for one rejected payload. `stage` names who rejected it (bridge, pipeline…)."""
    rejected_at = int(time.time() * 1000) if now_ms is None else now_ms
    record = {
        "reason": rejection.reason,
        "field": rejection.field,
        "detail": rejection.detail,
        "stage": stage,
        "source": source or {},
        "rejected_at": format_timestamp_ms(rejected_at),
    }
    return record | _payload_fields(raw, keep_bytes)


def _payload_fields(raw: bytes | str, keep_bytes: int) -> dict[str, Any]:
    data = raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)
    if len(data) > keep_bytes:
        return {
            "payload_encoding": "base64",
            "payload": base64.b64encode(data[:keep_bytes]).decode("ascii"),
            "payload_truncated": True,
            "payload_bytes": len(data),
            "payload_sha256": hashlib.sha256(data).hexdigest(),
        }
    if isinstance(raw, str):
        return {"payload_encoding": "utf-8", "payload": raw}
    try:
        return {"payload_encoding": "utf-8", "payload": data.decode("utf-8")}
    except UnicodeDecodeError:
        return {"payload_encoding": "base64", "payload": base64.b64encode(data).decode("ascii")}


def encode_dlq_record(record: dict[str, Any]) -> bytes:
    return orjson.dumps(record)


def original_payload(record: dict[str, Any]) -> bytes:
    """The exact bytes that were rejected, for replay after a fix."""
    if record.get("payload_truncated"):
        raise ValueError(
            f"the DLQ kept only the first {len(base64.b64decode(record['payload'])):,} of the payload's "
            f"{record['payload_bytes']:,} bytes (sha256 {record['payload_sha256']}): it cannot be replayed from here"
        )
    if record["payload_encoding"] == "base64":
        return base64.b64decode(record["payload"])
    payload: str = record["payload"]  # utf-8: the payload is kept as text
    return payload.encode("utf-8")
