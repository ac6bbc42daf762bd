"""Backfill: replay `vehicle-telemetry` for a time or offset range as a bounded job into chosen sinks.

  range (--from/--to or --offsets-*) ─► resolved once to [start, end) per partition ─► run id
  run folder <run_dir>/backfill/<run_id>/: manifest.json + the run's checkpoints
  the telemetry pipeline (jobs/telemetry_pipeline.build), bounded by the resolved offsets, with a
  consumer group and transactional ids of its own and no offset commits ─► chosen sinks
  + the job's own count of each output ─► manifest (complete, counts) ─► summary

The same entry serves `telemetry backfill …` (MiniCluster) and `flink run -py jobs/backfill/job.py …`
(attached: this process resolves, writes the manifest and waits for the job). The rules for a
second run are in jobs/backfill/runs.py; docs/backfill.md says when to use it.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from connectors.kafka_offsets import OffsetProbe, UnknownTopic
from fleet.config import ConfigError, PlatformConfig, load_config
from fleet.config.log_setup import configure_logging
from jobs.backfill.ranges import (
    BackfillError,
    RangeRequest,
    ResolvedRange,
    TimeRange,
    format_resolved,
    parse_request,
    resolve_offsets,
    resolve_time,
)
from jobs.backfill.runs import (
    ADDITIVE_SINKS,
    ALL_SINKS,
    IDEMPOTENT_SINKS,
    KAFKA_SINKS,
    Attempt,
    Manifest,
    Plan,
    all_manifests,
    find_rerun_target,
    inspect_checkpoints,
    overlapping_runs,
    parse_sinks,
    plan_attempt,
    read_manifest,
    remove_dir,
    run_folder,
    run_id_of,
    write_manifest,
)
from jobs.job_main import add_config_arguments
from udfs.telemetry_schema import format_timestamp_ms

if TYPE_CHECKING:  # the CLI imports this module for its arguments; pyflink loads only to run a job
    from jobs.telemetry_pipeline import PipelineConfig

Out = Callable[[str], None]


@dataclass(frozen=True)
class BackfillRequest:
    range: RangeRequest
    sinks: frozenset[str]
    enriched_topic: str | None = None
    rerun: bool = False
    run_id: str | None = None
    dry_run: bool = False


def add_arguments(parser: argparse.ArgumentParser) -> None:
    span = parser.add_argument_group("what to replay (a time range or an offset range)")
    span.add_argument("--from", dest="time_from", metavar="ISO", help="first record time (Kafka record time = ingest time), inclusive")
    span.add_argument("--to", dest="time_to", metavar="ISO", help="end record time, exclusive; must lie in the past")
    span.add_argument("--offsets-from", metavar="P:O,...", help="first offset per partition, inclusive")
    span.add_argument("--offsets-to", metavar="P:O,...", help="end offset per partition, exclusive (same partitions)")
    parser.add_argument("--sinks", metavar="LIST", help=f"comma-separated from {','.join(ALL_SINKS)} (default: all; with --rerun: store,bronze)")
    parser.add_argument("--enriched-topic", metavar="NAME", help="write enriched events to this topic instead of the profile's")
    parser.add_argument("--rerun", action="store_true", help="replay a complete run again into its idempotent sinks (store, bronze)")
    parser.add_argument("--run-id", help="with --rerun: which earlier run, when several replayed this range")
    parser.add_argument("--dry-run", action="store_true", help="resolve the range and show the run id and what would happen; run nothing")


def request_from_args(args: argparse.Namespace, *, now_ms: int | None = None) -> BackfillRequest:
    if args.run_id and not args.rerun:
        raise BackfillError("--run-id only chooses which run --rerun replays")
    span = parse_request(
        time_from=args.time_from, time_to=args.time_to, offsets_from=args.offsets_from, offsets_to=args.offsets_to,
        now_ms=int(time.time() * 1000) if now_ms is None else now_ms,
    )
    sinks = parse_sinks(args.sinks) if args.sinks or not args.rerun else IDEMPOTENT_SINKS
    return BackfillRequest(span, sinks, args.enriched_topic, args.rerun, args.run_id, args.dry_run)


def sink_targets(platform: PlatformConfig, enriched_topic: str | None) -> dict[str, str]:
    """Where each sink writes: part of the run's identity, so a different target is a different run."""
    stores = platform.stores
    hot = f"local:{stores.local_path}" if stores.hot_store_backend == "local" else f"timestream:{stores.timestream_database}.{stores.timestream_table}"
    status = f"local:{stores.local_path}" if stores.status_backend == "local" else f"dynamodb:{stores.dynamodb_table}"
    return {
        "enriched": enriched_topic or platform.kafka.topic("enriched").name,
        "dlq": platform.kafka.topic("dlq").name,
        "bronze": platform.pipeline.bronze_path,
        "store": f"hot={hot} status={status}",
    }


