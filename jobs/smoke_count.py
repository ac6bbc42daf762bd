"""Smoke job: read `vehicle-telemetry` through KafkaSource, validate each payload, count outcomes.

The first end-to-end proof that the pieces fit (broker, connector jar, thread mode, schema). It is
bounded: it reads from a start position to a stop position and finishes. Later issues replace it
as the main job with the telemetry pipeline.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from dataclasses import dataclass

from pyflink.common import Row, Types, WatermarkStrategy
from pyflink.datastream import DataStream, RuntimeExecutionMode, StreamExecutionEnvironment

from connectors.kafka_source import OffsetPosition, raw_bytes_source
from fleet.config import PlatformConfig, load_config
from udfs.telemetry_schema import Rejection, parse

OUTCOME_TYPE = Types.ROW_NAMED(["outcome", "count"], [Types.STRING(), Types.LONG()])


@dataclass(frozen=True)
class SmokeConfig:
    bootstrap_servers: str
    topic: str
    group_id: str
    start: OffsetPosition
    stop: OffsetPosition


def smoke_config(platform: PlatformConfig, *, start: str = "earliest", stop: str = "latest", group_id: str = "smoke-count") -> SmokeConfig:
    return SmokeConfig(
        bootstrap_servers=platform.kafka.bootstrap_servers,
        topic=platform.kafka.topic("telemetry").name,
        group_id=group_id,
        start=OffsetPosition.parse(start),
        stop=OffsetPosition.parse(stop),
    )


def outcome_of(raw: bytes) -> Row:
    """'valid', or 'rejected:<reason>' for a payload the schema refuses."""
    result = parse(raw)
    return Row("rejected:" + result.reason if isinstance(result, Rejection) else "valid", 1)


def build(env: StreamExecutionEnvironment, config: SmokeConfig) -> DataStream:
    """Adds the job's operators; returns one final count per outcome.

    The input is bounded, so the job runs in BATCH mode: the reduce then emits only its final value
    per key, instead of one running update per event.
    """
    env.set_runtime_mode(RuntimeExecutionMode.BATCH)
    source = raw_bytes_source(config.bootstrap_servers, config.topic, config.group_id, start=config.start, stop=config.stop)
    raw = (
        env.from_source(source, WatermarkStrategy.no_watermarks(), "vehicle-telemetry source")
        .uid("smoke-kafka-source")
    )
    outcomes = raw.map(outcome_of, output_type=OUTCOME_TYPE).name("validate payload").uid("smoke-validate")
    return (
        outcomes.key_by(lambda row: row[0], key_type=Types.STRING())
        .reduce(lambda a, b: Row(a[0], a[1] + b[1]))
        .name("count per outcome")
        .uid("smoke-count-per-outcome")
    )


def run(env: StreamExecutionEnvironment, config: SmokeConfig) -> Counter:
    """Execute and return the final count per outcome."""
    totals: Counter = Counter()
    with build(env, config).execute_and_collect("telemetry smoke count") as results:
        for row in results:
            totals[row[0]] = row[1]
    return totals


def format_summary(totals: Counter) -> str:
    total = sum(totals.values())
    lines = [f"events read: {total}", f"  valid:    {totals.get('valid', 0)}"]
    for outcome, count in sorted(totals.items()):
        if outcome != "valid":
            lines.append(f"  {outcome}: {count}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from jobs.flink_env import create_env

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="local")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--start", default="earliest")
    parser.add_argument("--stop", default="latest")
    args = parser.parse_args(argv)
    platform = load_config(args.profile, args.set)
    totals = run(create_env(platform.flink), smoke_config(platform, start=args.start, stop=args.stop))
    print(format_summary(totals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
