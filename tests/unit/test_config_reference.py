"""docs/configuration.md is what `telemetry config reference` generates now, and it describes every
field of the typed config and every key of both profiles; `telemetry config show` round-trips."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
from pathlib import Path

import pytest

from connectors.kafka_topics import TopicSpec
from fleet.cli.app import main
from fleet.config import PROFILES_DIR, PlatformConfig, load_config
from fleet.config.reference import generate

REPO = Path(__file__).resolve().parents[2]
REFERENCE = REPO / "docs" / "configuration.md"


def sections(markdown: str) -> dict[str, dict[str, list[str]]]:
    """'## [section]' → first cell (the key, without backticks) → the row's cells."""
    found: dict[str, dict[str, list[str]]] = {}
    current = None
    for line in markdown.splitlines():
        heading = re.match(r"^## \[(.+)\]$", line)
        if heading:
            current = found.setdefault(heading.group(1), {})
        elif current is not None and line.startswith("| `"):
            cells = [cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]]
            current[cells[0].strip("`")] = cells
    return found


def test_the_committed_reference_is_what_the_code_generates():
    assert REFERENCE.read_text() == generate(), (
        "docs/configuration.md is stale: run `telemetry config reference --output docs/configuration.md`"
    )


def test_every_dataclass_field_appears_in_its_section():
    rows = sections(REFERENCE.read_text())
    config = load_config("local", environ={})
    for top in dataclasses.fields(PlatformConfig):
        if top.name == "profile":
            assert "| `profile` | `str` | `local` | `production` |" in REFERENCE.read_text()
            continue
        section = "schema" if top.name == "schema" else top.name
        for field in dataclasses.fields(getattr(config, top.name)):
            assert field.name in rows[section], f"{type(getattr(config, top.name)).__name__}.{field.name} missing from [{section}]"
    topic_fields = [f.name for f in dataclasses.fields(TopicSpec)]
    for topic in config.kafka.topics:
        assert set(topic_fields) <= set(rows[f"topics.{topic.role}"]), topic.role


def test_every_profile_key_appears_with_both_values_as_written():
    rows = sections(REFERENCE.read_text())
    local = tomllib.loads((PROFILES_DIR / "local.toml").read_text())
    production = tomllib.loads((PROFILES_DIR / "production.toml").read_text())

    def scalars(raw: dict, prefix: str = ""):
        for key, value in raw.items():
            if isinstance(value, dict):
                yield from scalars(value, f"{prefix}{key}.")
            else:
                yield prefix.rstrip("."), key, value

    checked = 0
    for section, key, value in scalars(local):
        cells = rows[section][key]
        local_cell, production_cell = cells[2], cells[3]
        # The cell holds the TOML literal: reading it back gives the profile's value.
        assert tomllib.loads(f"v = {local_cell.strip('`')}")["v"] == value, (section, key)
        node = production
        for part in section.split("."):
            node = node[part]
        assert tomllib.loads(f"v = {production_cell.strip('`')}")["v"] == node[key], (section, key)
        checked += 1
    assert checked == sum(1 for _ in scalars(production)) > 100


@pytest.mark.parametrize("section, key, type_text, explanation", [
    # the comment on the key's line in local.toml
    ("flink", "execution_mode", "`str`", "Measured many times faster than process mode (DESIGN.md)."),
    # the block directly above it, then the comment after it
    ("pipeline", "batch_window_ms", "`int`",
     "Events reach Python in batches: per shard (vehicle_id mod batch_shards), every batch_window_ms. "
     "Adds at most this to every latency; the hot store is written per batch."),
    # no comment in the profile: the dataclass field's
    ("flink", "restart_attempts", "`int`", "fixed-delay: in total; exponential-delay: before the backoff resets."),
    # a key that is no field: where the loader puts it
    ("kafka", "min_insync_replicas", "`int`", "Becomes min.insync.replicas in every topic's configs."),
])
def test_explanations_come_from_the_profile_then_the_code(section, key, type_text, explanation):
    cells = sections(REFERENCE.read_text())[section][key]
    assert (cells[1], cells[4]) == (type_text, explanation)


def test_fields_the_loader_fills_show_their_resolved_values():
    rows = sections(REFERENCE.read_text())
    local, production = load_config("local", environ={}), load_config("production", environ={})
    assert rows["stores"]["endpoint_url"][2:4] == [f'`"{local.stores.endpoint_url}"`', "none"]
    assert local.stores.endpoint_url == f"http://127.0.0.1:{local.infra.moto_port}" and production.stores.endpoint_url is None
    assert rows["topics.dlq"]["replication_factor"][2:4] == ["`1`", "`3`"]
    assert rows["topics.registry"]["configs"][2].startswith('`{"compression.type" = "lz4", "min.insync.replicas" = "1", "cleanup.policy" = "compact"}')


def test_config_show_prints_the_effective_config_as_toml_and_json(capsys, monkeypatch, tmp_path):
    for name in [key for key in os.environ if key.startswith("TELEMETRY__")]:
        monkeypatch.delenv(name)
    argv = ["--set", f"infra.run_dir={tmp_path}", "--set", "flink.parallelism=3", "config", "show"]
    assert main(argv) == 0
    shown = tomllib.loads(capsys.readouterr().out)
    assert main([*argv, "--json"]) == 0
    document = json.loads(capsys.readouterr().out)
    config = load_config("local", [f"infra.run_dir={tmp_path}", "flink.parallelism=3"], environ={})
    assert document["flink"]["parallelism"] == 3 and document["infra"]["run_dir"] == str(tmp_path)
    assert document["stores"]["local_path"] == config.stores.local_path == str(tmp_path / "hot_store.sqlite")
    assert [t["name"] for t in document["kafka"]["topics"]] == [t.name for t in config.kafka.topics]
    assert document["kafka"]["topics"][2]["configs"] == dict(config.kafka.topic("dlq").configs)
    # TOML has no null: the JSON document without its None values.
    assert shown == drop_none(document)


def drop_none(value):
    if isinstance(value, dict):
        return {k: drop_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [drop_none(v) for v in value]
    return value


def test_config_reference_writes_the_file(tmp_path, capsys):
    target = tmp_path / "configuration.md"
    assert main(["config", "reference", "--output", str(target)]) == 0
    assert target.read_text() == REFERENCE.read_text()
    assert capsys.readouterr().out == f"wrote {target}\n"
