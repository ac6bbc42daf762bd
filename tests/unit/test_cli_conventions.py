"""The conventions every command line keeps (fleet/cli/exit_codes.py, fleet/config/log_setup.py):
help on every flag and subcommand, --version at the top, --json output that parses, one JSON
log formatter. The parsers are walked whole, so a flag added later without help fails here."""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Callable, Iterator
from contextlib import redirect_stdout
from importlib import metadata

import pytest

from fleet.cli.exit_codes import ExitCode
from fleet.config.log_setup import JsonFormatter, configure_logging


def _telemetry() -> argparse.ArgumentParser:
    from fleet.cli.app import build_parser

    return build_parser()


def _bridge() -> argparse.ArgumentParser:
    from ingest.cli import build_parser

    return build_parser()


def _device_sim() -> argparse.ArgumentParser:
    from device_sim.cli import build_parser

    return build_parser()


def _edge_agent() -> argparse.ArgumentParser:
    from edge_agent.cli import build_parser

    return build_parser()


PARSERS: dict[str, Callable[[], argparse.ArgumentParser]] = {
    "telemetry": _telemetry, "bridge": _bridge, "device_sim": _device_sim, "edge_agent": _edge_agent,
}


def walk(parser: argparse.ArgumentParser, path: str) -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """(command path, parser) for the parser and every subcommand under it, depth first."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from walk(sub, f"{path} {name}")


def missing_help(parser: argparse.ArgumentParser, path: str) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        if isinstance(action, argparse._SubParsersAction):
            helped = {choice.dest for choice in action._choices_actions if (choice.help or "").strip()}
            missing += [f"{path} {name} (subcommand)" for name in action.choices if name not in helped]
            continue
        if action.help is argparse.SUPPRESS:
            continue
        if not (action.help or "").strip():
            missing.append(f"{path} {'/'.join(action.option_strings) or action.dest}")
    return missing


@pytest.mark.parametrize("name", PARSERS)
def test_every_flag_positional_and_subcommand_has_help(name):
    parser = PARSERS[name]()
    missing = [m for path, sub in walk(parser, name) for m in missing_help(sub, path)]
    assert missing == []


@pytest.mark.parametrize("name", PARSERS)
def test_version_at_the_top_prints_the_distributions_version(name):
    expected = metadata.version("fleet-telemetry")
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit) as exit_info:
        PARSERS[name]().parse_args(["--version"])
    assert exit_info.value.code == 0
    assert out.getvalue().split()[-1] == expected


def test_exit_codes_are_the_documented_table():
    assert {c.name: int(c) for c in ExitCode} == {
        "OK": 0, "ERROR": 1, "USAGE": 2, "UNAVAILABLE": 3, "CHECK_FAILED": 4, "INTERRUPTED": 130,
    }
    from fleet.cli import exit_codes

    for code in ExitCode:  # the module's docstring is the documentation: every row is in its table
        assert f"\n{int(code):<7}{code.name:<16}" in (exit_codes.__doc__ or "")


def test_ctrl_c_in_a_command_is_exit_130(monkeypatch):
    from fleet.cli import app

    def interrupted(_args: argparse.Namespace) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(app, "cmd_jars_list", interrupted)
    assert app.main(["jars", "list"]) == 130


def _telemetry_json(capsys, tmp_path, *argv: str) -> tuple[int, object]:
    from fleet.cli.app import main

    code = main(["--set", f"infra.run_dir={tmp_path}", *argv])
    return code, json.loads(capsys.readouterr().out)


def test_infra_status_json_with_nothing_running(capsys, tmp_path):
    code, document = _telemetry_json(capsys, tmp_path, "infra", "status", "--json")
    assert code == ExitCode.UNAVAILABLE
    assert document["run_dir"] == str(tmp_path)
    names = [c["name"] for c in document["components"]]
    assert {"kafka", "mosquitto", "moto"} <= set(names) and len(names) == len(set(names))
    for component in document["components"]:
        assert component["healthy"] is False and component["pid"] is None, component
        assert set(component) == {"name", "address", "pid", "healthy", "detail", "log"}


def test_infra_status_json_of_one_component(capsys, tmp_path):
    code, document = _telemetry_json(capsys, tmp_path, "infra", "status", "kafka", "--json")
    assert code == ExitCode.UNAVAILABLE and [c["name"] for c in document["components"]] == ["kafka"]


VALID = (
    '{"vehicle_id": 1, "timestamp": "2025-01-15T14:32:18.123Z", "location": {"lat": 50.1, "lon": 8.6}, '
    '"battery": {"percent": 50}}'
)


def test_validate_json_counts_and_rejections(capsys, tmp_path):
    payloads = tmp_path / "payloads.jsonl"
    payloads.write_text(f"{VALID}\nnot json\n\n{VALID}\n")
    code, document = _telemetry_json(capsys, tmp_path, "validate", str(payloads), "--json")
    assert code == ExitCode.CHECK_FAILED
    assert document["counts"] == {"bad_json": 1, "valid": 2}
    assert [(r["line"], r["reason"]) for r in document["rejections"]] == [(2, "bad_json")]


def test_validate_json_all_valid_is_ok(capsys, tmp_path):
    payloads = tmp_path / "payloads.jsonl"
    payloads.write_text(VALID + "\n")
    code, document = _telemetry_json(capsys, tmp_path, "validate", str(payloads), "--json")
    assert code == ExitCode.OK and document == {"counts": {"valid": 1}, "rejections": []}


def test_lake_tables_and_audit_json_on_an_empty_lake(capsys, tmp_path):
    code, document = _telemetry_json(capsys, tmp_path, "lake", "tables", "--json")
    assert code == ExitCode.OK
    by_name = {t["table"]: t for t in document["tables"]}
    assert list(by_name) == ["bronze", "silver", "silver_rejected", "gold", "ledger", "audit"]
    assert by_name["bronze"]["rows"] == 0 and by_name["bronze"]["files"] == 0
    assert all(by_name[n]["rows"] is None and by_name[n]["version"] is None for n in list(by_name)[1:])
    code, document = _telemetry_json(capsys, tmp_path, "lake", "audit", "--json")
    assert code == ExitCode.OK and document == {"rows": []}


# --- logging ---------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _logging_restored() -> Iterator[None]:
    """configure_logging changes process-wide state: put the handlers and levels back after each test."""
    from fleet.config.log_setup import OWN_PACKAGES

    root = logging.getLogger()
    handlers = list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in ("", *OWN_PACKAGES)}
    yield
    root.handlers[:] = handlers
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def _record(**extra: object) -> logging.LogRecord:
    record = logging.LogRecord("ingest.bridge", logging.WARNING, __file__, 10, "sent %d of %s",
                               (3, "vehicle-telemetry"), None)
    record.created = 1_736_951_538.123  # 2025-01-15T14:32:18.123Z
    for key, value in extra.items():
        setattr(record, key, value)
    return record


def test_json_formatter_writes_the_records_fields():
    line = JsonFormatter().format(_record(stats={"received": 3}, client_id="bridge-1"))
    assert "\n" not in line
    assert json.loads(line) == {
        "ts": "2025-01-15T14:32:18.123Z", "level": "WARNING", "logger": "ingest.bridge",
        "message": "sent 3 of vehicle-telemetry", "stats": {"received": 3}, "client_id": "bridge-1",
    }


def test_json_formatter_keeps_a_traceback_and_stringifies_odd_values():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = _record(path=tmp_object())
        record.exc_info = sys.exc_info()
    document = json.loads(JsonFormatter().format(record))
    assert document["path"] == "odd" and document["exc_info"].endswith("ValueError: boom")


def tmp_object() -> object:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    return Odd()


def test_configure_logging_shows_our_info_and_only_other_libraries_warnings():
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    logging.getLogger("fleet.cli.app").info("ours")
    logging.getLogger("py4j.clientserver").info("theirs")
    logging.getLogger("py4j.clientserver").warning("their warning")
    messages = [line.split(": ", 1)[1] for line in stream.getvalue().splitlines()]
    assert messages == ["ours", "their warning"]


def test_configure_logging_once_replaces_its_handler_and_sets_the_level():
    root = logging.getLogger()
    before = list(root.handlers)
    stream = io.StringIO()
    configure_logging("INFO", json=False)
    handler = configure_logging("warning", json=True, stream=stream)
    assert [h for h in root.handlers if h not in before] == [handler]
    assert logging.getLogger("fleet").level == logging.WARNING
    logging.getLogger("fleet.test").info("not shown")
    logging.getLogger("fleet.test").warning("shown %s", "once", extra={"vehicle_id": 9})
    lines = stream.getvalue().splitlines()
    assert len(lines) == 1
    document = json.loads(lines[0])
    fields = (document["level"], document["logger"], document["message"], document["vehicle_id"])
    assert fields == ("WARNING", "fleet.test", "shown once", 9)


def test_log_level_default_comes_from_the_environment(monkeypatch):
    from fleet.cli.app import build_parser

    monkeypatch.setenv("FLEET_LOG_LEVEL", "debug")
    assert build_parser().parse_args(["jars", "list"]).log_level == "DEBUG"
    monkeypatch.setenv("FLEET_LOG_LEVEL", "chatty")  # not a level: INFO, and --help still works
    assert build_parser().parse_args(["jars", "list"]).log_level == "INFO"
    monkeypatch.delenv("FLEET_LOG_LEVEL")
    args = build_parser().parse_args(["--log-level", "warning", "--log-json", "jars", "list"])
    assert (args.log_level, args.log_json) == ("WARNING", True)


def test_backfill_dry_run_json_is_the_plan(monkeypatch, capsys, tmp_path):
    from jobs.backfill import job
    from jobs.backfill.ranges import PartitionRange, ResolvedRange
    from jobs.backfill.runs import Plan

    resolved = ResolvedRange("vehicle-telemetry", (PartitionRange(0, 5, 10), PartitionRange(1, 7, 7)))
    targets = {"store": "local store", "dlq": "telemetry-dlq"}
    plan = Plan("first", frozenset({"store"}), reason="a new run")
    decision = job.Decision(resolved, targets, "run-1", tmp_path / "run-1", None, plan)
    monkeypatch.setattr(job, "decide", lambda _config, _request: decision)  # no Kafka: the range is resolved
    monkeypatch.setattr(job, "run_backfill", lambda *_a, **_k: pytest.fail("a dry run runs nothing"))
    span = ["--offsets-from", "0:5,1:7", "--offsets-to", "0:10,1:7"]
    code, document = _telemetry_json(capsys, tmp_path, "backfill", *span, "--sinks", "store", "--dry-run",
                                     "--json")
    assert code == ExitCode.OK
    assert document == {
        "run_id": "run-1", "topic": "vehicle-telemetry",
        "range": {"offsets_from": "0:5,1:7", "offsets_to": "0:10,1:7"},
        "records": 5, "partitions": [{"partition": 0, "start": 5, "end": 10, "clamped": False},
                                     {"partition": 1, "start": 7, "end": 7, "clamped": False}],
        "targets": {"store": "local store"}, "folder": str(tmp_path / "run-1"),
        "plan": {"action": "first", "sinks": ["store"], "reason": "a new run"},
        "dry_run": True, "manifest": None,
    }


def test_topics_ensure_json_reports_each_topic(monkeypatch, capsys, tmp_path):
    from connectors import kafka_topics
    from connectors.kafka_topics import TopicReport

    reports = [TopicReport("vehicle-telemetry", "ok"),
               TopicReport("telemetry-dlq", "differs", ("retention.ms: 1 ≠ 2",))]
    monkeypatch.setattr(kafka_topics, "admin_client", lambda _bootstrap: None)  # no Kafka: reports given
    monkeypatch.setattr(kafka_topics, "ensure_topics", lambda _admin, _specs, fix: reports)
    kafka = ["--set", "kafka.bootstrap_servers=127.0.0.1:1"]
    code, document = _telemetry_json(capsys, tmp_path, *kafka, "topics", "ensure", "--json")
    assert code == ExitCode.CHECK_FAILED
    assert document == {"bootstrap_servers": "127.0.0.1:1", "topics": [
        {"name": "vehicle-telemetry", "action": "ok", "differences": []},
        {"name": "telemetry-dlq", "action": "differs", "differences": ["retention.ms: 1 ≠ 2"]},
    ]}
