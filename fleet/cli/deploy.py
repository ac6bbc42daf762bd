"""`telemetry deploy …`: the Kubernetes deployment in deploy/flink-k8s/ — generate the overlays'
files from their settings and the benchmark figures, render with kustomize, validate every object,
print the sizing, make a GDPR erasure Job (docs/kubernetes.md). The work is in fleet/deploy/."""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import sys
import tempfile
from collections import Counter
from dataclasses import asdict
from pathlib import Path

from fleet.cli.exit_codes import ExitCode
from fleet.deploy.overlays import DeployError


def _overlays(names: list[str] | None) -> list[str]:
    from fleet.deploy.overlays import overlay_names

    return names or overlay_names()


def cmd_generate(args: argparse.Namespace) -> int:
    from fleet.deploy.generate import relative
    from fleet.deploy.outputs import expected_files

    with tempfile.TemporaryDirectory(prefix="fleet-deploy-") as scratch:
        files = expected_files(Path(scratch))
    stale = [path for path, text in files.items() if not path.is_file() or path.read_text() != text]
    if args.check:
        for path in stale:
            print(f"stale: {relative(path)}")
        print(f"{len(files) - len(stale)} of {len(files)} generated files current")
        return ExitCode.CHECK_FAILED if stale else ExitCode.OK
    for path in stale:
        path.write_text(files[path])
        print(f"wrote {relative(path)}")
    print(f"{len(files)} generated files, {len(stale)} changed")
    return ExitCode.OK


def cmd_render(args: argparse.Namespace) -> int:
    from fleet.deploy.kustomize import build_text
    from fleet.deploy.overlays import load_overlay

    sys.stdout.write(build_text(load_overlay(args.overlay).folder))
    return ExitCode.OK


def cmd_validate(args: argparse.Namespace) -> int:
    from fleet.deploy.kustomize import build
    from fleet.deploy.overlays import load_overlay
    from fleet.deploy.validate import KUBERNETES_VERSION, problems

    failed = 0
    for name in _overlays(args.overlay):
        objects = build(load_overlay(name).folder)
        found = problems(objects)
        kinds = Counter(o["kind"] for o in objects)
        print(f"{name}: {len(objects)} objects ({', '.join(f'{n} {k}' for k, n in sorted(kinds.items()))}): "
              + ("valid" if not found else f"{len(found)} problems"))
        for line in found:
            print(f"  {line}")
        failed += bool(found)
    print(f"schemas: Kubernetes {KUBERNETES_VERSION} (strict), FlinkDeployment from deploy/flink-k8s/crds/")
    return ExitCode.CHECK_FAILED if failed else ExitCode.OK


def cmd_sizing(args: argparse.Namespace) -> int:
    from fleet.deploy.inputs import load_inputs
    from fleet.deploy.report import sizing_text
    from fleet.deploy.sizing import size_all

    inputs = load_inputs()
    sized = size_all(inputs.figures, inputs.policy, inputs.targets)
    if args.json:
        print(json.dumps({"figures": asdict(inputs.figures), "policy": asdict(inputs.policy),
                          "sizing": {name: asdict(s) for name, s in sized.items()}}, indent=2))
    else:
        print(sizing_text(inputs, sized))
    return ExitCode.OK


def _parse(parser: argparse.ArgumentParser, args: list[str], what: str) -> argparse.Namespace:
    """`args` as `parser` takes them, its complaint (argparse prints it and exits) as a DeployError."""
    errors = io.StringIO()
    try:
        with contextlib.redirect_stderr(errors), contextlib.redirect_stdout(io.StringIO()):
            return parser.parse_args(args)
    except SystemExit:
        reason = (errors.getvalue().strip().splitlines() or ["refused"])[-1]
        raise DeployError(f"`{what} {' '.join(args)}` would be refused: {reason}") from None


def check_erase_args(container_args: list[str]) -> None:
    """The container's `telemetry …` arguments as `telemetry` itself parses them, and its times."""
    from fleet.cli.app import build_parser
    from fleet.cli.lake import parse_time_ms
    from fleet.config import ConfigError

    parsed = _parse(build_parser(), container_args, "telemetry")
    try:
        for flag in ("since", "until"):
            if getattr(parsed, flag, None):
                parse_time_ms(getattr(parsed, flag), f"--{flag}")
    except ConfigError as error:
        raise DeployError(str(error)) from None


def cmd_erasure_job(args: argparse.Namespace) -> int:
    import yaml

    from fleet.deploy.erasure import erasure_job
    from fleet.deploy.kustomize import build
    from fleet.deploy.overlays import load_overlay

    subject = ["--vehicle", args.vehicle] if args.vehicle else ["--trip", args.trip]
    subject += [*(["--since", args.since] if args.since else []), *(["--until", args.until] if args.until else []),
                *(["--dry-run"] if args.dry_run else [])]
    job = erasure_job(build(load_overlay(args.overlay).folder), subject, check_args=check_erase_args)
    sys.stdout.write(yaml.safe_dump(job, sort_keys=False, width=120))
    return ExitCode.OK


