"""A real Flink standalone cluster on loopback from PyFlink's own `bin/`: one JobManager and one or
more TaskManagers as separate JVM processes, jobs submitted with `flink run -py`.

This is what `flink run` on the Kubernetes operator does, minus Kubernetes: the failure harness
kills TaskManager processes and restarts brokers under it, and savepoint stop/resume goes through
the same REST API the operator uses. The configuration is written into the cluster's folder
(FLINK_CONF_DIR) from the packaged template's JVM options, never edited in place.
"""

from __future__ import annotations

import json
import os
import signal
import site
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from infra.process import ComponentStatus, InfraError, ManagedProcess, free_port, port_open, wait_until

PROJECT_ROOT = Path(__file__).resolve().parent.parent

TERMINAL_STATES = frozenset({"FINISHED", "CANCELED", "FAILED"})


def flink_home() -> Path:
    import pyflink

    return Path(pyflink.__file__).resolve().parent


def python_path() -> str:
    """What a TaskManager's embedded interpreter (thread mode) and the `flink run` client need to
    import the project: on Kubernetes the image has it installed, here the venv and the checkout."""
    return os.pathsep.join([str(PROJECT_ROOT), *site.getsitepackages()])


def _template_java_opts() -> str:
    """The packaged config.yaml's `env.java.opts.all` (the --add-opens Flink needs on Java 17)."""
    lines = (flink_home() / "conf" / "config.yaml").read_text().splitlines()
    for index, line in enumerate(lines):
        if line.strip() == "opts:" and index + 1 < len(lines) and lines[index + 1].strip().startswith("all:"):
            return lines[index + 1].split("all:", 1)[1].strip()
    raise InfraError("pyflink/conf/config.yaml has no env.java.opts.all: unexpected PyFlink layout")


