"""`telemetry query dlq` against a real broker: DLQ records this test produced (plain, in a committed
transaction, in an aborted one, before and after --since), counted by stage and reason; and the
one-line error when no broker answers."""

from __future__ import annotations

import json
import os
import time
from collections import Counter

import pytest
from confluent_kafka import Producer

from fleet.cli.app import main
from infra.process import free_port
from udfs.dlq import dlq_record, encode_dlq_record
from udfs.telemetry_schema import Rejection, format_timestamp_ms

pytestmark = pytest.mark.integration

HOUR_MS = 3_600_000


def record(stage: str, reason: str, at_ms: int) -> bytes:
    return encode_dlq_record(dlq_record(b'{"vehicle_id": 1}', Rejection(reason, None, "why"), stage=stage, now_ms=at_ms))


def test_query_dlq_counts_the_committed_records_since(kafka_bootstrap, fresh_topic, capsys, monkeypatch):
    for name in [key for key in os.environ if key.startswith("TELEMETRY__")]:
        monkeypatch.delenv(name)
    topic = fresh_topic(3)
    now = int(time.time() * 1000)
    old = [("mqtt-bridge", "bad_json", now - 2 * HOUR_MS)] * 5  # Kafka timestamps two hours ago: before --since 1h
    plain = [("mqtt-bridge", "bad_json", now - 60_000)] * 4 + [("mqtt-bridge", "iot_rule", now - 50_000)] * 3
    committed = [("telemetry-pipeline", "out_of_range", now - 40_000 + i) for i in range(6)] + [("hot-store", "hot_store_rejected", now - 30_000)]
    aborted = [("telemetry-pipeline", "bad_json", now - 20_000)] * 8

    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    for i, (stage, reason, at) in enumerate(old + plain):
        producer.produce(topic, record(stage, reason, at), key=str(i), timestamp=at)
    producer.produce(topic, b"not a dlq record", key="x", timestamp=now - 10_000)
    producer.flush(30)
    # As the pipeline's exactly-once DLQ sink writes: in transactions, and an aborted one is not the topic's.
    transactional = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"query-dlq-{topic}"})
    transactional.init_transactions(30)
    for rows, commit in ((committed, True), (aborted, False)):
        transactional.begin_transaction()
        for i, (stage, reason, at) in enumerate(rows):
            transactional.produce(topic, record(stage, reason, at), key=f"t{i}", timestamp=at)
        transactional.flush(30)
        (transactional.commit_transaction if commit else transactional.abort_transaction)(30)

    settings = ["--set", f"kafka.bootstrap_servers={kafka_bootstrap}", "--set", f"topics.dlq.name={topic}"]
    started = time.monotonic()
    assert main([*settings, "query", "dlq", "--json"]) == 0
    took = time.monotonic() - started
    document = json.loads(capsys.readouterr().out)
    counted = Counter((stage, reason) for stage, reason, _ in plain + committed)
    expected = sorted(counted.items(), key=lambda item: (-item[1], item[0]))
    assert [(c["stage"], c["reason"], c["records"]) for c in document["counts"]] == [(s, r, n) for (s, r), n in expected]
    assert (document["records"], document["unreadable"], document["complete"]) == (len(plain) + len(committed), 1, True)
    bad_json = next(c for c in document["counts"] if c["reason"] == "bad_json")
    assert (bad_json["first_rejected_at"], bad_json["last_rejected_at"]) == (format_timestamp_ms(now - 60_000),) * 2
    assert took < 10, f"a bounded read of {len(old + plain + committed + aborted)} records took {took:.1f}s"

    assert main([*settings, "query", "dlq", "--since", "3h"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["stage", "reason", "records", "first_rejected_at", "last_rejected_at"]
    rows = {tuple(line.split()[:3]) for line in lines[1:-1]}
    counted[("mqtt-bridge", "bad_json")] += len(old)
    assert rows == {(s, r, str(n)) for (s, r), n in counted.items()}
    assert lines[-1].startswith(f"({sum(counted.values())} records on {topic} since ")
    assert "1 values that are not DLQ records" in lines[-1]


def test_query_dlq_without_a_broker_says_how_to_start_one(capsys):
    address = f"127.0.0.1:{free_port()}"
    code = main(["--set", f"kafka.bootstrap_servers={address}", "query", "dlq"])
    captured = capsys.readouterr()
    assert code == 3 and captured.out == ""
    assert captured.err.startswith(f"telemetry query dlq: no Kafka broker answers at {address} (")
    assert captured.err.endswith("; start it with `telemetry infra up kafka`\n") and captured.err.count("\n") == 1
