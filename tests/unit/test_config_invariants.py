"""Profiles whose exactly-once sinks could fail to start or lose a transaction are refused on load.

The expected restart windows are worked out by hand here, from Flink's documented strategies, not
with fleet.config.invariants."""

from __future__ import annotations

from pathlib import Path

import pytest

import fleet
from fleet.config import ConfigError, load_config
from fleet.config.invariants import restart_window_ms

# production.toml: exponential delay from 5 s, doubling, capped at 120 s, 10 attempts, jitter ≤ 10 %:
# 5 + 10 + 20 + 40 + 80 + 120 × 5 = 755 s, × 1.1 = 830.5 s.
PRODUCTION_WINDOW_MS = 830_500


def test_the_shipped_profiles_hold_every_relation():
    production, local = load_config("production"), load_config("local")
    assert production.kafka.transaction_timeout_ms == 900_000
    assert production.kafka.transaction_timeout_ms >= PRODUCTION_WINDOW_MS + production.flink.checkpoint_interval_ms
    assert production.kafka.transaction_timeout_ms <= production.kafka.broker_max_transaction_timeout_ms
    # local.toml: fixed delay, 3 attempts of 1 s.
    assert local.kafka.transaction_timeout_ms >= 3 * 1_000 + local.flink.checkpoint_interval_ms


def test_restart_windows_as_flink_waits_them():
    assert restart_window_ms("exponential-delay", 10, 5_000, 120_000) == PRODUCTION_WINDOW_MS
    assert restart_window_ms("fixed-delay", 3, 1_000, 60_000) == 3_000
    assert restart_window_ms("exponential-delay", 3, 1_000, 60_000) == int((1_000 + 2_000 + 4_000) * 1.1)
    assert restart_window_ms("fixed-delay", 0, 1_000, 60_000) == 0


def test_a_timeout_above_the_brokers_maximum_is_refused():
    with pytest.raises(ConfigError, match=r"transaction_timeout_ms=1000000 is above the broker's transaction.max.timeout.ms"):
        load_config("production", {"kafka.transaction_timeout_ms": 1_000_000})


def test_the_old_ten_minutes_are_refused_for_production():
    # What production had before: 600 s, shorter than the 830.5 s its restart strategy may wait.
    with pytest.raises(ConfigError, match=r"shorter than the longest outage the job recovers from.*= 832500 ms"):
        load_config("production", {"kafka.transaction_timeout_ms": 600_000})


def test_a_longer_restart_strategy_is_refused_until_the_timeout_follows():
    longer = {"flink.restart_attempts": 12}  # two more waits of 120 s (+10 %): 1,094.5 s
    with pytest.raises(ConfigError, match=r"restart strategy's waits \(1094500 ms"):
        load_config("production", longer)
    assert load_config("production", {**longer, "kafka.transaction_timeout_ms": 1_100_000,
                                      "kafka.broker_max_transaction_timeout_ms": 1_100_000}).flink.restart_attempts == 12


def test_a_checkpoint_interval_longer_than_the_timeout_is_refused():
    with pytest.raises(ConfigError, match=r"checkpoint_interval_ms=700000\) = 703000 ms"):
        load_config("local", {"flink.checkpoint_interval_ms": 700_000})


def test_a_profile_without_the_keys_is_refused(tmp_path):
    text = (Path(fleet.__file__).parent / "config" / "profiles" / "local.toml").read_text()
    profile = tmp_path / "old.toml"
    profile.write_text("\n".join(line for line in text.splitlines() if not line.startswith("transaction_timeout_ms")))
    with pytest.raises(ConfigError, match=r"\[kafka\] missing transaction_timeout_ms"):
        load_config(profile)


def test_a_payload_limit_whose_enriched_record_kafka_would_refuse_is_refused():
    with pytest.raises(ConfigError, match=r"max_payload_bytes=1048000 lets through events whose enriched record"):
        load_config("local", {"schema.max_payload_bytes": 1_048_000})
    # The record limit raised with it: fine.
    assert load_config("local", {"schema.max_payload_bytes": 1_048_000, "kafka.max_record_bytes": 2_097_152}).kafka.max_record_bytes == 2_097_152


def test_a_record_limit_below_the_largest_dlq_record_is_refused():
    # A DLQ record keeps a payload of up to 128 KiB whole, as base64 at worst: 174,764 bytes + fields.
    with pytest.raises(ConfigError, match=r"below the largest DLQ record \(178860 bytes"):
        load_config("local", {"kafka.max_record_bytes": 170_000, "schema.max_payload_bytes": 100_000})


def test_an_input_stall_period_not_below_the_offline_timeout_is_refused():
    # An ingest outage between the two would page every vehicle before the stall is noticed.
    with pytest.raises(ConfigError, match=r"input_stall_after_s=600 must be > 0 and below offline_after_s=600"):
        load_config("local", {"alerts.input_stall_after_s": 600})
    assert load_config("local", {"alerts.input_stall_after_s": 599}).alerts.input_stall_after_s == 599