def resolve_range(platform: PlatformConfig, span: RangeRequest, needed_topics: list[str]) -> ResolvedRange:
    """Read the log bounds (and, for a time range, the offsets at both times) once."""
    topic = platform.kafka.topic("telemetry").name
    bootstrap = platform.kafka.bootstrap_servers
    with OffsetProbe(bootstrap) as probe:
        missing = [t for t in needed_topics if not probe.topic_exists(t)]
        if missing:
            raise BackfillError(f"topic(s) {', '.join(missing)} do not exist on {bootstrap} (create them: telemetry topics ensure)")
        try:
            bounds = probe.bounds(topic)
        except UnknownTopic:
            raise BackfillError(f"topic {topic} does not exist on {bootstrap}") from None
        if isinstance(span, TimeRange):
            return resolve_time(
                topic, span, bounds, probe.offsets_at(topic, bounds, span.from_ms), probe.offsets_at(topic, bounds, span.to_ms)
            )
        return resolve_offsets(topic, span, bounds)


def work_uri(platform: PlatformConfig, folder: Path, run_id: str) -> str:
    """Where the job keeps the run's checkpoints and counts: locally the run folder; on a cluster
    beside its other checkpoints, because TaskManagers must reach it (shared storage)."""
    base = platform.flink.checkpoint_dir
    return folder.as_uri() if base.startswith("file:") else f"{base.rstrip('/')}/backfill/{run_id}"


def _now() -> str:
    return format_timestamp_ms(int(time.time() * 1000))


def new_manifest(
    platform: PlatformConfig, request: BackfillRequest, resolved: ResolvedRange, run_id: str, targets: dict[str, str], folder: Path
) -> Manifest:
    prefix = f"backfill-{run_id}"
    work = work_uri(platform, folder, run_id)
    return Manifest(
        run_id=run_id, state="running", telemetry_topic=resolved.topic, range=request.range.describe(),
        resolved=resolved.as_json(), records=resolved.records, sinks=tuple(sorted(request.sinks)),
        targets={s: targets[s] for s in sorted(request.sinks)}, group_id=prefix, transactional_id_prefix=prefix,
        bronze_part_prefix=prefix, checkpoint_dir=f"{work}/checkpoints", counts_dir=f"{work}/counts", started_at=_now(),
    )


def pipeline_config_for(
    platform: PlatformConfig, manifest: Manifest, resolved: ResolvedRange, sinks: frozenset[str], *, sentinel: bool
) -> PipelineConfig:
    """The live pipeline's config, bounded by the resolved offsets and renamed so nothing of the live
    job (group offsets, transactional ids, Bronze file names) is touched."""
    from connectors.kafka_source import OffsetPosition
    from jobs.telemetry_pipeline import pipeline_config

    base = pipeline_config(platform, start="earliest", stop="latest")
    partitions = {(resolved.topic, p) for p in resolved.start_offsets()}
    if sentinel:
        # Partition 0 of the registry topic (which always exists), left out of start and stop:
        # both fall back to the group's committed offset (this group never commits), else the
        # earliest, so its range is empty. Only its presence matters (backfill_run.Plan.sentinel).
        partitions.add((base.registry_topic, 0))
    return replace(
        base,
        enriched_topic=manifest.targets.get("enriched", base.enriched_topic),
        start=OffsetPosition("offsets", offsets=resolved.start_offsets()),
        stop=OffsetPosition("offsets", offsets=resolved.end_offsets()),
        source_partitions=frozenset(partitions),
        registry_updates=False,
        group_id=manifest.group_id,
        transactional_id_prefix=manifest.transactional_id_prefix,
        commit_offsets=False,
        bronze_part_prefix=manifest.bronze_part_prefix,
        sinks=sinks,
    )


@dataclass(frozen=True)
class BackfillJob:
    pipeline: PipelineConfig
    counts_uri: str  # where the job writes its running count of each output


def build(env, config: BackfillJob) -> None:
    """The telemetry pipeline plus the job's count of its outputs."""
    from jobs.backfill.counts import add_output_counts
    from jobs.telemetry_pipeline import build as build_pipeline

    streams = build_pipeline(env, config.pipeline)
    add_output_counts(env, streams.enriched, streams.dlq, config.pipeline.registry_topic, config.counts_uri)


