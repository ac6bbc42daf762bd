"""`infra up | status | down` on a run folder of its own: addresses, pids, health, stop by pid."""

import pytest

from fleet.config import load_config
from infra.manager import LocalInfra, format_status
from infra.process import InfraError, free_port, port_open

pytestmark = pytest.mark.integration


def test_up_status_down_cycle(tmp_path):
    config = load_config(
        "local",
        {"infra.run_dir": str(tmp_path), "infra.mqtt_port": str(free_port()), "infra.moto_port": str(free_port())},
        environ={},
    )
    infra = LocalInfra(config.infra)
    try:
        rows = {r.name: r for r in infra.up(["mosquitto", "moto"])}
        assert rows["mosquitto"].healthy and rows["moto"].healthy
        assert rows["mosquitto"].address == f"mqtt://127.0.0.1:{config.infra.mqtt_port}"
        assert rows["mosquitto"].pid and rows["moto"].pid
        # up again is a no-op that keeps the same processes
        again = {r.name: r for r in infra.up(["mosquitto", "moto"])}
        assert again["mosquitto"].pid == rows["mosquitto"].pid
        table = format_status(infra.status())
        assert "kafka" in table and "stopped" in table and str(rows["moto"].pid) in table
    finally:
        stopped = infra.down()
    assert set(stopped) == {"mosquitto", "moto"}
    assert not port_open("127.0.0.1", config.infra.mqtt_port)
    assert all(not r.healthy and r.pid is None for r in infra.status())


def test_port_taken_by_a_stranger_is_a_clear_error(tmp_path, mqtt_address):
    host, taken = mqtt_address  # the session's Mosquitto: not this run folder's
    config = load_config("local", {"infra.run_dir": str(tmp_path), "infra.mqtt_port": str(taken)}, environ={})
    with pytest.raises(InfraError, match="already in use"):
        LocalInfra(config.infra).up(["mosquitto"])


def test_unknown_component_is_named(tmp_path):
    config = load_config("local", {"infra.run_dir": str(tmp_path)}, environ={})
    with pytest.raises(InfraError, match="unknown component"):
        LocalInfra(config.infra).up(["zookeeper"])
