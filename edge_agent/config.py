"""Every knob of the edge agent, in one frozen object (built from CLI flags in `edge_agent.cli`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.rate import SEED_RATES, RatePolicy
from edge_agent.wire import MAX_VEHICLE_ID

MQTT_VERSIONS = ("5", "3.1.1")


def default_spool_dir(vehicle_id: int) -> Path:
    """`$XDG_STATE_HOME/fleet-telemetry/edge-agent/<vehicle_id>` (~/.local/state when unset)."""
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "fleet-telemetry" / "edge-agent" / str(vehicle_id)


def parse_broker_address(text: str, *, tls: bool = False) -> tuple[str, int]:
    """'host:port', 'host' (port 1883, or 8883 with TLS) or '[v6-address]:port' → (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port_text = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port_text = text.split(":")
    else:
        host, port_text = text, ""
    if not host:
        raise ValueError(f"broker address {text!r} has no host")
    if not port_text:
        return host, 8883 if tls else 1883
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"broker address {text!r}: port must be 1..65535")
    return host, int(port_text)


@dataclass(frozen=True)
class AgentConfig:
    vehicle_id: int
    spool_dir: Path

    # Broker and session
    broker_host: str = "127.0.0.1"
    broker_port: int = 1883
    client_id: str | None = None  # default: vehicle-<vehicle_id>
    mqtt_version: str = "5"  # "5" or "3.1.1"
    keepalive_s: int = 30
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    tls: bool = False  # TLS with the system's CA store; implied by tls_ca / tls_cert
    tls_ca: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_insecure: bool = False  # accept any server certificate and name: tests only

    # Delivery
    max_inflight: int = 20  # published, not yet acknowledged
    connect_timeout_s: float = 10.0  # TCP + TLS handshake, then again for the CONNACK
    reconnect_min_s: float = 1.0  # first backoff step ...
    reconnect_max_s: float = 120.0  # ... doubling up to this cap, with jitter
    flush_timeout_s: float = 5.0  # at shutdown: how long to wait for in-flight acknowledgements

    # Spool
    max_spool_messages: int = 100_000  # ~28 h at 1 msg/s; 0: no message limit
    max_spool_bytes: int = 64 * 2**20  # payload bytes; 0: no byte limit
    spool_durable: bool = False  # fsync every commit (power-cut safe, more flash wear)

    # Readings
    rates: RatePolicy = SEED_RATES
    speedup: float = 1.0  # divide every reading interval (demos, tests); 1 on a vehicle
    seed: int = 42  # the simulated sensors' seed
    duration_s: float | None = None  # stop after this long (flushing as on SIGTERM)
    max_readings: int | None = None  # take this many readings, deliver them all, then exit

    def __post_init__(self) -> None:
        problems = []
        if type(self.vehicle_id) is not int or not 0 < self.vehicle_id <= MAX_VEHICLE_ID:
            problems.append(f"vehicle_id must be an integer in 1..2^63-1, got {self.vehicle_id!r}")
        if not 0 < self.broker_port < 65536:
            problems.append(f"broker_port must be 1..65535, got {self.broker_port}")
        if self.mqtt_version not in MQTT_VERSIONS:
            problems.append(f"mqtt_version must be one of {', '.join(MQTT_VERSIONS)}, got {self.mqtt_version!r}")
        if self.keepalive_s < 1:
            problems.append("keepalive_s must be >= 1")
        if self.password is not None and self.username is None:
            problems.append("a password needs a username")
        if (self.tls_cert is None) != (self.tls_key is None):
            problems.append("tls_cert and tls_key go together")
        if self.max_inflight < 1:
            problems.append("max_inflight must be >= 1")
        if self.max_spool_messages < 0 or self.max_spool_bytes < 0 or (self.max_spool_messages == 0 and self.max_spool_bytes == 0):
            problems.append("the spool needs a bound: max_spool_messages and/or max_spool_bytes > 0")
        if 0 < self.max_spool_messages <= self.max_inflight:
            problems.append("max_spool_messages must exceed max_inflight (in-flight messages are never evicted)")
        if not 0 < self.reconnect_min_s <= self.reconnect_max_s:
            problems.append("need 0 < reconnect_min_s <= reconnect_max_s")
        if self.connect_timeout_s <= 0 or self.flush_timeout_s < 0:
            problems.append("connect_timeout_s must be > 0 and flush_timeout_s >= 0")
        if self.speedup <= 0:
            problems.append("speedup must be > 0")
        if self.duration_s is not None and self.duration_s <= 0:
            problems.append("duration_s must be > 0")
        if self.max_readings is not None and self.max_readings < 1:
            problems.append("max_readings must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def mqtt_client_id(self) -> str:
        return self.client_id or f"vehicle-{self.vehicle_id}"

    @property
    def topic(self) -> str:
        """The seed's topic, telemetry/{vehicle_id}."""
        return f"telemetry/{self.vehicle_id}"

    @property
    def tls_enabled(self) -> bool:
        return self.tls or self.tls_ca is not None or self.tls_cert is not None
