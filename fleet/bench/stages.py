"""How each stage of `telemetry bench pipeline` is started and waited for, with its CPU sampled.

Every stage is a process (tree) of its own, started only after the input is complete, draining the
same preloaded topic into output topics of its own: the passthrough (fleet.bench.limit), the peer
(fleet.bench.peer_app in the peer venv), a Flink job on the MiniCluster (fleet.bench.flink_job, in
a Python process whose JVM is its child) or on a standalone cluster (the same job file submitted
with `flink run -py`, the JobManager and TaskManagers sampled). The broker is sampled in every stage.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fleet.bench.cpu import CpuSampler, command_name, descendants
from infra.flink_cluster import PROJECT_ROOT, FlinkCluster


@dataclass
class StageRun:
    """What running one stage left behind besides its output topics."""

    name: str
    started: float  # wall clock, s
    ended: float
    sampler: CpuSampler
    exit_code: int | None
    stdout: str = ""
    report: dict[str, Any] = field(default_factory=dict)  # the stage's own JSON line, if it prints one
    checkpoints: dict[str, Any] = field(default_factory=dict)  # cluster runs: Flink's checkpoint statistics
    error: str | None = None


def _tree_roles(root_pid: int, root_role: str, child_role: Callable[[str], str]) -> Callable[[], dict[int, str]]:
    def discover() -> dict[int, str]:
        return {root_pid: root_role, **{pid: child_role(command_name(pid)) for pid in descendants(root_pid)}}
    return discover


def _last_json_line(text: str) -> dict[str, Any]:
    for line in reversed(text.strip().splitlines()):
        if line.startswith("{"):
            try:
                return json.loads(line)
            except ValueError:
                break
    return {}


def run_process(name: str, argv: Sequence[str], *, broker_pid: int | None, role: str, log: Path, timeout_s: float,
                env: dict[str, str] | None = None, child_role: Callable[[str], str] = lambda command: command) -> StageRun:
    """Run `argv` to its end (or `timeout_s`), sampling it, its descendants and the broker."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as err:
        started = time.time()
        proc = subprocess.Popen(list(argv), stdout=subprocess.PIPE, stderr=err, cwd=PROJECT_ROOT,
                                env={**os.environ, **(env or {})})
        fixed = {broker_pid: "broker"} if broker_pid else {}
        sampler = CpuSampler(fixed, _tree_roles(proc.pid, role, child_role))
        error = None
        with sampler:
            try:
                stdout, _ = proc.communicate(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()  # our own child, by its pid
                stdout, _ = proc.communicate()
                error = f"{name}: did not finish within {timeout_s:.0f}s (killed); see {log}"
        ended = time.time()
    text = stdout.decode(errors="replace")
    if error is None and proc.returncode != 0:
        error = f"{name}: exit {proc.returncode}; last lines of {log}:\n" + "\n".join(log.read_text(errors="replace").splitlines()[-15:])
    return StageRun(name, started, ended, sampler, proc.returncode, text, _last_json_line(text), error=error)


def minicluster_role(command: str) -> str:
    return "minicluster-jvm" if command == "java" else f"job-client ({command})"


def run_flink_local(name: str, job: str, settings: dict[str, str], profile: str, *, broker_pid: int | None, log: Path,
                    timeout_s: float) -> StageRun:
    argv = [sys.executable, "-m", "fleet.bench.flink_job", "--kind", job, "--profile", profile,
            *(a for k, v in settings.items() for a in ("--set", f"{k}={v}"))]
    return run_process(name, argv, broker_pid=broker_pid, role="job-client (python)", log=log, timeout_s=timeout_s,
                       child_role=minicluster_role)


def run_flink_cluster(name: str, cluster: FlinkCluster, job: str, settings: dict[str, str], profile: str, *,
                      broker_pid: int | None, timeout_s: float) -> StageRun:
    """Submit the job with `flink run -py`, wait for it to finish, keep Flink's checkpoint statistics."""
    def discover() -> dict[int, str]:
        pids = {cluster.jobmanager.pid(): "jobmanager"}
        pids.update({tm.pid(): "taskmanager" for tm in cluster.running_taskmanagers()})
        return {pid: role for pid, role in pids.items() if pid}

    sampler = CpuSampler({broker_pid: "broker"} if broker_pid else {}, discover)
    args = ["--kind", job, "--profile", profile, *(a for k, v in settings.items() for a in ("--set", f"{k}={v}"))]
    started = time.time()
    error, job_id, checkpoints = None, None, {}
    with sampler:
        try:
            job_id = cluster.submit(PROJECT_ROOT / "fleet" / "bench" / "flink_job.py", args)
            cluster.wait_for_state(job_id, ["FINISHED"], timeout_s)
        except Exception as exc:  # noqa: BLE001 - reported as the stage's failure, the run goes on
            error = f"{name}: {exc}"
    ended = time.time()
    if job_id is not None:
        try:
            checkpoints = _checkpoint_stats(cluster, job_id)
        except Exception as exc:  # noqa: BLE001 - statistics are a bonus, not the measurement
            checkpoints = {"error": str(exc)}
        if error is not None:
            try:
                cluster.cancel(job_id)
            except Exception:  # noqa: BLE001 - already failed or gone
                pass
    return StageRun(name, started, ended, sampler, 0 if error is None else 1, report={"job_id": job_id},
                    checkpoints=checkpoints, error=error)


def _checkpoint_stats(cluster: FlinkCluster, job_id: str) -> dict[str, Any]:
    stats = cluster._get(f"/jobs/{job_id}/checkpoints")
    summary = stats.get("summary", {})

    def pick(metric: str) -> dict[str, Any]:
        values = summary.get(metric) or {}
        return {k: values.get(k) for k in ("min", "avg", "max", "p99") if k in values}

    return {
        "completed": stats.get("counts", {}).get("completed"),
        "failed": stats.get("counts", {}).get("failed"),
        "state_size_bytes": pick("checkpointed_size") or pick("state_size"),
        "duration_ms": pick("end_to_end_duration"),
    }
