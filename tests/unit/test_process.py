import socket
import sys
from pathlib import Path

import pytest

from infra.process import InfraError, ManagedProcess, free_port, port_open, wait_until

SLEEPER = "import sys, time; time.sleep(60)"


def test_start_stop_by_pid_file(tmp_path):
    process = ManagedProcess("sleeper", tmp_path)
    pid = process.start([sys.executable, "-c", SLEEPER, str(tmp_path)])
    assert process.pid() == pid
    assert process.start([sys.executable, "-c", SLEEPER, str(tmp_path)]) == pid  # idempotent
    assert process.stop(timeout_s=10)
    assert process.pid() is None
    assert not process.pid_file.exists()
    assert process.stop() is False


def test_stale_pid_file_naming_a_stranger_is_ignored(tmp_path):
    process = ManagedProcess("ghost", tmp_path)
    tmp_path.mkdir(exist_ok=True)
    process.pid_file.write_text("1")  # pid 1 exists but is not ours: must never be signalled
    assert process.pid() is None
    assert not process.pid_file.exists()


def test_command_line_must_name_the_folder(tmp_path):
    with pytest.raises(InfraError, match="pid safety"):
        ManagedProcess("anon", tmp_path).start([sys.executable, "-c", SLEEPER])


def test_wait_until_reports_a_dead_process_with_its_log(tmp_path):
    process = ManagedProcess("crasher", tmp_path)
    process.start([sys.executable, "-c", "print('boom'); import sys; sys.exit(3)", str(tmp_path)])
    with pytest.raises(InfraError, match="boom"):
        wait_until(lambda: False, timeout_s=10, what="never", process=process)


def test_free_port_is_free():
    assert not port_open("127.0.0.1", free_port())


def test_free_ports_are_below_the_ephemeral_range_and_never_repeat():
    ephemeral_low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = [free_port() for _ in range(500)]
    assert len(set(ports)) == 500
    assert all(10_000 <= p < ephemeral_low for p in ports), [p for p in ports if not 10_000 <= p < ephemeral_low]


def test_free_port_skips_a_port_something_listens_on(monkeypatch):
    import infra.process as process

    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        taken = listener.getsockname()[1]
        listener.listen()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            spare = probe.getsockname()[1]  # free again once closed
        # The draw names the listener's port first, then the spare one.
        draws = iter([taken, spare])
        monkeypatch.setattr(process, "_ephemeral_low", lambda: max(taken, spare) + 1)
        monkeypatch.setattr(process._port_random, "randint", lambda low, high: next(draws))
        monkeypatch.setattr(process, "_issued_ports", set())
        assert process.free_port() == spare
