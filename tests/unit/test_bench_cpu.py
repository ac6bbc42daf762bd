"""The benchmark's process sampler: what it records for living, exited and zombie processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from fleet.bench.cpu import CpuSampler


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat", "rb") as handle:
        text = handle.read()
    return text[text.rindex(b")") + 2:].split()[0].decode()


def _vm_hwm_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def test_a_living_process_is_recorded_with_its_peak_rss():
    sampler = CpuSampler({os.getpid(): "me"})
    sampler.sample()
    roles = sampler.by_role()
    assert roles["me"]["processes"] == 1
    assert roles["me"]["peak_rss_mib"] > 0
    assert abs(roles["me"]["peak_rss_mib"] - _vm_hwm_mib(os.getpid())) < 64


def test_a_zombie_never_seen_alive_is_not_recorded():
    # A zombie's /proc/<pid>/stat still reads, but its status has no VmHWM: recording it would
    # report a role with a peak RSS of 0 (what failed CI once for a short-lived worker).
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    deadline = time.monotonic() + 10
    while _state(child.pid) != "Z":
        assert time.monotonic() < deadline, "the child never exited"
        time.sleep(0.01)
    try:
        sampler = CpuSampler({child.pid: "gone", os.getpid(): "me"})
        sampler.sample()
        assert set(sampler.by_role()) == {"me"}
    finally:
        child.wait()


def test_a_process_seen_alive_keeps_its_peak_after_it_exits():
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE)
    try:
        time.sleep(0.3)
        sampler = CpuSampler({child.pid: "worker"})
        sampler.sample()
        alive_peak = sampler.by_role()["worker"]["peak_rss_mib"]
        child.stdin.close()
        child.wait()
        sampler.sample()  # gone now: nothing to add, nothing lost
        assert alive_peak > 0
        assert sampler.by_role()["worker"]["peak_rss_mib"] == alive_peak
    finally:
        if child.poll() is None:
            child.kill()
