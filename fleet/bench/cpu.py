"""CPU seconds and peak RSS of named processes, from /proc, sampled in a background thread.

A stage's processes may exit before anyone asks (a MiniCluster JVM ends with its job), so CPU is
sampled every `interval_s` and kept as a time series per pid: the CPU used inside any window (e.g.
first to last output record, which leaves JVM start-up and job planning out) is read off it by
interpolation. Peak RSS is the kernel's high-water mark (VmHWM) — for a long-running process such
as the broker that is its lifetime peak, not just this stage's.
"""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from bisect import bisect_left
from collections.abc import Callable
from dataclasses import dataclass, field

from infra.process import cpu_seconds, proc_stat

_TICKS = os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict[str, int]:
    """The Vm* lines of /proc/<pid>/status in KiB ({"VmHWM": …, "VmRSS": …}); {} once it is gone,
    and for a zombie, whose status has none."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            return {line.split(":", 1)[0]: int(line.split()[1]) for line in handle if line.startswith("Vm")}
    except OSError:
        return {}


def peak_rss_mib(pid: int) -> float | None:
    peak = memory_kib(pid).get("VmHWM")
    return None if peak is None else peak / 1024


def descendants(pid: int) -> list[int]:
    """Every living descendant of `pid` (e.g. the JVM a PyFlink client starts)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        fields = proc_stat(entry) if entry.isdigit() else None
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def stop_process_tree(proc: subprocess.Popen) -> None:
    """Kill our own child and everything it started (a PyFlink client's JVM), by pid."""
    for pid in [*descendants(proc.pid), proc.pid]:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait(30)


def command_name(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            argv = handle.read().split(b"\0")
    except OSError:
        return "?"
    return os.path.basename(argv[0].decode(errors="replace")) if argv and argv[0] else "?"


@dataclass
class ProcessSeries:
    role: str
    pid: int
    times: list[float] = field(default_factory=list)  # wall clock (time.time()), seconds
    cpu: list[float] = field(default_factory=list)
    peak_rss_mib: float = 0.0

    def cpu_between(self, start: float, end: float) -> float:
        return max(0.0, self._at(end) - self._at(start))

    def cpu_total(self) -> float:
        return (self.cpu[-1] - self.cpu[0]) if self.cpu else 0.0

    def _at(self, t: float) -> float:
        if not self.times:
            return 0.0
        i = bisect_left(self.times, t)
        if i <= 0:
            return self.cpu[0]
        if i >= len(self.times):
            return self.cpu[-1]
        t0, t1, c0, c1 = self.times[i - 1], self.times[i], self.cpu[i - 1], self.cpu[i]
        return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1


class CpuSampler:
    """Samples fixed pids plus whatever `discover()` returns ({pid: role}, e.g. a stage's process tree)."""

    def __init__(self, fixed: dict[int, str], discover: Callable[[], dict[int, str]] | None = None, interval_s: float = 0.25):
        self.fixed = dict(fixed)
        self.discover = discover
        self.interval_s = interval_s
        self.series: dict[int, ProcessSeries] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def __enter__(self) -> CpuSampler:
        self.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def sample(self) -> None:
        pids = dict(self.fixed)
        if self.discover is not None:
            try:
                pids.update(self.discover())
            except OSError:
                pass
        now = time.time()
        for pid, role in pids.items():
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            rss = peak_rss_mib(pid)
            series = self.series.get(pid)
            if series is None:
                if rss is None:
                    # Exited between the two reads, or a zombie (its status has no VmHWM): never
                    # seen alive, so there is nothing to measure for it.
                    continue
                series = self.series[pid] = ProcessSeries(role, pid)
            series.times.append(now)
            series.cpu.append(cpu)
            series.peak_rss_mib = max(series.peak_rss_mib, rss or 0.0)

    def by_role(self, window: tuple[float, float] | None = None) -> dict[str, dict[str, float]]:
        """{role: {cpu_s, cpu_s_window, peak_rss_mib}}; processes sharing a role are summed (RSS: max)."""
        roles: dict[str, dict[str, float]] = {}
        for series in self.series.values():
            entry = roles.setdefault(series.role, {"cpu_s": 0.0, "cpu_s_window": 0.0, "peak_rss_mib": 0.0, "processes": 0})
            entry["cpu_s"] += series.cpu_total()
            if window is not None:
                entry["cpu_s_window"] += series.cpu_between(*window)
            entry["peak_rss_mib"] = max(entry["peak_rss_mib"], series.peak_rss_mib)
            entry["processes"] += 1
        return {role: {k: round(v, 2) for k, v in entry.items()} for role, entry in roles.items()}


def machine_busy_seconds() -> float:
    """CPU seconds the whole machine has been busy since boot (all cores), from /proc/stat: with
    our processes' own CPU subtracted it says how much the other tenants of a shared box used."""
    with open("/proc/stat") as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (values + [0] * 8)[:8]
    return (user + nice + system + irq + softirq + steal) / _TICKS
