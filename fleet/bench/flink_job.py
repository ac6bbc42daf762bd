"""One Flink job of `telemetry bench pipeline`, built exactly as `telemetry run pipeline|alerts
--start earliest --stop latest` builds it (the jobs' own `*_config` and `build`), bounded so it
finishes when it has drained the preloaded topic.

  python -m fleet.bench.flink_job --kind pipeline|enriched|alerts --profile P --set k=v …   (MiniCluster)
  flink run -py fleet/bench/flink_job.py --kind …                                        (a cluster)

`enriched` is the pipeline with only the `telemetry-enriched` sink (what `telemetry backfill
--sinks enriched` runs); `pipeline` has every sink; `alerts` is the anomaly job with every output.
A process of its own so the benchmark can measure its CPU (and the MiniCluster JVM it starts).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace

from fleet.config import load_config

JOBS = ("pipeline", "enriched", "alerts")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="a bounded benchmark run of one job")
    # Not --job: Flink's CLI takes unambiguous prefixes of its own options, and --job is one of --jobmanager.
    parser.add_argument("--kind", choices=JOBS, required=True)
    parser.add_argument("--unbounded", action="store_true", help="no stop position: run until cancelled (the sustained-load stage)")
    parser.add_argument("--profile", default="local")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    args = parser.parse_args(argv)
    platform = load_config(args.profile, args.set)

    from jobs.flink_env import create_env

    env = create_env(platform.flink)
    stop = None if args.unbounded else "latest"
    if args.kind == "alerts":
        from jobs.anomaly_detection import anomaly_config, build

        build(env, anomaly_config(platform, start="earliest", stop=stop))
    else:
        from jobs.telemetry_pipeline import build, pipeline_config

        job = pipeline_config(platform, start="earliest", stop=stop)
        if args.kind == "enriched":
            job = replace(job, sinks=frozenset({"enriched"}))
        build(env, job)
    env.execute(f"bench {args.kind}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
