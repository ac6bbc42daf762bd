"""A local job's MiniCluster REST API, for the one thing `telemetry live` needs from it: stop the
job with a savepoint.

Why not just SIGTERM: the Kafka source commits its offsets to the consumer group and the
exactly-once sinks commit their transactions only after a checkpoint completes, each on its own; a
job killed in between has written to telemetry-enriched what its group's offsets do not yet cover
(measured: 574 events twice after a restart from the committed offsets), and a transaction left
pre-committed is aborted by the broker after `transaction_timeout_ms`. Stop-with-savepoint
(`POST /jobs/<id>/stop`) takes a savepoint, commits every sink's transactions and finishes the job:
the next start restores it — offsets and state (dedup, alert episodes) — exactly once.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any


class FlinkRestError(RuntimeError):
    """The REST API did not answer, or the savepoint failed."""


def _call(url: str, body: dict[str, Any] | None = None, timeout_s: float = 10.0) -> Any:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST" if body is not None else "GET",
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            return json.loads(response.read() or b"null")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise FlinkRestError(f"{url}: {exc}") from exc


def running_job(base_url: str) -> str | None:
    """The id of the running job, or None."""
    jobs = _call(f"{base_url}/jobs").get("jobs", [])
    running = [j["id"] for j in jobs if j.get("status") == "RUNNING"]
    return running[0] if running else None


def stop_with_savepoint(base_url: str, target_dir: str, timeout_s: float = 90.0) -> str:
    """Stop the running job with a savepoint into `target_dir`; its location. FlinkRestError if
    there is no running job or the savepoint does not complete in time."""
    job = running_job(base_url)
    if job is None:
        raise FlinkRestError(f"{base_url}: no running job")
    triggered_at = time.time()
    trigger = _call(f"{base_url}/jobs/{job}/stop", {"targetDirectory": target_dir, "drain": False})["request-id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            status = _call(f"{base_url}/jobs/{job}/savepoints/{trigger}")
        except FlinkRestError:
            # A finished job ends its MiniCluster's process, REST API and all, often before the next
            # poll (CI: gone 0.7 s after the trigger): then the savepoint tells by its own _metadata,
            # which Flink writes last, when the savepoint is complete.
            location = savepoint_on_disk(target_dir, job, since=triggered_at)
            if location is not None:
                return location
            raise
        if status.get("status", {}).get("id") == "COMPLETED":
            operation = status.get("operation") or {}
            if operation.get("location"):
                return operation["location"]
            raise FlinkRestError(f"savepoint failed: {str(operation.get('failure-cause', operation))[:500]}")
        time.sleep(0.2)
    raise FlinkRestError(f"savepoint of job {job} not complete after {timeout_s:.0f} s")


def savepoint_on_disk(target_dir: str, job: str, since: float) -> str | None:
    """The location (`file:/…`, as Flink reports it) of the newest complete savepoint of `job` in
    `target_dir` (a path or file: URI) finished at or after `since` (epoch seconds), or None.
    Flink names a savepoint folder savepoint-<first 6 hex of the job id>-<random>."""
    folder = Path(urllib.parse.urlparse(target_dir).path) if target_dir.startswith("file:") else Path(target_dir)
    complete = [(meta.stat().st_mtime, meta.parent) for meta in folder.glob(f"savepoint-{job[:6]}-*/_metadata")]
    recent = [found for found in complete if found[0] >= since - 1.0]  # 1 s: coarse file timestamps
    return f"file:{max(recent)[1]}" if recent else None
