"""The peer of `telemetry bench pipeline`: the pipeline's enrichment as a Quix Streams app, exactly once.

Runs in the peer venv (fleet.bench.peer_venv), with the project root on PYTHONPATH: it imports
Quix Streams and the pure udfs/ modules only (no pyflink, no confluent-kafka of ours), so the same
parse, validation, dedup, geohash and enrichment code runs here as in the Flink job:

  input ─► parse + validate ─(rejects)──────────────────────────────► dlq topic
              │ dedup per vehicle (udfs.dedup, bytes in the RocksDB state store, changelogged)
              ▼
           enrich: zone_id (geohash-6), vehicle_type (a dict from the registry file) ─► enriched topic

Stops itself after `--total` input messages (the preloaded topic's size), so the drain is bounded
like the Flink runs with `--stop latest`; on stop Quix commits its last checkpoint (transaction).
Prints one JSON line of counts at the end.
"""

from __future__ import annotations

import argparse
import json
import sys
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--input", required=True)
    parser.add_argument("--enriched", required=True)
    parser.add_argument("--dlq", required=True)
    parser.add_argument("--group", required=True)
    parser.add_argument("--registry-file", required=True, help="JSON lines of {vehicle_id, vehicle_type}")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--total", type=int, required=True, help="input messages to process before stopping")
    parser.add_argument("--commit-interval", type=float, default=2.0, help="seconds; the Flink jobs checkpoint every 2 s")
    parser.add_argument("--dedup-capacity", type=int, default=128)
    args = parser.parse_args(argv)

    from quixstreams import Application
    from quixstreams.state.rocksdb import RocksDBOptions

    from udfs.dedup import remember
    from udfs.dlq import dlq_record, encode_dlq_record
    from udfs.enrich import enrich, vehicle_type_of
    from udfs.telemetry_schema import Rejection, parse, parse_timestamp_ms
    from udfs.vehicle_registry import load_registry_file

    registry = load_registry_file(args.registry_file)
    counts = {"input": 0, "enriched": 0, "duplicates": 0, "rejected": 0}
    capacity = args.dedup_capacity
    dumps = __import__("orjson").dumps

    app = Application(
        broker_address=args.bootstrap,
        consumer_group=args.group,
        auto_offset_reset="earliest",
        processing_guarantee="exactly-once",
        commit_interval=args.commit_interval,
        state_dir=args.state_dir,
        # The dedup state is already bytes (udfs.dedup packs it): stored as it is, no JSON. The
        # store serializes its keys ("recent") with the same function: those are text.
        rocksdb_options=RocksDBOptions(dumps=lambda value: value if type(value) is bytes else str(value).encode(),
                                       loads=lambda raw: raw),
        loglevel="WARNING",
    )
    source = app.topic(args.input, key_deserializer="bytes", value_deserializer="bytes")
    enriched_topic = app.topic(args.enriched, key_serializer="bytes", value_serializer="bytes")
    dlq_topic = app.topic(args.dlq, key_serializer="bytes", value_serializer="bytes")

    def step(value: bytes, key: bytes, timestamp: int, headers, state):
        """(0, enriched bytes), (1, DLQ bytes) or None for a duplicate."""
        counts["input"] += 1
        if counts["input"] >= args.total:
            app.stop()  # after this message: Quix finishes it, then commits the checkpoint
        result = parse(value)
        if isinstance(result, Rejection):
            counts["rejected"] += 1
            return 1, encode_dlq_record(dlq_record(value, result, stage="bench-peer", source={"topic": args.input}))
        duplicate, new_state = remember(state.get("recent"), parse_timestamp_ms(result["timestamp"]), capacity)
        if duplicate:
            counts["duplicates"] += 1
            return None
        if new_state is not None:
            state.set("recent", new_state)
        counts["enriched"] += 1
        vehicle_id = result["vehicle_id"]
        return 0, dumps(enrich(result, vehicle_type_of(vehicle_id, registry), timestamp))

    sdf = app.dataframe(source)
    sdf = sdf.apply(step, stateful=True, metadata=True).filter(lambda out: out is not None)
    sdf.filter(lambda out: out[0] == 0).apply(lambda out: out[1]).to_topic(enriched_topic)
    sdf.filter(lambda out: out[0] == 1).apply(lambda out: out[1]).to_topic(dlq_topic)

    started = time.time()
    app.run()
    counts["seconds"] = round(time.time() - started, 3)
    print(json.dumps(counts), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
