"""The bridge's checks, pure functions: what replaces the seed's AWS IoT Core rule (seed section 7).

For each MQTT message: decode; the seed's rule `battery.percent >= 0 AND location.lat IS NOT NULL`
(reason `iot_rule`); the full schema (`udfs.telemetry_schema`); and the topic's vehicle id must be
the payload's (reason `vehicle_id_mismatch`: the broker's ACL pins a vehicle to its own topic, this
pins the payload to the topic). No I/O here: the event loop is ingest/bridge.py.
"""

from __future__ import annotations

from typing import Any

from udfs.telemetry_schema import DEFAULT_POLICY, Rejection, ValidationPolicy, decode, validate

IOT_RULE = "iot_rule"
VEHICLE_ID_MISMATCH = "vehicle_id_mismatch"
BRIDGE_REASONS = (IOT_RULE, VEHICLE_ID_MISMATCH)
IOT_RULE_SQL = "battery.percent >= 0 AND location.lat IS NOT NULL"


def iot_rule(event: dict[str, Any]) -> Rejection | None:
    """The seed's IoT Core rule, `WHERE battery.percent >= 0 AND location.lat IS NOT NULL`.

    Read as intended: a missing lat fails too (in IoT SQL a missing attribute is Undefined, which
    `IS NOT NULL` would let through), and only a number compares with 0.
    """
    battery = event.get("battery")
    percent = battery.get("percent") if isinstance(battery, dict) else None
    if type(percent) not in (int, float) or not percent >= 0:
        return Rejection(
            IOT_RULE, "battery.percent",
            f"fails the ingest rule {IOT_RULE_SQL}: battery.percent is {percent!r}",
        )
    location = event.get("location")
    if not isinstance(location, dict) or location.get("lat") is None:
        return Rejection(
            IOT_RULE, "location.lat", f"fails the ingest rule {IOT_RULE_SQL}: location.lat is null or missing"
        )
    return None


def topic_vehicle_id(topic: str) -> str:
    """The `{vehicle_id}` of `telemetry/{vehicle_id}`, as text."""
    return topic.rpartition("/")[2]


def check_message(
    topic: str, payload: bytes, policy: ValidationPolicy = DEFAULT_POLICY, now_ms: int | None = None
) -> dict[str, Any] | Rejection:
    """One MQTT message → the event to forward, or why not: JSON, the rule, the schema, the topic."""
    decoded = decode(payload, policy)
    if isinstance(decoded, Rejection):
        return decoded
    rejected = iot_rule(decoded)
    if rejected is not None:
        return rejected
    event = validate(decoded, policy, now_ms, payload)
    if isinstance(event, Rejection):
        return event
    from_topic = topic_vehicle_id(topic)
    if str(event["vehicle_id"]) != from_topic:
        return Rejection(
            VEHICLE_ID_MISMATCH, "vehicle_id",
            f"payload vehicle_id {event['vehicle_id']} was published on {topic} (vehicle {from_topic!r})",
        )
    return event