def _execute(platform: PlatformConfig, job: BackfillJob, checkpoints: str, restore_from: str | None, name: str) -> None:
    from jobs.flink_env import create_env

    extra = {"execution.state-recovery.path": restore_from} if restore_from else None
    env = create_env(replace(platform.flink, checkpoint_dir=checkpoints), extra=extra)
    build(env, job)
    env.execute(name)


def _sink_counts(manifest: Manifest, sinks: frozenset[str], counts, records: int) -> tuple[dict, dict]:
    """Per sink what this attempt wrote; Bronze is read back from the run's own files."""
    from connectors.bronze_files import count_rows

    per_sink: dict[str, int | None] = {}
    details: dict[str, int | None] = {"records_in_range": records}
    if "bronze" in sinks:
        rows, files = count_rows(manifest.targets["bronze"], manifest.bronze_part_prefix)
        per_sink["bronze"], details["bronze_files"] = rows, files
    known = counts is not None
    if "enriched" in sinks:
        per_sink["enriched"] = counts.enriched if known else None
    if "store" in sinks:
        per_sink["store"] = counts.enriched - counts.dlq_store if known else None
        details["store_rejected"] = counts.dlq_store if known else None
    if "dlq" in sinks:
        per_sink["dlq"] = counts.dlq if known else None
        details["dlq_registry_records"] = counts.dlq_registry if known else None
    details["duplicates_dropped"] = records - counts.enriched - counts.dlq_input if known else None
    return per_sink, details


def format_counts(manifest: Manifest, sinks) -> list[str]:
    labels = {
        "enriched": f"{manifest.targets.get('enriched', '')} (enriched)",
        "bronze": "bronze parquet",
        "store": "hot store + status",
        "dlq": f"{manifest.targets.get('dlq', '')} (dlq)",
    }
    units = {"enriched": "events", "bronze": "rows", "store": "points", "dlq": "records"}
    lines = [f"{'read':<34} {manifest.records:>8} records in range"]
    for sink in ALL_SINKS:
        if sink in sinks:
            value = manifest.counts.get(sink)
            lines.append(f"{labels[sink]:<34} {'?' if value is None else value:>8} {units[sink]}")
    for key in ("duplicates_dropped", "store_rejected", "dlq_registry_records", "bronze_files"):
        if manifest.details.get(key):
            lines.append(f"{key.replace('_', ' '):<34} {manifest.details[key]:>8}")
    if any(manifest.counts.get(s) is None for s in sinks):
        lines.append("(? = not known: the run was resumed after its job had finished, so it counted nothing again)")
    return lines


def _header(out: Out, request: BackfillRequest, decision: Decision) -> None:
    span = request.range.describe()
    given = f"from {span['from']} to {span['to']} (Kafka record time = ingest time)" if "from" in span else (
        f"offsets {span['offsets_from']} to {span['offsets_to']}"
    )
    out(f"backfill {decision.run_id}: {decision.resolved.topic} {given}")
    for line in format_resolved(decision.resolved):
        out(f"  {line}")
    for sink in ALL_SINKS:
        if sink in decision.plan.sinks:
            out(f"  sink {sink:<9} → {decision.targets[sink]}")
    out(f"  run folder {decision.folder}")
    out(f"  {decision.plan.reason}")


@dataclass(frozen=True)
class Decision:
    """What this invocation is about to do, before anything is written."""

    resolved: ResolvedRange
    targets: dict[str, str]
    run_id: str
    folder: Path
    manifest: Manifest | None
    plan: Plan


def decide(platform: PlatformConfig, request: BackfillRequest) -> Decision:
    """Resolve the range, find the run it is, and apply the rules (jobs/backfill/runs.py)."""
    targets = sink_targets(platform, request.enriched_topic)
    needed = [platform.kafka.topic("registry").name] + [targets[s] for s in sorted(request.sinks & KAFKA_SINKS)]
    resolved = resolve_range(platform, request.range, needed)
    run_dir = platform.infra.run_dir
    if request.rerun:
        manifest = find_rerun_target(all_manifests(run_dir), resolved, request.sinks, targets, request.run_id)
        run_id = manifest.run_id if manifest else run_id_of(resolved, request.sinks, targets)
    else:
        run_id = run_id_of(resolved, request.sinks, targets)
        manifest = read_manifest(run_folder(run_dir, run_id))
    found = inspect_checkpoints(manifest.checkpoint_dir) if manifest and manifest.state == "running" else None
    plan = plan_attempt(
        manifest, sinks=request.sinks, rerun=request.rerun,
        checkpoint=found.latest if found else None, job_seen=found.job_seen if found else False,
    )
    if plan.action == "first" and request.sinks & ADDITIVE_SINKS:
        clashes = overlapping_runs(all_manifests(run_dir), resolved, request.sinks, targets, run_id)
        if clashes:
            raise BackfillError(
                "records of this range were already written to the same place by "
                + "; ".join(f"run {m.run_id} ({', '.join(f'{s} → {m.targets[s]}' for s in shared)})" for m, shared in clashes)
                + ". A second run would add them again: Kafka topics are append-only and a run replaces only its own "
                "Bronze files. Choose a range that does not overlap, other targets (--enriched-topic, "
                "--set topics.dlq.name=…, --set pipeline.bronze_path=…), --sinks store, or --rerun to rewrite "
                "that run's store and Bronze"
            )
    return Decision(resolved, targets, run_id, run_folder(run_dir, run_id), manifest, plan)