class FlinkCluster:
    """One JobManager and `taskmanagers` TaskManagers living in `run_dir/flink`."""

    name = "flink"

    def __init__(self, run_dir: Path, host: str = "127.0.0.1", *, rest_port: int | None = None, slots: int = 4,
                 taskmanager_memory: str = "2048m", heartbeat_timeout_ms: int = 8000, prometheus_ports: str | None = None):
        self.folder = run_dir / "flink"
        self.host = host
        # Flink's Prometheus reporter in every process: a range ("9250-9259"), as the JobManager
        # and each TaskManager take the first free port of it. Loaded from FLINK_HOME/plugins/
        # (PyPI's package ships plugins/metrics-prometheus/); a cluster, unlike a MiniCluster, has
        # a plugin manager. None: no reporter.
        self.prometheus_ports = prometheus_ports
        self.slots = slots
        self.taskmanager_memory = taskmanager_memory
        self.heartbeat_timeout_ms = heartbeat_timeout_ms
        ports_file = self.folder / "ports.json"
        if ports_file.is_file():
            ports = json.loads(ports_file.read_text())
        else:
            ports = {"rest": rest_port or free_port(host), "rpc": free_port(host)}
        if rest_port is not None:
            ports["rest"] = rest_port
        self.rest_port, self.rpc_port = ports["rest"], ports["rpc"]
        self._ports = ports
        self.jobmanager = ManagedProcess("jobmanager", self.folder)
        self._taskmanager_count = 0

    # ---- processes -------------------------------------------------------------------------

    @property
    def conf_dir(self) -> Path:
        return self.folder / "conf"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.rest_port}"

    def taskmanager(self, index: int) -> ManagedProcess:
        return ManagedProcess(f"taskmanager-{index}", self.folder)

    def write_config(self) -> None:
        self.conf_dir.mkdir(parents=True, exist_ok=True)
        (self.folder / "ports.json").write_text(json.dumps(self._ports))
        settings = {
            "env.java.opts.all": _template_java_opts(),
            "jobmanager.rpc.address": self.host,
            "jobmanager.rpc.port": self.rpc_port,
            "jobmanager.bind-host": self.host,
            "jobmanager.memory.process.size": "1024m",
            "rest.address": self.host,
            "rest.bind-address": self.host,
            "rest.port": self.rest_port,
            "taskmanager.host": self.host,
            "taskmanager.bind-host": self.host,
            "taskmanager.numberOfTaskSlots": self.slots,
            "taskmanager.memory.process.size": self.taskmanager_memory,
            "io.tmp.dirs": str(self.folder / "tmp"),
            "web.upload.dir": str(self.folder / "uploads"),
            # A killed TaskManager is noticed in seconds, not Flink's default 50 s: the harness
            # (and a Kubernetes liveness-restarted pod) should not wait for a heartbeat timeout.
            "heartbeat.interval": 1000,
            "heartbeat.timeout": self.heartbeat_timeout_ms,
            "jobmanager.execution.failover-strategy": "region",
        }
        if self.prometheus_ports:
            settings["metrics.reporter.prom.factory.class"] = "org.apache.flink.metrics.prometheus.PrometheusReporterFactory"
            settings["metrics.reporter.prom.port"] = self.prometheus_ports
        (self.conf_dir / "config.yaml").write_text("".join(f"{key}: {_yaml_value(value)}\n" for key, value in settings.items()))
        for name in ("log4j-console.properties", "log4j-cli.properties", "log4j.properties"):
            (self.conf_dir / name).write_text(_LOG4J)
        (self.folder / "log").mkdir(exist_ok=True)
        (self.folder / "tmp").mkdir(exist_ok=True)
        self._link_lib()

    def _link_lib(self) -> None:
        """lib/ = PyFlink's lib/ plus opt/flink-python: Python operators are cluster classes, as
        in Flink's PyFlink images (copied from opt/ into lib/). Links, so the venv stays untouched."""
        lib = self.folder / "lib"
        if lib.exists():
            for link in lib.iterdir():
                link.unlink()
        lib.mkdir(exist_ok=True)
        home = flink_home()
        for jar in [*(home / "lib").glob("*.jar"), *(home / "opt").glob("flink-python-*.jar")]:
            (lib / jar.name).symlink_to(jar)

    def environment(self) -> dict[str, str]:
        return {
            "FLINK_HOME": str(flink_home()),
            "FLINK_CONF_DIR": str(self.conf_dir),
            "FLINK_LOG_DIR": str(self.folder / "log"),
            "FLINK_LIB_DIR": str(self.folder / "lib"),
            "PYTHONPATH": python_path(),
        }

    def _start(self, process: ManagedProcess, script: str) -> int:
        # `-D io.tmp.dirs=<folder>` is redundant with the config; it puts the folder on the command
        # line so the pid check can recognise the JVM (flink-console.sh execs java).
        argv = ["bash", str(flink_home() / "bin" / script), "start-foreground", "-D", f"io.tmp.dirs={self.folder / 'tmp'}"]
        return process.start(argv, env=self.environment())

    def up(self, taskmanagers: int = 1, timeout_s: float = 90.0) -> int:
        self.write_config()
        if self.jobmanager.pid() is None and port_open(self.host, self.rest_port):
            raise InfraError(f"flink: {self.host}:{self.rest_port} is already in use by another process")
        pid = self._start(self.jobmanager, "jobmanager.sh")
        wait_until(self._rest_ready, timeout_s=timeout_s, what=f"Flink REST on {self.rest_url}", process=self.jobmanager)
        for index in range(taskmanagers):
            if self.taskmanager(index).pid() is None:
                self.start_taskmanager(index, timeout_s=timeout_s)
        return pid

    def start_taskmanager(self, index: int | None = None, timeout_s: float = 90.0) -> int:
        """Start a TaskManager and wait until the JobManager has registered it."""
        if index is None:
            index = self._next_taskmanager_index()
        before = {tm["id"] for tm in self.taskmanagers()}
        process = self.taskmanager(index)
        pid = self._start(process, "taskmanager.sh")
        wait_until(lambda: {tm["id"] for tm in self.taskmanagers()} - before != set(),
                   timeout_s=timeout_s, what=f"taskmanager-{index} registered", process=process)
        return pid

    def _next_taskmanager_index(self) -> int:
        used = {int(p.stem.split("-")[1]) for p in self.folder.glob("taskmanager-*.pid")}
        return max(used, default=-1) + 1

    def running_taskmanagers(self) -> list[ManagedProcess]:
        processes = [ManagedProcess(p.stem, self.folder) for p in sorted(self.folder.glob("taskmanager-*.pid"))]
        return [p for p in processes if p.pid() is not None]

    def kill_taskmanager(self) -> int:
        """SIGKILL one TaskManager, as the OOM killer or a node loss would: no clean shutdown."""
        running = self.running_taskmanagers()
        if not running:
            raise InfraError("no TaskManager is running")
        process = running[0]
        pid = process.pid()
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while process.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        process.pid_file.unlink(missing_ok=True)
        return pid

    def down(self) -> bool:
        stopped = False
        for process in self.running_taskmanagers():
            stopped = process.stop(timeout_s=20.0) or stopped
        return self.jobmanager.stop(timeout_s=20.0) or stopped

    def status(self) -> ComponentStatus:
        pid = self.jobmanager.pid()
        healthy, detail = False, "down"
        if pid is not None:
            try:
                overview = self._get("/overview")
                healthy = True
                detail = f"{overview['taskmanagers']} taskmanagers, {overview['slots-available']}/{overview['slots-total']} slots free"
            except (OSError, KeyError, ValueError) as exc:
                detail = f"REST not answering: {exc}"
        return ComponentStatus(self.name, self.rest_url, pid, healthy, detail, self.folder / "log")

    # ---- REST ------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None, timeout_s: float = 10.0) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(self.rest_url + path, data=data, method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=timeout_s) as response:
            text = response.read()
        return json.loads(text) if text else {}

    def _get(self, path: str) -> Any:
        return self._request("GET", path)

    def _rest_ready(self) -> bool:
        return "taskmanagers" in self._get("/overview")

    def taskmanagers(self) -> list[dict[str, Any]]:
        return self._get("/taskmanagers")["taskmanagers"]

    def job(self, job_id: str) -> dict[str, Any]:
        return self._get(f"/jobs/{job_id}")

    def job_state(self, job_id: str) -> str:
        return self.job(job_id)["state"]

    def restarts(self, job_id: str) -> int:
        """How many times the job has restarted (the `numRestarts` metric)."""
        metrics = self._get(f"/jobs/{job_id}/metrics?get=numRestarts")
        return int(float(metrics[0]["value"])) if metrics else 0

    def completed_checkpoints(self, job_id: str) -> int:
        return int(self._get(f"/jobs/{job_id}/checkpoints")["counts"]["completed"])

    def restored_from(self, job_id: str) -> str | None:
        """Where the job's state came from at its (latest) start: a savepoint or checkpoint path."""
        restored = (self._get(f"/jobs/{job_id}/checkpoints").get("latest") or {}).get("restored") or {}
        return restored.get("external_path")

    def exceptions(self, job_id: str) -> list[str]:
        history = self._get(f"/jobs/{job_id}/exceptions?maxExceptions=20").get("exceptionHistory", {}).get("entries", [])
        return [entry.get("exceptionName", "") + ": " + (entry.get("stacktrace", "").splitlines() or [""])[0] for entry in history]

    def wait_for_state(self, job_id: str, states: Sequence[str], timeout_s: float) -> str:
        deadline = time.monotonic() + timeout_s
        state = "?"
        while time.monotonic() < deadline:
            try:
                state = self.job_state(job_id)
            except (OSError, urllib.error.HTTPError):
                state = "?"
            if state in states:
                return state
            if state in TERMINAL_STATES:
                break
            time.sleep(0.5)
        raise InfraError(f"job {job_id} is {state}, wanted {'/'.join(states)}; exceptions: {self._safe_exceptions(job_id)}")

    def wait_for_checkpoints(self, job_id: str, more_than: int, timeout_s: float) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            count = self.completed_checkpoints(job_id)
            if count > more_than:
                return count
            if self.job_state(job_id) in TERMINAL_STATES:
                break
            time.sleep(0.3)
        raise InfraError(f"job {job_id}: no checkpoint beyond {more_than} in {timeout_s:.0f}s; exceptions: {self._safe_exceptions(job_id)}")

    def wait_running(self, job_id: str, timeout_s: float = 120.0) -> None:
        """RUNNING with every task running (not just scheduled): the job is consuming."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            job = self.job(job_id)
            if job["state"] == "RUNNING" and all(v["status"] == "RUNNING" for v in job["vertices"]):
                return
            if job["state"] in TERMINAL_STATES:
                break
            time.sleep(0.5)
        raise InfraError(f"job {job_id} did not reach RUNNING with all tasks; exceptions: {self._safe_exceptions(job_id)}")

    def _safe_exceptions(self, job_id: str) -> list[str]:
        try:
            return self.exceptions(job_id)[:3]
        except (OSError, KeyError, ValueError):
            return []

    def cancel(self, job_id: str, timeout_s: float = 60.0) -> None:
        try:
            self._request("PATCH", f"/jobs/{job_id}?mode=cancel")
        except urllib.error.HTTPError as exc:
            if exc.code != 404:
                raise
        self.wait_for_state(job_id, ["CANCELED", "FINISHED", "FAILED"], timeout_s)

    def stop_with_savepoint(self, job_id: str, target_dir: str, timeout_s: float = 120.0) -> str:
        """`flink stop --savepointPath <dir> <job>` through REST (what the Kubernetes operator
        does on an upgrade): sources stop, a savepoint is taken, sinks commit, the job finishes.
        Returns the savepoint's location."""
        trigger = self._request("POST", f"/jobs/{job_id}/stop", {"targetDirectory": target_dir, "drain": False})["request-id"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            status = self._get(f"/jobs/{job_id}/savepoints/{trigger}")
            if status["status"]["id"] == "COMPLETED":
                operation = status["operation"]
                if "failure-cause" in operation:
                    raise InfraError(f"stop with savepoint failed: {operation['failure-cause'].get('stack-trace', '')[:2000]}")
                self.wait_for_state(job_id, ["FINISHED"], timeout_s)
                return operation["location"]
            time.sleep(0.5)
        raise InfraError(f"stop with savepoint of {job_id} did not complete in {timeout_s:.0f}s")

    # ---- jobs ------------------------------------------------------------------------------

    def submit(self, job_file: Path, job_args: Sequence[str], *, savepoint: str | None = None, timeout_s: float = 180.0) -> str:
        """`flink run --detached -py <job_file> … <job_args>`; returns the job id."""
        return self._submit(["-py", str(job_file)], job_file.name, job_args, savepoint=savepoint, timeout_s=timeout_s)

    def submit_module(self, module: str, job_args: Sequence[str], *, savepoint: str | None = None, timeout_s: float = 180.0) -> str:
        """`flink run --detached -pym <module> … <job_args>`: what the Kubernetes operator's
        PythonDriver runs for a FlinkDeployment's `-pym` (the module from the project root)."""
        return self._submit(["-pym", module], module, job_args, savepoint=savepoint, timeout_s=timeout_s)

    def _submit(self, entry: list[str], name: str, job_args: Sequence[str], *, savepoint: str | None, timeout_s: float) -> str:
        argv = [str(flink_home() / "bin" / "flink"), "run", "--detached"]
        if savepoint:
            argv += ["--fromSavepoint", savepoint]
        argv += [*entry, "-pyexec", sys.executable, "-pyclientexec", sys.executable, *job_args]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, env={**os.environ, **self.environment()}, cwd=PROJECT_ROOT)
        for line in result.stdout.splitlines():
            if "JobID" in line:
                return line.rsplit(" ", 1)[1].strip()
        raise InfraError(f"flink run {name} failed (exit {result.returncode}):\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}")


def _yaml_value(value: Any) -> str:
    return str(value) if isinstance(value, int) else json.dumps(str(value))


_LOG4J = """\
rootLogger.level = INFO
rootLogger.appenderRef.file.ref = MainAppender
appender.main.name = MainAppender
appender.main.type = RollingFile
appender.main.append = true
appender.main.fileName = ${sys:log.file}
appender.main.filePattern = ${sys:log.file}.%i
appender.main.layout.type = PatternLayout
appender.main.layout.pattern = %d{yyyy-MM-dd HH:mm:ss,SSS} %-5p %-60c %x - %m%n
appender.main.policies.type = Policies
appender.main.policies.size.type = SizeBasedTriggeringPolicy
appender.main.policies.size.size = 50MB
appender.main.strategy.type = DefaultRolloverStrategy
appender.main.strategy.max = 3
logger.kafka.name = org.apache.kafka
logger.kafka.level = WARN
"""
