import orjson

from udfs.dlq import dlq_record, encode_dlq_record, original_payload
from udfs.telemetry_schema import Rejection, parse


def test_text_payload_is_kept_verbatim_with_reason_and_source():
    raw = b'{"vehicle_id": 7, "battery": {"percent": 150}}'
    rejection = parse(raw)
    assert isinstance(rejection, Rejection)
    record = dlq_record(raw, rejection, stage="pipeline", source={"topic": "vehicle-telemetry", "partition": 3, "offset": 99}, now_ms=0)
    assert record["reason"] == rejection.reason
    assert record["field"] == rejection.field
    assert record["stage"] == "pipeline"
    assert record["source"] == {"topic": "vehicle-telemetry", "partition": 3, "offset": 99}
    assert record["rejected_at"] == "1970-01-01T00:00:00.000Z"
    assert record["payload_encoding"] == "utf-8"
    assert original_payload(orjson.loads(encode_dlq_record(record))) == raw


def test_binary_payload_survives_as_base64():
    raw = b"\x00\xff\xfe garbage \x80"
    rejection = parse(raw)
    record = orjson.loads(encode_dlq_record(dlq_record(raw, rejection, stage="bridge")))
    assert record["reason"] == "bad_json"
    assert record["payload_encoding"] == "base64"
    assert original_payload(record) == raw
