"""`live_platform`: the whole `telemetry live` running once for this package's tests, in a run folder
of its own on free ports, stopped with SIGINT (what Ctrl-C sends) at the end if a test has not.

The tests in this package share it in pytest's file order (alphabetical): the map in a browser, the
status, Prometheus, then the Ctrl-C stop and the resume from committed offsets (test_stop_and_resume,
last by name), which stops it."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from fleet.bench.live import interrupt, isolated_overrides, read_status
from fleet.config import PlatformConfig, load_config

LIVE_VEHICLES = 300  # ~350 events/s at the seed's rates: small, so the suite's other work is not slowed
STEADY_TIMEOUT_S = 300.0


@dataclass
class RunningPlatform:
    config: PlatformConfig
    overrides: list[str]
    log: Path
    process: subprocess.Popen | None = None
    starts: int = 0
    extra: dict[str, Any] = field(default_factory=dict)  # what one test leaves for the next

    @property
    def status_file(self) -> Path:
        return self.config.infra.run_dir / "live" / "status.json"

    @property
    def map_url(self) -> str:
        return f"http://{self.config.infra.host}:{self.config.live.map_port}/"

    def cli(self, *args: str) -> list[str]:
        """argv of `telemetry` with this platform's profile and overrides."""
        return [str(Path(sys.executable).with_name("telemetry")), *(x for o in self.overrides for x in ("--set", o)), *args]

    def cli_run(self, *args: str, timeout_s: float = 120.0) -> subprocess.CompletedProcess:
        return subprocess.run(self.cli(*args), capture_output=True, text=True, timeout=timeout_s)

    def start(self) -> None:
        self.status_file.unlink(missing_ok=True)
        self.starts += 1
        with self.log.open("ab") as out:
            out.write(f"\n=== start {self.starts}\n".encode())
            out.flush()
            self.process = subprocess.Popen(
                self.cli("live", "--vehicles", str(LIVE_VEHICLES), "--plain", "--print-every-s", "5"),
                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True,
            )

    def status(self) -> dict[str, Any]:
        return read_status(self.status_file)

    def wait_for(self, check, *, timeout_s: float, what: str) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise AssertionError(f"telemetry live exited ({self.process.returncode}) waiting for {what}:\n{self.log_tail()}")
            status = self.status()
            if status and check(status):
                return status
            time.sleep(1.0)
        raise AssertionError(f"no {what} within {timeout_s:.0f} s; last status {json.dumps(self.status())[:2000]}\n{self.log_tail()}")

    def wait_steady(self) -> dict[str, Any]:
        return self.wait_for(lambda s: s.get("steady"), timeout_s=STEADY_TIMEOUT_S, what="steady live status")

    def interrupt(self, timeout_s: float = 120.0) -> int:
        """SIGINT, as Ctrl-C in its terminal; the exit code."""
        assert self.process is not None
        code = interrupt(self.process, timeout_s)
        if code is None:
            raise AssertionError(f"telemetry live did not stop within {timeout_s:.0f} s of SIGINT:\n{self.log_tail()}")
        return code

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])


@pytest.fixture(scope="package")
def live_platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPlatform]:
    run_dir = tmp_path_factory.mktemp("live-run")
    # Corrupt payloads and re-sends often enough that a few minutes show them (per hour and per
    # 1,000 vehicles: 300 vehicles send ~0.25 of each kind per second).
    overrides = [*isolated_overrides(run_dir), "live.malformed_per_round=3000", "live.schema_invalid_per_round=3000",
                 "live.duplicates_per_round=3000"]
    platform = RunningPlatform(load_config("local", overrides), overrides, run_dir / "telemetry-live.log")
    platform.start()
    try:
        platform.wait_steady()
        yield platform
    finally:
        if platform.process is not None and platform.process.poll() is None:
            platform.interrupt()
        subprocess.run(platform.cli("infra", "down"), capture_output=True, timeout=120)
