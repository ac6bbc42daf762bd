"""`telemetry bench pipeline`: the argument parser and the command (the work is fleet.bench.pipeline)."""

from __future__ import annotations

import argparse
import shlex
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from fleet.cli.exit_codes import ExitCode
from fleet.config import PlatformConfig
from infra.flink_cluster import PROJECT_ROOT


def plan_from_args(args: argparse.Namespace):
    """The BenchPlan the flags ask for (ValueError for an impossible one)."""
    from fleet.bench.pipeline import SMOKE, BenchPlan
    from fleet.bench.state import ROCKSDB_INCREMENTAL

    plan = SMOKE if args.smoke else BenchPlan()
    overrides = {k: v for k, v in (("events", args.events), ("vehicles", args.vehicles), ("stage_timeout_s", args.stage_timeout)) if v is not None}
    if args.stages:
        overrides["stages"] = tuple(args.stages)
    if args.no_sustained:
        overrides["sustained"] = None
    if args.no_state:
        overrides["state"] = None
    elif args.state_backend == "rocksdb" and plan.state is not None:
        overrides["state"] = replace(plan.state, **ROCKSDB_INCREMENTAL)
    return replace(plan, **overrides)


def cmd_bench_pipeline(args: argparse.Namespace, config: PlatformConfig) -> int:
    from fleet.bench.pipeline import STAGES, run_pipeline_benchmark
    from fleet.bench.report import (
        format_table,
        machine,
        sustained_summary,
        write_json,
        write_markdown,
        write_plots,
    )
    from fleet.bench.state import state_summary

    if args.render:
        return _render(Path(args.render), args)
    try:
        plan = plan_from_args(args)
    except ValueError as exc:
        print(f"bad plan: {exc}; stages: {', '.join(STAGES)}", file=sys.stderr)
        return ExitCode.USAGE
    command = _command_line(args)
    host = machine()
    result = run_pipeline_benchmark(config, plan)
    result["checkpoint_interval_ms"] = config.flink.checkpoint_interval_ms
    outcomes = result["outcomes"]
    print("\n" + format_table(outcomes))
    print(sustained_summary(result["sustained"]))
    print(state_summary(result["state"]))
    bench_dir = config.infra.run_dir / "bench"
    json_path = write_json(result, bench_dir, host, command)
    markdown = Path(args.markdown) if args.markdown else (None if plan.smoke else PROJECT_ROOT / "BENCHMARKS.md")
    # Plots go beside BENCHMARKS.md (they are committed with it); without one, beside the JSON.
    plot_dir = markdown.parent / "docs" / "benchmarks" if markdown else bench_dir
    plots = write_plots(outcomes, plot_dir, "pipeline" if markdown else f"pipeline-{result['run_id']}", result["sustained"])
    print(f"\nJSON: {json_path}\nplots: {', '.join(str(p) for p in plots)}")
    if markdown:
        committed = commit_json(json_path, plot_dir)
        print(f"markdown: {write_markdown(markdown, result, host, command, plots, committed)}")
    problems = [p for o in outcomes for p in o.problems] + list((result["sustained"] or {}).get("problems", []))
    problems += list((result["state"] or {}).get("problems", []))
    if problems:
        print("\nMISMATCH — these stages did not output exactly what the input says they must:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return ExitCode.CHECK_FAILED
    print("\nOK: every stage output exactly the expected records")
    return ExitCode.OK


def _render(json_path: Path, args: argparse.Namespace) -> int:
    """BENCHMARKS.md and the plots again from a run's JSON (e.g. after a change to the report's layout)."""
    from fleet.bench.report import load_result, write_markdown, write_plots

    result, host, command = load_result(json_path)
    markdown = Path(args.markdown) if args.markdown else PROJECT_ROOT / "BENCHMARKS.md"
    plots = write_plots(result["outcomes"], markdown.parent / "docs" / "benchmarks", "pipeline", result["sustained"])
    committed = commit_json(json_path, markdown.parent / "docs" / "benchmarks")
    print(f"markdown: {write_markdown(markdown, result, host, command, plots, committed)}")
    return ExitCode.OK


def commit_json(json_path: Path, folder: Path) -> Path:
    """The run's JSON beside the plots as pipeline.json: committed with BENCHMARKS.md, it is what
    `telemetry deploy generate` sizes the Kubernetes deployment from (docs/kubernetes.md)."""
    target = folder / "pipeline.json"
    if json_path.resolve() != target.resolve():
        target.write_text(json_path.read_text())
    return target


def _command_line(args: argparse.Namespace) -> str:
    """The command as typed (rebuilt from the parsed arguments: the parser does not keep argv)."""
    words = ["telemetry"]
    if args.profile != "local":
        words += ["--profile", args.profile]
    for item in args.set:
        words += ["--set", item]
    words += ["bench", "pipeline"]
    if args.smoke:
        words.append("--smoke")
    for flag, value in (("--events", args.events), ("--vehicles", args.vehicles), ("--stage-timeout", args.stage_timeout),
                        ("--markdown", args.markdown)):
        if value is not None:
            words += [flag, str(value)]
    if args.stages:
        words += ["--stages", *args.stages]
    if args.no_sustained:
        words.append("--no-sustained")
    if args.no_state:
        words.append("--no-state")
    if args.state_backend != "hashmap":
        words += ["--state-backend", args.state_backend]
    return " ".join(shlex.quote(w) for w in words)


def add_parser(bench_cmd: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser], config_of: Callable) -> None:
    from fleet.bench.pipeline import STAGES, BenchPlan

    defaults = BenchPlan()
    sub = add(bench_cmd, "pipeline", lambda a: cmd_bench_pipeline(a, config_of(a)),
              "drain rates of the pipeline and alerts jobs against raw Kafka passthrough and a Quix Streams peer, same input, one run")
    sub.add_argument("--smoke", action="store_true", help="a few thousand events, for CI: the same path in about two minutes")
    sub.add_argument("--events", type=int, default=None, help=f"simulated events (default {defaults.events:,})")
    sub.add_argument("--vehicles", type=int, default=None, help=f"simulated vehicles (default {defaults.vehicles:,})")
    sub.add_argument("--stages", nargs="+", choices=list(STAGES), default=None, help="which stages, in this order (default: all)")
    sub.add_argument("--stage-timeout", type=float, default=None, help="seconds before a stage is killed and reported")
    sub.add_argument("--render", default=None, metavar="JSON", help="run nothing: write BENCHMARKS.md and the plots from a run's JSON")
    sub.add_argument("--no-sustained", action="store_true", help="skip the open-loop climb and the latency step")
    sub.add_argument("--no-state", action="store_true", help="skip state, checkpoints and TaskManager RSS with 100K vehicles' state")
    sub.add_argument("--state-backend", choices=("hashmap", "rocksdb"), default="hashmap",
                     help="the state step's backend: hashmap (default), or rocksdb with incremental checkpoints, as deploy/flink-k8s runs")
    sub.add_argument("--markdown", default=None, help="where to write the report (default: BENCHMARKS.md at the repo root; none with --smoke)")
