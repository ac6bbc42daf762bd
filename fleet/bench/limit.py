"""The limit of `telemetry bench pipeline`: raw passthrough of the preloaded payloads with
confluent-kafka, consume → produce, nothing parsed. Nothing on this machine can move these records
between two topics of this broker faster, so every other figure is read as a share of this one.

Runs as a process of its own (`python -m fleet.bench.limit …`) so its CPU is measured apart. Reads
every partition from offset 0 to the end offsets taken at start (the preload is complete by then),
writes each record to the same partition of the target with the same key and value, flushes, and
prints one JSON line of counts.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from confluent_kafka import TopicPartition

from connectors.kafka_clients import end_offsets, make_consumer, make_producer


def passthrough(bootstrap: str, source: str, target: str, group: str) -> dict[str, int | float]:
    end = end_offsets(bootstrap, source)
    consumer = make_consumer(bootstrap, group, **{"fetch.max.bytes": 64 * 1024 * 1024})
    producer = make_producer(bootstrap)
    remaining = {p: o for p, o in end.items() if o > 0}
    consumer.assign([TopicPartition(source, p, 0) for p in remaining])
    produce, poll = producer.produce, producer.poll
    moved = 0
    started = time.time()
    try:
        while remaining:
            for message in consumer.consume(num_messages=10_000, timeout=1.0):
                if message.error() is not None:
                    continue
                partition = message.partition()
                while True:
                    try:
                        produce(target, message.value(), message.key(), partition=partition)
                        break
                    except BufferError:  # the local queue is full: let deliveries drain
                        poll(0.05)
                moved += 1
                if message.offset() + 1 >= remaining.get(partition, 0):
                    remaining.pop(partition, None)
            poll(0)
        left = producer.flush(120)
    finally:
        consumer.close()
    return {"moved": moved, "unflushed": left, "seconds": round(time.time() - started, 3)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="raw Kafka passthrough (the limit)")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--source", required=True)
    parser.add_argument("--target", required=True)
    parser.add_argument("--group", required=True)
    args = parser.parse_args(argv)
    print(json.dumps(passthrough(args.bootstrap, args.source, args.target, args.group)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
