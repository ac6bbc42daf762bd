"""A benchmark run's plan survives its JSON: `--render` rebuilds BENCHMARKS.md from what was run."""

from __future__ import annotations

import json
from dataclasses import replace

from fleet.bench.pipeline import SMOKE, BenchPlan
from fleet.bench.report import _plain, _state_plan
from fleet.bench.state import SMOKE_STATE, StatePlan


def test_a_state_plan_with_settings_round_trips():
    plan = replace(SMOKE_STATE, job_settings=(("flink.state_backend", "rocksdb"),),
                   cluster_settings=(("execution.checkpointing.incremental", "true"),))
    back = _state_plan(json.loads(json.dumps(_plain(plan))))
    assert back == plan and isinstance(back, StatePlan)


def test_the_default_plans_state_round_trips():
    for plan in (BenchPlan(), SMOKE):
        raw = json.loads(json.dumps(_plain(plan)))
        assert _state_plan(raw["state"]) == plan.state
