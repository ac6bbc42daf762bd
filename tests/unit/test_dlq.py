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


def test_a_payload_too_large_to_keep_is_cut_with_its_size_and_hash():
    import base64
    import hashlib

    import pytest

    raw = b'{"vehicle_id": 7, "note": "' + "é".encode() * 1_000_000 + b'"}'  # 27 + 2 MB + 2 bytes: the cut splits an é
    rejection = parse(raw)
    assert rejection.reason == "payload_too_large"
    encoded = encode_dlq_record(dlq_record(raw, rejection, stage="bridge"))
    assert len(encoded) < 200_000  # the DLQ topic takes it (Kafka's default limit is 1 MB)
    record = orjson.loads(encoded)
    assert record["payload_truncated"] is True and record["payload_bytes"] == len(raw) == 2_000_029
    assert record["payload_sha256"] == hashlib.sha256(raw).hexdigest()
    assert base64.b64decode(record["payload"]) == raw[:131_072]
    assert record["payload_encoding"] == "base64"  # raw[:131_072] ends inside an é: not UTF-8 text
    with pytest.raises(ValueError, match=r"first 131,072 of the payload's 2,000,029 bytes"):
        original_payload(record)


def test_a_payload_of_exactly_the_kept_size_is_kept_whole():
    raw = b"x" * 131_072
    record = orjson.loads(encode_dlq_record(dlq_record(raw, parse(raw), stage="bridge")))
    assert "payload_truncated" not in record and original_payload(record) == raw
