"""The agent's paho-mqtt client: protocol, credentials and TLS from `AgentConfig`.

One new client per connection attempt (see `edge_agent.agent`): paho keeps unacknowledged QoS 1
messages in memory and re-sends them itself on reconnect, which would duplicate what the spool
re-sends. A fresh client has nothing queued, so the spool is the only source of re-sends.
"""

from __future__ import annotations

import logging
import ssl

import paho.mqtt.client as mqtt

from edge_agent.config import AgentConfig

log = logging.getLogger("edge_agent.mqtt")


def tls_context(config: AgentConfig) -> ssl.SSLContext:
    """Server verification against `tls_ca` (or the system store), optional client certificate."""
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(config.tls_ca) if config.tls_ca else None)
    if config.tls_cert is not None:
        context.load_cert_chain(str(config.tls_cert), str(config.tls_key))
    if config.tls_insecure:
        context.check_hostname = False  # paho reads this and skips its own hostname check too
        context.verify_mode = ssl.CERT_NONE
    return context


def make_client(config: AgentConfig, tls: ssl.SSLContext | None = None) -> mqtt.Client:
    """A new, unconnected client; `tls` is the context to use (built once by the caller)."""
    if config.mqtt_version == "5":
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=config.mqtt_client_id, protocol=mqtt.MQTTv5)
    else:
        # Clean session: the agent subscribes to nothing, and its unacknowledged messages are in the
        # spool, so the broker needs to keep no state for a vehicle that is offline.
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=config.mqtt_client_id, protocol=mqtt.MQTTv311, clean_session=True
        )
    client.connect_timeout = config.connect_timeout_s
    client.max_inflight_messages_set(config.max_inflight)
    client.max_queued_messages_set(0)  # the agent never publishes beyond max_inflight
    client.enable_logger(log)
    if config.username is not None:
        client.username_pw_set(config.username, config.password)
    if config.tls_enabled:
        client.tls_set_context(tls if tls is not None else tls_context(config))
    return client


def connect(client: mqtt.Client, config: AgentConfig) -> None:
    """Blocking TCP (+ TLS) connect and CONNECT; the CONNACK arrives in a later `client.loop()`.

    Raises OSError (refused, unreachable, timeout) or ssl.SSLError.
    """
    if config.mqtt_version == "5":
        client.connect(config.broker_host, config.broker_port, keepalive=config.keepalive_s, clean_start=True)
    else:
        client.connect(config.broker_host, config.broker_port, keepalive=config.keepalive_s)
