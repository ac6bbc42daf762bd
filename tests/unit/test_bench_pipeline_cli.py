"""`telemetry bench pipeline`'s flags become the plan they name."""

from __future__ import annotations

from fleet.bench.pipeline import SMOKE, BenchPlan
from fleet.bench.pipeline_cli import _command_line, plan_from_args
from fleet.cli.app import build_parser


def _args(*flags: str):
    return build_parser().parse_args(["bench", "pipeline", *flags])


def test_the_state_step_measures_rocksdb_with_incremental_checkpoints_when_asked():
    default = plan_from_args(_args())
    assert default.state == BenchPlan().state and dict(default.state.job_settings) == {}
    rocks = plan_from_args(_args("--state-backend", "rocksdb", "--stages", "limit", "--no-sustained"))
    assert dict(rocks.state.job_settings) == {"flink.state_backend": "rocksdb"}
    assert dict(rocks.state.cluster_settings) == {"execution.checkpointing.incremental": "true"}
    assert rocks.state.vehicles == BenchPlan().state.vehicles and rocks.stages == ("limit",) and rocks.sustained is None
    assert plan_from_args(_args("--no-state", "--state-backend", "rocksdb")).state is None
    assert plan_from_args(_args("--smoke")).state == SMOKE.state
    assert _command_line(_args("--state-backend", "rocksdb")).endswith("bench pipeline --state-backend rocksdb")
