"""What a vehicle puts on the wire (seed section 6): the pieces of the payload contract it owns.

The device defines the contract it sends; the pipeline (`udfs.telemetry_schema`) imports these and
validates against them, so the vehicle's package needs nothing of the pipeline's:

- `MAX_VEHICLE_ID`: a vehicle id is an integer in 1..2^63-1;
- `format_timestamp_ms`: the one timestamp form, UTC with milliseconds, '2025-01-15T14:32:18.123Z';
- `encode`: a payload is one compact JSON object in UTF-8, keys in the order the reading has them,
  and never NaN or Infinity (not JSON: the pipeline would reject the message).

`encode` uses the standard library's json: on a vehicle it runs at most 5 times a second, and a
seed payload takes ~12 µs here (orjson: ~1 µs), so a compiled dependency would buy nothing a
vehicle notices. The pipeline encodes tens of thousands of events a second and keeps orjson
(`udfs.telemetry_schema.encode`); tests/unit/test_edge_agent_units.py holds both to the same bytes.
"""

from __future__ import annotations

import json
import time
from typing import Any, Final

MAX_VEHICLE_ID: Final = 2**63 - 1  # fits Kafka keys, Parquet int64 and Timestream dimensions alike

_ENCODER: Final = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def encode(reading: dict[str, Any]) -> bytes:
    """A reading → its payload bytes. ValueError for NaN/Infinity, TypeError for a value JSON has not."""
    return _ENCODER.encode(reading).encode("utf-8")


def format_timestamp_ms(epoch_ms: int) -> str:
    """Epoch milliseconds → the seed's form, '2025-01-15T14:32:18.123Z'."""
    seconds, millis = divmod(int(epoch_ms), 1000)
    text = _FORMATTED_S.get(seconds)  # a fleet's events share their seconds: format each once
    if text is None:
        text = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds))
        if len(_FORMATTED_S) >= _FORMATTED_LIMIT:
            _FORMATTED_S.clear()
        _FORMATTED_S[seconds] = text
    return text + _MILLIS_TEXT[millis]


_FORMATTED_LIMIT: Final = 4096  # bounded memo: cleared when full
_FORMATTED_S: dict[int, str] = {}  # epoch seconds → 'YYYY-MM-DDTHH:MM:SS'
_MILLIS_TEXT: Final = tuple(f".{n:03d}Z" for n in range(1000))
