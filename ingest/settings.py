"""The bridge's settings: BridgeConfig (checked where it is made) and bridge_config, which builds it
from a PlatformConfig."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class BridgeConfig:
    bootstrap_servers: str
    telemetry_topic: str
    dlq_topic: str
    mqtt_host: str = "127.0.0.1"
    mqtt_port: int = 1883
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    group: str = "telemetry-bridge"
    # Stable per bridge instance (e.g. a StatefulSet ordinal): the broker keeps this client's
    # unacknowledged messages in its session and resends them when the same id reconnects.
    client_id: str = field(default_factory=lambda: f"telemetry-bridge-{socket.gethostname()}")
    topic_filter: str = "telemetry/+"
    receive_maximum: int = 1_000  # in-flight window announced to the broker (MQTT v5 Receive Maximum)
    max_in_flight: int = 10_000  # what the bridge holds unacknowledged at most (see module doc)
    session_expiry_s: int = 3_600  # how long the broker keeps our session (and its messages) after a drop
    keepalive_s: int = 30
    delivery_timeout_ms: int = 120_000  # librdkafka message.timeout.ms: then the write counts as failed
    resync_min_interval_s: float = 1.0  # at most one resync per interval (e.g. while Kafka stays down)
    reconnect_max_delay_s: float = 10.0
    producer_overrides: Mapping[str, Any] = field(default_factory=dict)

    @property
    def subscription(self) -> str:
        return f"$share/{self.group}/{self.topic_filter}"

    def __post_init__(self) -> None:
        if not 0 < self.receive_maximum <= 65_535:
            raise ValueError("receive_maximum must be in 1..65535")
        if self.max_in_flight < self.receive_maximum:
            raise ValueError("max_in_flight must be >= receive_maximum")
        if any(c in self.group for c in "/+#") or not self.group:
            raise ValueError(f"share group {self.group!r} must be a non-empty name without / + #")


def bridge_config(config: Any, **overrides: Any) -> BridgeConfig:
    """BridgeConfig from a PlatformConfig (Kafka address, topic names, the local MQTT port)."""
    values: dict[str, Any] = {
        "bootstrap_servers": config.kafka.bootstrap_servers,
        "telemetry_topic": config.kafka.topic("telemetry").name,
        "dlq_topic": config.kafka.topic("dlq").name,
        "mqtt_host": config.infra.host,
        "mqtt_port": config.infra.mqtt_port,
    }
    values.update({k: v for k, v in overrides.items() if v is not None})
    return BridgeConfig(**values)
