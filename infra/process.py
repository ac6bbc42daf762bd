"""Start, watch and stop one local server process by its pid file: never by name.

A pid file alone can outlive its process and name a stranger after pid reuse, so every started
process records a marker (its own run folder) and is only ever signalled if /proc shows that marker
in its command line.
"""

from __future__ import annotations

import functools
import os
import random
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


class InfraError(RuntimeError):
    """A local server could not be started, reached or stopped."""


@dataclass(frozen=True)
class ComponentStatus:
    name: str
    address: str
    pid: int | None
    healthy: bool
    detail: str
    log: Path | None


@dataclass(frozen=True)
class ManagedProcess:
    """One server process living in `folder` (its config, data, log and pid file)."""

    name: str
    folder: Path

    @property
    def pid_file(self) -> Path:
        return self.folder / f"{self.name}.pid"

    @property
    def log_file(self) -> Path:
        return self.folder / f"{self.name}.log"

    def pid(self) -> int | None:
        """The pid of our running process, or None (a stale pid file is removed)."""
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        if _is_ours(pid, str(self.folder)):
            return pid
        self.pid_file.unlink(missing_ok=True)
        return None

    def refuse_taken(self, host: str, *ports: int) -> None:
        """Before a start: a port that answers while our process is not running is someone else's."""
        if self.pid() is None:
            for port in ports:
                if port_open(host, port):
                    raise InfraError(f"{self.name}: {host}:{port} is already in use by another process")

    def start(self, argv: Sequence[str], env: Mapping[str, str] | None = None) -> int:
        existing = self.pid()
        if existing is not None:
            return existing
        if str(self.folder) not in " ".join(argv):
            raise InfraError(f"{self.name}: its command line must contain its folder {self.folder} (pid safety)")
        self.folder.mkdir(parents=True, exist_ok=True)
        proc = spawn_logged(argv, self.log_file, cwd=self.folder, env={**os.environ, **(env or {})})
        self.pid_file.write_text(str(proc.pid))
        return proc.pid

    def stop(self, timeout_s: float = 30.0) -> bool:
        """SIGTERM, wait, then SIGKILL. True if a process was stopped."""
        pid = self.pid()
        if pid is None:
            return False
        os.kill(pid, signal.SIGTERM)
        if not _wait_gone(pid, timeout_s):
            os.kill(pid, signal.SIGKILL)
            _wait_gone(pid, 10.0)
        self.pid_file.unlink(missing_ok=True)
        return True

    def log_tail(self, lines: int = 30) -> str:
        return log_tail(self.log_file, lines)


def spawn_logged(argv: Sequence[str], log: Path, *, cwd: Path | None, env: Mapping[str, str]) -> subprocess.Popen:
    """Start `argv` with stdout and stderr appended to `log` after a `=== start` line, in a session
    of its own: it survives the CLI that started it, and Ctrl-C in that shell does not reach it."""
    with log.open("ab") as out:
        out.write(f"\n=== start {time.strftime('%Y-%m-%dT%H:%M:%S')} {' '.join(argv)}\n".encode())
        out.flush()
        return subprocess.Popen(
            list(argv), cwd=cwd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=dict(env),
            start_new_session=True,
        )


def log_tail(log: Path, lines: int) -> str:
    """The last `lines` lines of `log`, or "(no log)"."""
    try:
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except FileNotFoundError:
        return "(no log)"


def proc_stat(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name, or None once it is gone: [0] the state,
    [1] the parent, [2] the process group, [11] utime, [12] stime (stat(5) fields 3, 4, 5, 14, 15).
    `pid` may name any /proc entry with a stat file, e.g. "self/task/<tid>"."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            text = handle.read()
    except OSError:
        return None
    end = text.rfind(b")")  # the command name may hold spaces and parentheses: it ends at the last one
    return None if end < 0 else text[end + 1:].decode().split()


def cpu_seconds(pid: int | str) -> float | None:
    """utime + stime of every thread of `pid` (not of its children), or None once it is gone."""
    fields = proc_stat(pid)
    return None if fields is None else (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def _is_ours(pid: int, marker: str) -> bool:
    """Alive, and its command line names our folder. An empty command line is a process caught
    between fork and exec (the java launcher re-execs itself at start): ours, for a moment."""
    fields = proc_stat(pid)
    if fields is None or fields[0] == "Z":
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return not cmdline or marker in cmdline.replace(b"\0", b" ").decode(errors="replace")


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            # Reap it if it is our child (tests start servers in-process); harmless otherwise.
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return True
        except ChildProcessError:
            pass
        fields = proc_stat(pid)
        if fields is None or fields[0] == "Z":
            return True
        time.sleep(0.1)
    return False


def probe_status(name: str, address: str, process: ManagedProcess, ready: Callable[[], bool], *,
                 not_ready: str) -> ComponentStatus:
    """The status of a server whose health is one readiness probe: ready, stopped, or `not_ready`
    (alive, but the probe says no or cannot connect)."""
    pid = process.pid()
    healthy = False
    if pid is not None:
        try:
            healthy = ready()
        except OSError:
            healthy = False
    detail = "ready" if healthy else ("stopped" if pid is None else not_ready)
    return ComponentStatus(name, address, pid, healthy, detail, process.log_file)


def debian_executable(name: str, fallback: str) -> str:
    """The path of a server `make setup` installs from Debian's package `name`: on PATH, else at
    `fallback` (sbin is not on every user's PATH)."""
    found = shutil.which(name) or (fallback if Path(fallback).exists() else None)
    if found is None:
        raise InfraError(f"{name} is not installed: run `make setup` (apt-get install {name})")
    return found


def port_open(host: str, port: int, timeout_s: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            return True
    except OSError:
        return False


_LOWEST_FREE_PORT = 10_000  # below: the usual ports of servers a developer runs (1883, 8080, 9092, …)
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_issued_ports: set[int] = set()
_port_random = random.Random()  # seeded from os.urandom: every process draws its own sequence


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now, below the kernel's ephemeral range and never handed out twice
    by this process. A chosen port is often bound seconds later (a server's config file, a
    `telemetry live` of its own); one from the ephemeral range, which bind(0) picks from, can
    meanwhile become the local end of any outgoing connection (Kafka and Flink clients open many)
    and the server then fails with "Address already in use"."""
    highest = _ephemeral_low() - 1
    for _ in range(200 if highest > _LOWEST_FREE_PORT else 0):
        port = _port_random.randint(_LOWEST_FREE_PORT, highest)
        if port not in _issued_ports and _bindable(host, port):
            _issued_ports.add(port)
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:  # no room below the range
        sock.bind((host, 0))
        return sock.getsockname()[1]


@functools.cache  # the kernel's setting, read once per process
def _ephemeral_low() -> int:
    try:
        return int(_EPHEMERAL_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32_768  # Linux's default


def _bindable(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_until(
    check: Callable[[], bool], *, timeout_s: float, what: str, process: ManagedProcess, interval_s: float = 0.25
) -> None:
    """Poll `check` until true; fail fast with the log tail if the process died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.pid() is None:
            raise InfraError(f"{process.name} exited while waiting for {what}; log {process.log_file}:\n{process.log_tail()}")
        try:
            if check():
                return
        except Exception:  # noqa: BLE001 - any failure of a readiness probe means "not yet"
            pass
        time.sleep(interval_s)
    raise InfraError(f"{process.name}: {what} not reached in {timeout_s:.0f}s; log {process.log_file}:\n{process.log_tail()}")
