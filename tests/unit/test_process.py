import sys

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
