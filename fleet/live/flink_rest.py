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
import urllib.request
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
    trigger = _call(f"{base_url}/jobs/{job}/stop", {"targetDirectory": target_dir, "drain": False})["request-id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = _call(f"{base_url}/jobs/{job}/savepoints/{trigger}")
        if status.get("status", {}).get("id") == "COMPLETED":
            operation = status.get("operation") or {}
            if operation.get("location"):
                return operation["location"]
            raise FlinkRestError(f"savepoint failed: {str(operation.get('failure-cause', operation))[:500]}")
        time.sleep(0.5)
    raise FlinkRestError(f"savepoint of job {job} not complete after {timeout_s:.0f} s")
