"""A backfill run's identity, its manifest, and the rules that decide what running it again does.

A run is (telemetry topic, resolved offset ranges, sinks, where each sink writes); its id is a short
hash of those, so the same command always means the same run. `<run_dir>/backfill/<run_id>/` holds
`manifest.json` and, locally, the run's own checkpoints and counts.

The rules (`plan_attempt`), because Kafka sinks are append-only and the other two are not:
  new                      → runs, unless another run already wrote records of the range to the same
                             Kafka topic or Bronze path (`overlapping_runs`)
  complete                 → nothing runs ("already complete"), unless --rerun
  --rerun                  → only `store` (upserts) and `bronze` (this run's files are deleted first)
  interrupted, checkpoint  → resume from the run's latest retained checkpoint, same sinks as before
  interrupted, none        → start over; with Kafka sinks only when it is certain nothing was
                             committed (transactions commit only after a checkpoint completes, and
                             completed checkpoints are retained), otherwise refuse
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from jobs.backfill.ranges import BackfillError, ResolvedRange

ALL_SINKS = ("enriched", "bronze", "store", "dlq")
IDEMPOTENT_SINKS = frozenset({"store", "bronze"})
KAFKA_SINKS = frozenset({"enriched", "dlq"})
# Where a second run adds the same records again: Kafka topics, and Bronze, whose files are per run
# (a run can replace only its own). The store's writes are upserts.
ADDITIVE_SINKS = KAFKA_SINKS | {"bronze"}
MANIFEST = "manifest.json"


def parse_sinks(text: str | None) -> frozenset[str]:
    if text is None:
        return frozenset(ALL_SINKS)
    sinks = frozenset(s.strip() for s in text.split(",") if s.strip())
    unknown = sorted(sinks - set(ALL_SINKS))
    if unknown or not sinks:
        raise BackfillError(f"--sinks {text!r}: choose from {', '.join(ALL_SINKS)} (comma-separated)")
    return sinks


def run_id_of(resolved: ResolvedRange, sinks: Iterable[str], targets: Mapping[str, str]) -> str:
    sinks = sorted(sinks)
    identity = {
        "topic": resolved.topic,
        "ranges": resolved.as_json(),
        "sinks": sinks,
        "targets": {s: targets[s] for s in sinks},
    }
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:12]


@dataclass(frozen=True)
class Attempt:
    purpose: str  # first | rerun: what the attempt is for; a resumed or restarted one keeps it
    action: str  # first | rerun | resume | restart: how this attempt started
    sinks: tuple[str, ...]
    started_at: str
    restored_from: str | None = None
    submitted: bool = False  # the Flink job was handed to the cluster (it may have written)
    finished_at: str | None = None


@dataclass(frozen=True)
class Manifest:
    run_id: str
    state: str  # running | complete
    telemetry_topic: str
    range: dict[str, str]  # as given on the command line
    resolved: dict[str, list[int]]  # partition → [start, end)
    records: int
    sinks: tuple[str, ...]
    targets: dict[str, str]
    group_id: str
    transactional_id_prefix: str
    bronze_part_prefix: str
    checkpoint_dir: str
    counts_dir: str  # the job's running count of each output (jobs/backfill/counts.py)
    started_at: str
    finished_at: str | None = None
    counts: dict[str, int | None] = field(default_factory=dict)
    details: dict[str, int | None] = field(default_factory=dict)  # read, duplicates, store rejects…
    attempts: tuple[Attempt, ...] = ()

    @property
    def attempt(self) -> Attempt:
        return self.attempts[-1]

    def resolved_ranges(self) -> dict[int, tuple[int, int]]:
        return {int(p): (r[0], r[1]) for p, r in self.resolved.items()}

    def with_attempt(self, attempt: Attempt) -> Manifest:
        return replace(self, state="running", finished_at=None, attempts=(*self.attempts, attempt))

    def with_current(self, **changes: object) -> Manifest:
        return replace(self, attempts=(*self.attempts[:-1], replace(self.attempt, **changes)))

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True) + "\n"

    @staticmethod
    def from_json(text: str) -> Manifest:
        raw = json.loads(text)
        raw["sinks"] = tuple(raw["sinks"])
        raw["attempts"] = tuple(Attempt(**{**a, "sinks": tuple(a["sinks"])}) for a in raw["attempts"])
        return Manifest(**raw)


def run_folder(run_dir: Path, run_id: str) -> Path:
    return run_dir / "backfill" / run_id


def read_manifest(folder: Path) -> Manifest | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.from_json(path.read_text())
    except (ValueError, TypeError, KeyError) as exc:
        raise BackfillError(f"{path} is not a readable backfill manifest ({exc}); move it away or fix it") from None


def write_manifest(folder: Path, manifest: Manifest) -> None:
    """Atomically: an interrupted write must not leave a run without a readable state."""
    folder.mkdir(parents=True, exist_ok=True)
    temporary = folder / f".{MANIFEST}.tmp"
    temporary.write_text(manifest.to_json())
    os.replace(temporary, folder / MANIFEST)


def all_manifests(run_dir: Path) -> list[Manifest]:
    root = run_dir / "backfill"
    return [m for m in (read_manifest(f) for f in sorted(root.iterdir()) if f.is_dir()) if m] if root.is_dir() else []


@dataclass(frozen=True)
class Plan:
    action: str  # skip | first | resume | restart | rerun
    sinks: frozenset[str]
    purpose: str = "first"  # first | rerun: a resumed or restarted attempt keeps its attempt's
    restore_from: str | None = None
    delete_bronze: bool = False  # this run's Bronze files go before the job writes them again
    reason: str = ""
    # The telemetry source also subscribes one extra partition with an empty range on a fresh
    # start, and leaves it out when resuming. A bounded KafkaSource restored from a checkpoint tells
    # its readers that no more splits will come only if its partition discovery finds a change
    # (FLINK-31006, still open for connector 5.0.0-2.2); without one the job reads up to its
    # stopping offsets and then waits forever. The restored state keeps the extra partition (this
    # connector never drops a removed partition from it), so every resume, also of a resumed
    # attempt, finds it removed: a change.
    sentinel: bool = True


def plan_attempt(
    manifest: Manifest | None,
    *,
    sinks: frozenset[str],
    rerun: bool,
    checkpoint: str | None,
    job_seen: bool,
) -> Plan:
    """What this invocation does with the run, given its manifest and checkpoint folder.

    `checkpoint`: the run's latest completed checkpoint, if any; `job_seen`: whether the checkpoint
    folder shows that a Flink job of this run started (Flink creates its job folder before any
    record is read).
    """
    if rerun:
        kafka = sorted(sinks & KAFKA_SINKS)
        if kafka:
            raise BackfillError(
                f"--rerun cannot write to {', '.join(kafka)}: Kafka topics are append-only, so a second replay "
                "would add every record again. --rerun replays only into store and bronze"
            )
    if manifest is None:
        if rerun:
            raise BackfillError("nothing to rerun: no earlier backfill of this range into these sinks")
        return Plan("first", sinks, reason="new run")
    if manifest.state == "complete":
        if not rerun:
            return Plan("skip", frozenset(manifest.sinks), reason="already complete")
        return Plan("rerun", sinks, "rerun", delete_bronze="bronze" in sinks, reason=f"rerun into {', '.join(sorted(sinks))}")

    # Interrupted: carry on with the attempt that was running, whatever this invocation asked for,
    # because its checkpoint only fits a job with those sinks.
    attempt = manifest.attempt
    if rerun and attempt.purpose != "rerun":
        raise BackfillError(
            f"run {manifest.run_id} did not finish; run the same command without --rerun to resume it first"
        )
    interrupted = frozenset(attempt.sinks)
    if checkpoint is not None:
        return Plan(
            "resume", interrupted, attempt.purpose, restore_from=checkpoint, reason=f"resume from {checkpoint}", sentinel=False,
        )
    kafka = sorted(interrupted & KAFKA_SINKS)
    if kafka and attempt.submitted and not job_seen:
        raise BackfillError(
            f"run {manifest.run_id} was interrupted and its checkpoint folder {manifest.checkpoint_dir} holds no "
            f"trace of its job, so it cannot tell whether transactions to {', '.join(kafka)} were committed; "
            "replaying could duplicate records there. Check those topics, then remove the run folder to start "
            "it afresh, or backfill only into store,bronze"
        )
    why = "no checkpoint completed, so no Kafka transaction was committed" if kafka else "idempotent sinks only"
    return Plan("restart", interrupted, attempt.purpose, delete_bronze="bronze" in interrupted, reason=f"start over ({why})")


def find_rerun_target(
    manifests: Iterable[Manifest],
    resolved: ResolvedRange,
    sinks: frozenset[str],
    targets: Mapping[str, str],
    run_id: str | None,
) -> Manifest | None:
    """The earlier run of this range that wrote to every sink asked for, at the same targets."""
    ranges = resolved.as_json()
    found = [
        m for m in manifests
        if m.telemetry_topic == resolved.topic and m.resolved == ranges and sinks <= set(m.sinks)
        and all(m.targets.get(s) == targets[s] for s in sinks) and (run_id is None or m.run_id == run_id)
    ]
    if len(found) > 1:
        raise BackfillError(
            f"several earlier runs replayed this range into {', '.join(sorted(sinks))}: "
            + ", ".join(m.run_id for m in found) + "; choose one with --run-id"
        )
    if run_id is not None and not found:
        raise BackfillError(f"no run {run_id} of this range into {', '.join(sorted(sinks))}")
    return found[0] if found else None


def overlapping_runs(
    manifests: Iterable[Manifest], resolved: ResolvedRange, sinks: frozenset[str], targets: Mapping[str, str], run_id: str,
) -> list[tuple[Manifest, list[str]]]:
    """Other runs that already wrote records of this range to the same additive sinks, with which."""
    clashes = []
    for m in manifests:
        if m.run_id == run_id or m.telemetry_topic != resolved.topic or not resolved.overlaps(m.resolved_ranges()):
            continue
        shared = [s for s in sorted(sinks & ADDITIVE_SINKS) if s in m.sinks and m.targets.get(s) == targets[s]]
        if shared:
            clashes.append((m, shared))
    return clashes


@dataclass(frozen=True)
class CheckpointFolder:
    latest: str | None  # URI of the newest chk-N that has its _metadata, for execution.state-recovery.path
    job_seen: bool  # some Flink job of this run created its folder here


def _filesystem(uri: str):
    from pyarrow import fs

    return fs, *fs.FileSystem.from_uri(uri)


def _as_uri(base_uri: str, path: str) -> str:
    return Path(path).as_uri() if base_uri.startswith("file:") else f"{base_uri.split('://', 1)[0]}://{path}"


def inspect_checkpoints(uri: str) -> CheckpointFolder:
    """Flink writes <dir>/<job_id>/chk-N/_metadata; a resumed attempt is a new job id, so the newest
    _metadata across all of them is the run's latest checkpoint."""
    fs, filesystem, base = _filesystem(uri)
    jobs = [i for i in filesystem.get_file_info(fs.FileSelector(base, allow_not_found=True)) if i.type == fs.FileType.Directory]
    newest: tuple[tuple[float, int], str] | None = None
    for job in jobs:
        for chk in filesystem.get_file_info(fs.FileSelector(job.path, allow_not_found=True)):
            if chk.type != fs.FileType.Directory or not chk.base_name.startswith("chk-"):
                continue
            metadata = filesystem.get_file_info(f"{chk.path}/_metadata")
            if metadata.type == fs.FileType.File:
                stamp = metadata.mtime.timestamp() if metadata.mtime else 0.0
                number = int(chk.base_name[4:]) if chk.base_name[4:].isdigit() else -1
                if newest is None or (stamp, number) > newest[0]:
                    newest = ((stamp, number), chk.path)
    return CheckpointFolder(_as_uri(uri, newest[1]) if newest else None, bool(jobs))


def remove_dir(uri: str, attempts: int = 20) -> None:
    """Flink's checkpoint cleaner may still be removing subsumed checkpoints of a job that just
    finished: a file vanishing under the walk is retried, not an error."""
    from connectors.retry import retry_call

    fs, filesystem, base = _filesystem(uri)

    def remove() -> None:
        if filesystem.get_file_info(base).type == fs.FileType.Directory:
            filesystem.delete_dir(base)

    retry_call(remove, retry_if=lambda error: isinstance(error, FileNotFoundError), wait=0.1,
               attempts=attempts)
