"""Mosquitto (from Debian's package) with a generated config, listening on loopback only.

With `security` (infra/mqtt_security.py) every vehicle has its own credentials and may publish
only to `telemetry/<its id>`; without it the listener is anonymous, which is acceptable only
because it binds 127.0.0.1.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING

from infra.process import (
    ComponentStatus,
    ManagedProcess,
    debian_executable,
    port_open,
    probe_status,
    wait_until,
)

if TYPE_CHECKING:
    from infra.mqtt_security import MqttSecurity


class MosquittoBroker:
    name = "mosquitto"

    def __init__(self, run_dir: Path, host: str, port: int, security: MqttSecurity | None = None):
        self.folder = run_dir / "mosquitto"
        self.host, self.port = host, port
        self.security = security  # per-vehicle credentials + ACL (infra/mqtt_security.py), or anonymous
        self.process = ManagedProcess("mosquitto", self.folder)

    @property
    def address(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def config_text(self) -> str:
        return "\n".join([
            # Started as root, Mosquitto drops to the `mosquitto` user, which cannot write this run
            # folder (log, persistence): stay the user that owns it.
            f"user {getpass.getuser()}",
            f"listener {self.port} {self.host}",
            *(self.security.conf_lines() if self.security else ["allow_anonymous true"]),
            "persistence true",
            f"persistence_location {self.folder / 'data'}/",
            # QoS 1 sessions of parked vehicles must survive a broker restart.
            "autosave_interval 30",
            "max_queued_messages 100000",
            f"log_dest file {self.folder / 'mosquitto.log'}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "connection_messages false",
            "",
        ])

    @staticmethod
    def executable() -> str:
        return debian_executable("mosquitto", "/usr/sbin/mosquitto")

    def up(self, timeout_s: float = 20.0) -> int:
        self.process.refuse_taken(self.host, self.port)
        (self.folder / "data").mkdir(parents=True, exist_ok=True)
        config = self.folder / "mosquitto.conf"
        config.write_text(self.config_text())
        pid = self.process.start([self.executable(), "-c", str(config)])
        wait_until(self._listening, timeout_s=timeout_s, what=f"MQTT listener {self.host}:{self.port}", process=self.process)
        return pid

    def _listening(self) -> bool:
        return port_open(self.host, self.port)

    def down(self) -> bool:
        return self.process.stop(timeout_s=15.0)

    def status(self) -> ComponentStatus:
        # Its stdout log and its log_dest are the same file, mosquitto/mosquitto.log.
        return probe_status(self.name, self.address, self.process, self._listening, not_ready="not listening")
