"""The child processes of `telemetry live`: each in a session of its own, stopped by process group.

A PyFlink job is two processes (the Python client and the JVM of its MiniCluster), a simulator or a
bridge one; whatever a child starts stays in its process group, so stopping the group stops all of
it. Children get their own session so a Ctrl-C in the terminal reaches only `telemetry live`, which
then stops them in its own order (the fleet first, the jobs last) instead of all at once.

SIGINT is not enough for a PyFlink client: it sits in a py4j call and handles no signal until the
job ends. SIGTERM to the whole group ends the JVM (its shutdown hooks close the MiniCluster) and the
client with it; a group still alive after the grace period gets SIGKILL. After a stop, `survivors`
scans /proc for any process left in the children's groups: "no orphans" is checked, not assumed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from infra.process import cpu_seconds, log_tail, proc_stat, spawn_logged


@dataclass
class Child:
    """One started command: its process group is its pid."""

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen
    started_at: float = field(default_factory=time.monotonic)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def cpu_s(self) -> float:
        """CPU seconds of every live process in the child's group (the JVM of a job included)."""
        return sum(_cpu_s(pid) for pid in group_members(self.pid))

    def log_tail(self, lines: int = 20) -> str:
        return log_tail(self.log, lines)


class Children:
    """Start children, watch them, stop them in reverse order of start (or an order given)."""

    def __init__(self, log_dir: Path, env: Mapping[str, str] | None = None):
        self.log_dir = log_dir
        self.env = {**os.environ, **(env or {})}
        self._children: dict[str, Child] = {}
        self._groups: set[int] = set()  # every group ever started: checked for survivors at the end

    def start(self, name: str, argv: Sequence[str], *, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Child:
        if name in self._children and self._children[name].exit_code() is None:
            raise RuntimeError(f"{name} is already running (pid {self._children[name].pid})")
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_dir / f"{name}.log"
        proc = spawn_logged(argv, log, cwd=cwd, env={**self.env, **(env or {})})
        child = Child(name, list(argv), log, proc)
        self._children[name] = child
        self._groups.add(proc.pid)
        return child

    def get(self, name: str) -> Child | None:
        return self._children.get(name)

    def all(self) -> list[Child]:
        return list(self._children.values())

    def exited(self) -> list[Child]:
        return [c for c in self._children.values() if c.exit_code() is not None]

    def stop(self, name: str, timeout_s: float = 30.0) -> int | None:
        """SIGTERM the child's group, wait for the child, SIGKILL the group if it outstays. Exit code."""
        child = self._children.get(name)
        if child is None:
            return None
        _signal_group(child.pid, signal.SIGTERM)
        try:
            child.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            _signal_group(child.pid, signal.SIGKILL)
            child.proc.wait(10)
        # The JVM of a job can outlive its Python client by a moment: wait for the group to empty.
        _wait_empty(child.pid, timeout_s)
        if group_members(child.pid):
            _signal_group(child.pid, signal.SIGKILL)
            _wait_empty(child.pid, 10.0)
        return child.proc.returncode

    def stop_all(self, order: Sequence[str] = (), timeout_s: float = 30.0,
                 timeouts: Mapping[str, float] | None = None, *, only: bool = False) -> dict[str, int | None]:
        """Stop the named children first, in that order, then (unless `only`) the rest, newest
        first; `timeouts` gives some a longer grace than `timeout_s`."""
        names = [n for n in order if n in self._children]
        if not only:
            names += [n for n in reversed(list(self._children)) if n not in names]
        return {name: self.stop(name, (timeouts or {}).get(name, timeout_s)) for name in names}

    def survivors(self) -> list[tuple[int, str]]:
        """(pid, command line) of every process still in a group a child was started in."""
        return [(pid, _cmdline(pid)) for group in sorted(self._groups) for pid in group_members(group)]


def group_members(pgid: int) -> list[int]:
    """Live (non-zombie) processes whose process group is `pgid`."""
    members = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = proc_stat(entry.name)
        if fields is not None and fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(entry.name))
    return members


def group_cpu_s(pgid: int, *, own: bool = False) -> float | None:
    """CPU seconds of the live processes of group `pgid` (with `own`, of process `pgid` alone: the
    caller's group is its shell's); None if none is alive."""
    alive = [pid for pid in ([pgid] if own else group_members(pgid)) if Path(f"/proc/{pid}").exists()]
    return sum(_cpu_s(pid) for pid in alive) if alive else None


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _wait_empty(pgid: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while group_members(pgid) and time.monotonic() < deadline:
        time.sleep(0.1)


def _cpu_s(pid: int) -> float:
    return cpu_seconds(pid) or 0.0


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except FileNotFoundError:
        return "?"
