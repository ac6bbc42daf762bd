"""`telemetry deploy …` as a user runs it: exit codes, what it prints, refusals with a reason."""

from __future__ import annotations

import json

import yaml

from fleet.cli import app as cli
from fleet.cli.exit_codes import ExitCode
from fleet.deploy.kustomize import build
from fleet.deploy.overlays import load_overlay


def test_generate_check_and_validate_pass_on_the_committed_tree(capsys):
    assert cli.main(["deploy", "generate", "--check"]) == ExitCode.OK
    assert "13 of 13 generated files current" in capsys.readouterr().out
    assert cli.main(["deploy", "validate"]) == ExitCode.OK
    out = capsys.readouterr().out
    assert [line.split(":")[0] for line in out.splitlines() if line.endswith(": valid")] == ["local", "production", "production-100k"]


def test_render_prints_what_kustomize_builds(capsys):
    assert cli.main(["deploy", "render", "production"]) == ExitCode.OK
    printed = [d for d in yaml.safe_load_all(capsys.readouterr().out) if d]
    assert printed == build(load_overlay("production").folder)


def test_sizing_json_has_every_target(capsys):
    assert cli.main(["deploy", "sizing", "--json"]) == ExitCode.OK
    document = json.loads(capsys.readouterr().out)
    assert set(document["sizing"]) == {"local", "production", "production-100k", "plan-1m"}
    assert document["sizing"]["production"]["pipeline"]["slots"] == 1


def test_refusals_exit_2_with_the_reason(capsys):
    assert cli.main(["deploy", "render", "staging"]) == ExitCode.USAGE
    assert "no overlay 'staging'" in capsys.readouterr().err
    assert cli.main(["deploy", "erasure-job", "--overlay", "production", "--trip", "t-1", "--until", "soon"]) == ExitCode.USAGE
    assert "--until 'soon'" in capsys.readouterr().err
    assert cli.main(["deploy", "backfill", "--overlay", "production", "--sinks", "everything", "--from", "2026-12-01T10:00:00Z",
                     "--to", "2026-12-01T11:00:00Z"]) == ExitCode.USAGE
    assert "everything" in capsys.readouterr().err