def run_attempt(platform: PlatformConfig, request: BackfillRequest, decision: Decision, out: Out) -> Manifest:
    """Record the attempt, clear what it replaces, run the job, record the counts: the complete manifest."""
    from connectors.bronze_files import delete_part_files
    from jobs.backfill.counts import OutputCounts, read_counts

    plan, resolved, folder = decision.plan, decision.resolved, decision.folder
    manifest = decision.manifest or new_manifest(platform, request, resolved, decision.run_id, decision.targets, folder)
    manifest = manifest.with_attempt(Attempt(plan.purpose, plan.action, tuple(sorted(plan.sinks)), _now(), plan.restore_from))
    write_manifest(folder, manifest)
    if plan.action != "resume":
        for leftover in (manifest.checkpoint_dir, manifest.counts_dir):  # nothing in them is to be resumed
            remove_dir(leftover)
    if plan.delete_bronze:
        deleted = delete_part_files(manifest.targets["bronze"], manifest.bronze_part_prefix)
        out(f"  deleted {deleted} Bronze file(s) named {manifest.bronze_part_prefix}-* before writing them again")

    if resolved.records == 0:
        counts = OutputCounts()
    else:
        manifest = manifest.with_current(submitted=True)  # from here on the job may write to the sinks
        write_manifest(folder, manifest)
        out(f"  job: telemetry pipeline on {resolved.records} records into {', '.join(sorted(plan.sinks))}")
        job = BackfillJob(pipeline_config_for(platform, manifest, resolved, plan.sinks, sentinel=plan.sentinel), manifest.counts_dir)
        try:
            _execute(platform, job, manifest.checkpoint_dir, plan.restore_from, f"backfill {decision.run_id}")
        except Exception:
            print(f"backfill {decision.run_id}: the job failed; the run stays 'running', and the same command "
                  "resumes it from its latest checkpoint (or starts it over: docs/backfill.md)", file=sys.stderr)
            raise
        counts = read_counts(manifest.counts_dir)

    if "bronze" in plan.sinks:
        # In-progress files of an interrupted attempt stay behind (hidden) after a resume.
        delete_part_files(manifest.targets["bronze"], manifest.bronze_part_prefix, hidden_only=True)
    per_sink, details = _sink_counts(manifest, plan.sinks, counts, resolved.records)
    finished = _now()
    manifest = replace(
        manifest.with_current(finished_at=finished), state="complete", finished_at=finished,
        counts={**manifest.counts, **per_sink}, details={**manifest.details, **details},
    )
    write_manifest(folder, manifest)
    for done in (manifest.checkpoint_dir, manifest.counts_dir):  # only once "complete" is on disk
        remove_dir(done)
    return manifest


def run_backfill(platform: PlatformConfig, request: BackfillRequest, *, out: Out = print) -> int:
    """Decide, then run (or not) and say what each sink got. Raises BackfillError for bad input and
    refusals, before anything is written."""
    decision = decide(platform, request)
    _header(out, request, decision)
    if decision.plan.action == "skip":
        out(f"already complete (finished {decision.manifest.finished_at}); nothing ran. Recorded counts:")
        for line in format_counts(decision.manifest, set(decision.manifest.counts)):
            out(f"  {line}")
        return 0
    if request.dry_run:
        out("dry run: nothing written, no job started")
        return 0
    started = time.perf_counter()
    manifest = run_attempt(platform, request, decision, out)
    out(f"backfill {decision.run_id}: complete in {time.perf_counter() - started:.1f}s")
    for line in format_counts(manifest, decision.plan.sinks):
        out(f"  {line}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Replay vehicle-telemetry for a time or offset range into chosen sinks, once.")
    add_config_arguments(parser)
    add_arguments(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    args = parser.parse_args(argv[1:] if argv[:1] == ["--"] else argv)
    configure_logging(args.log_level, json=args.log_json)
    try:
        return run_backfill(load_config(args.profile, args.set), request_from_args(args))
    except (BackfillError, ConfigError) as exc:
        print(f"backfill: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