def check_backfill_args(job_args: list[str]) -> None:
    """The FlinkDeployment's job arguments as jobs/backfill/job.py parses them, and its range."""
    from fleet.config import ConfigError
    from jobs.backfill.job import build_parser, request_from_args
    from jobs.backfill.ranges import BackfillError

    parsed = _parse(build_parser(), job_args, "jobs.backfill.job")
    try:
        request_from_args(parsed)
    except (BackfillError, ConfigError) as error:
        raise DeployError(f"jobs.backfill.job {' '.join(job_args)}: {error}") from None


def cmd_backfill(args: argparse.Namespace) -> int:
    import yaml

    from fleet.deploy.backfill import backfill_deployment
    from fleet.deploy.kustomize import build
    from fleet.deploy.overlays import load_overlay

    job_args = [*(["--from", args.start] if args.start else []), *(["--to", args.end] if args.end else []),
                *(["--offsets-from", args.offsets_from] if args.offsets_from else []),
                *(["--offsets-to", args.offsets_to] if args.offsets_to else []),
                *(["--sinks", args.sinks] if args.sinks else [])]
    deployment = backfill_deployment(build(load_overlay(args.overlay).folder), job_args, check_args=check_backfill_args)
    sys.stdout.write(yaml.safe_dump(deployment, sort_keys=False, width=120))
    return ExitCode.OK


def _guarded(func):
    def run(args: argparse.Namespace) -> int:
        try:
            return int(func(args))
        except DeployError as error:
            print(f"telemetry deploy: {error}", file=sys.stderr)
            return ExitCode.USAGE
        except ImportError as error:
            print(f"telemetry deploy: {error.name} is missing: pip install 'fleet-telemetry[deploy]'", file=sys.stderr)
            return ExitCode.ERROR
    return run


def add_parser(commands: argparse._SubParsersAction) -> None:
    deploy = commands.add_parser("deploy", help="the Kubernetes deployment (deploy/flink-k8s/): generate, render, validate, sizing (docs/kubernetes.md)")
    actions = deploy.add_subparsers(dest="action", required=True)

    def add(name: str, func, text: str) -> argparse.ArgumentParser:
        parser = actions.add_parser(name, help=text, description=text)
        parser.set_defaults(func=_guarded(func))
        return parser

    generate = add("generate", cmd_generate, "write each overlay's profile.toml, environment.env, generated.yaml, kustomization.yaml "
                                             "and docs/kubernetes.md's sizing from settings.toml, sizing.toml and docs/benchmarks/*.json")
    generate.add_argument("--check", action="store_true", help="write nothing; exit 4 when a generated file is not current")
    render = add("render", cmd_render, "kustomize build one overlay (apply with: telemetry deploy render production | kubectl apply -f -)")
    render.add_argument("overlay", help="local, production or production-100k")
    validate = add("validate", cmd_validate, "render overlays and validate every object: core kinds against the Kubernetes schemas, "
                                             "FlinkDeployments against the operator's CRD; exit 4 on a problem")
    validate.add_argument("overlay", nargs="*", help="default: every overlay")
    sizing = add("sizing", cmd_sizing, "each target's sizes and how they follow from the measured figures")
    sizing.add_argument("--json", action="store_true", help="figures, policy and sizes as one JSON document")
    erase = add("erasure-job", cmd_erasure_job, "a Job manifest that runs `telemetry lake erase` for one subject "
                                                "(kubectl create -f -; the overlay's lake-erase template)")
    erase.add_argument("--overlay", required=True, help="local, production or production-100k")
    who = erase.add_mutually_exclusive_group(required=True)
    who.add_argument("--vehicle", help="a vehicle_id")
    who.add_argument("--trip", help="a trip_id")
    erase.add_argument("--since", help="ISO-8601 event time, inclusive")
    erase.add_argument("--until", help="ISO-8601 event time, exclusive")
    erase.add_argument("--dry-run", action="store_true", help="the Job only counts what it would erase")
    backfill = add("backfill", cmd_backfill, "a bounded FlinkDeployment replaying vehicle-telemetry for a range (docs/backfill.md; "
                                             "kubectl apply -f -, delete it when FINISHED)")
    backfill.add_argument("--overlay", required=True, help="local, production or production-100k")
    backfill.add_argument("--from", dest="start", metavar="ISO", help="first record time, inclusive")
    backfill.add_argument("--to", dest="end", metavar="ISO", help="end record time, exclusive")
    backfill.add_argument("--offsets-from", metavar="P:O,...", help="first offset per partition, inclusive")
    backfill.add_argument("--offsets-to", metavar="P:O,...", help="end offset per partition, exclusive")
    backfill.add_argument("--sinks", help="comma-separated from enriched,bronze,store,dlq (default: all)")
