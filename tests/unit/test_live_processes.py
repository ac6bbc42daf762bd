"""Children of `telemetry live`: stopped by process group, grandchildren included, survivors found."""

from __future__ import annotations

import sys
import time

from fleet.live.processes import Children, group_members

# A child that starts a grandchild in its own group and ignores SIGTERM itself: the worst case.
_STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
print("ready", flush=True)
time.sleep(600)
"""


def _wait_members(pgid: int, count: int) -> list[int]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        members = group_members(pgid)
        if len(members) >= count:
            return members
        time.sleep(0.05)
    raise AssertionError(f"group {pgid} has {group_members(pgid)}")


def test_stop_ends_the_whole_group_even_a_child_ignoring_sigterm(tmp_path):
    children = Children(tmp_path)
    child = children.start("stubborn", [sys.executable, "-c", _STUBBORN])
    members = _wait_members(child.pid, 2)
    assert child.pid in members and len(members) == 2
    code = children.stop("stubborn", timeout_s=1.0)
    assert code == -9  # SIGKILL after the grace period
    assert group_members(child.pid) == []
    assert children.survivors() == []
    assert "=== start" in child.log.read_text()


def test_stop_all_goes_in_the_given_order_then_newest_first(tmp_path):
    children = Children(tmp_path)
    for name in ("a", "b", "c"):
        children.start(name, [sys.executable, "-c", "import time; time.sleep(600)"])
    codes = children.stop_all(order=("b",), timeout_s=5.0)
    assert list(codes) == ["b", "c", "a"]
    assert all(rc == -15 for rc in codes.values())  # SIGTERM was enough
    assert children.survivors() == []


def test_a_child_that_exits_is_seen_with_its_code_and_cpu(tmp_path):
    children = Children(tmp_path, env={"LIVE_TEST_VALUE": "7"})
    child = children.start("short", [sys.executable, "-c", "import os, sys; sys.exit(int(os.environ['LIVE_TEST_VALUE']))"])
    child.proc.wait(10)
    assert child.exit_code() == 7 and children.exited() == [child]
    assert child.cpu_s() == 0.0  # nothing left running to count


def test_group_cpu_counts_a_busy_group_and_nothing_once_it_is_gone(tmp_path):
    import os

    from fleet.live.processes import group_cpu_s

    children = Children(tmp_path)
    child = children.start("busy", [sys.executable, "-c", "import time\nend = time.time() + 30\nwhile time.time() < end: pass"])
    deadline = time.monotonic() + 10
    while (group_cpu_s(child.pid) or 0.0) < 0.3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (group_cpu_s(child.pid) or 0.0) >= 0.3
    children.stop("busy", timeout_s=5.0)
    assert group_cpu_s(child.pid) is None
    assert group_cpu_s(os.getpid(), own=True) > 0
