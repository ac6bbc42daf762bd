"""`telemetry infra up | down | status`: the local servers a run or a test needs, by name."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from typing import Protocol

from fleet.config import InfraConfig
from fleet.text_table import format_table
from infra.kafka_broker import KafkaBroker
from infra.mosquitto import MosquittoBroker
from infra.moto_server import MotoServer
from infra.process import ComponentStatus, InfraError

COMPONENTS = ("kafka", "mosquitto", "moto")


class Component(Protocol):
    name: str

    def up(self) -> int: ...
    def down(self) -> bool: ...
    def status(self) -> ComponentStatus: ...


def mqtt_secret(config: InfraConfig) -> str:
    """$TELEMETRY_MQTT_SECRET, else one generated once into the run folder (0600)."""
    if os.environ.get("TELEMETRY_MQTT_SECRET"):
        return os.environ["TELEMETRY_MQTT_SECRET"]
    path = config.run_dir / "mosquitto" / "secret"
    if not path.is_file():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.touch(mode=0o600)
        path.write_text(secrets.token_urlsafe(32))
    return path.read_text().strip()


def _mqtt_security(config: InfraConfig):
    if not config.mqtt_auth:
        return None
    from infra.mqtt_security import write_security

    first = config.mqtt_first_vehicle_id
    return write_security(config.run_dir / "mosquitto" / "security", mqtt_secret(config), range(first, first + config.mqtt_vehicles))


class LocalInfra:
    """The local servers of one run folder. Start order is the order of COMPONENTS; stop is reverse."""

    def __init__(self, config: InfraConfig):
        self.config = config
        self.components: dict[str, Component] = {
            "kafka": KafkaBroker(config.run_dir, config.host, config.kafka_port, config.kafka_controller_port, config.kafka_heap),
            "mosquitto": MosquittoBroker(config.run_dir, config.host, config.mqtt_port, _mqtt_security(config)),
            "moto": MotoServer(config.run_dir, config.host, config.moto_port),
        }

    def _select(self, names: Iterable[str] | None) -> list[Component]:
        chosen = list(COMPONENTS) if not names else list(names)
        unknown = [n for n in chosen if n not in self.components]
        if unknown:
            raise InfraError(f"unknown component(s) {', '.join(unknown)}; known: {', '.join(COMPONENTS)}")
        return [self.components[n] for n in COMPONENTS if n in chosen]

    def up(self, names: Iterable[str] | None = None) -> list[ComponentStatus]:
        for component in self._select(names):
            component.up()
        return self.status(names)

    def down(self, names: Iterable[str] | None = None) -> list[str]:
        return [c.name for c in reversed(self._select(names)) if c.down()]

    def status(self, names: Iterable[str] | None = None) -> list[ComponentStatus]:
        return [c.status() for c in self._select(names)]


def format_status(rows: list[ComponentStatus]) -> str:
    return format_table(("component", "address", "pid", "health", "log"), [
        (r.name, r.address, str(r.pid or "-"), "up" if r.healthy else r.detail, str(r.log or "-")) for r in rows
    ])
