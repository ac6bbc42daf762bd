"""A QoS 1 publish/subscribe round trip of a seed payload through the local Mosquitto."""

import threading

import paho.mqtt.client as mqtt
import pytest

from device_sim.fleet_model import Fleet, FleetSpec
from udfs.telemetry_schema import encode, parse

pytestmark = pytest.mark.integration


def connected_client(host, port, client_id):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.connect(host, port, keepalive=30)
    client.loop_start()
    return client


def test_publish_subscribe_round_trip(mqtt_address):
    host, port = mqtt_address
    events = list(Fleet(FleetSpec(vehicles=5, seed=8)).take(50))
    received, subscribed, done = [], threading.Event(), threading.Event()

    subscriber = connected_client(host, port, "test-subscriber")
    subscriber.on_subscribe = lambda *args: subscribed.set()

    def on_message(_client, _userdata, message):
        received.append((message.topic, message.qos, message.payload))
        if len(received) == len(events):
            done.set()

    subscriber.on_message = on_message
    subscriber.subscribe("telemetry/+", qos=1)
    assert subscribed.wait(10)

    publisher = connected_client(host, port, "test-publisher")
    try:
        for event in events:
            info = publisher.publish(f"telemetry/{event['vehicle_id']}", encode(event), qos=1)
            info.wait_for_publish(10)
            assert info.is_published()
        assert done.wait(15), f"received {len(received)} of {len(events)}"
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        subscriber.loop_stop()
        subscriber.disconnect()

    assert [(t, q) for t, q, _ in received] == [(f"telemetry/{e['vehicle_id']}", 1) for e in events]
    assert [parse(p, now_ms=2_000_000_000_000) for _, _, p in received] == events
