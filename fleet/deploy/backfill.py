"""A backfill (docs/backfill.md) as a bounded FlinkDeployment beside the live jobs: the overlay's
rendered pipeline FlinkDeployment with the backfill module's arguments, `upgradeMode: stateless`
(a backfill restarts from its range, not a savepoint) and its run manifests on a volume that
outlives the pods (`[infra] run_dir`: what makes a second run of the same range change nothing)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from typing import Any

from fleet.deploy.generate import PROFILE_MOUNT
from fleet.deploy.overlays import DeployError

PIPELINE = "telemetry-pipeline"
RUNS_CLAIM = "fleet-backfill-runs"      # base/backfill-runs.yaml
RUNS_MOUNT = "/var/lib/fleet"


def backfill_deployment(objects: Sequence[dict[str, Any]], backfill_args: Sequence[str], *,
                        check_args: Callable[[list[str]], None]) -> dict[str, Any]:
    pipeline = next((o for o in objects if o.get("kind") == "FlinkDeployment" and o["metadata"]["name"] == PIPELINE), None)
    if pipeline is None:
        raise DeployError(f"the rendered overlay has no FlinkDeployment {PIPELINE!r}")
    args = ["--profile", PROFILE_MOUNT, "--set", f"infra.run_dir={RUNS_MOUNT}", *backfill_args]
    check_args(args)
    name = "backfill-" + (re.sub(r"[^a-z0-9]+", "-", "-".join(backfill_args[1:2]).lower()).strip("-")[:40] or "range")
    spec = copy.deepcopy(pipeline["spec"])
    spec["job"] = {**spec["job"], "args": ["-pym", "jobs.backfill.job", *args], "upgradeMode": "stateless", "state": "running"}
    conf = spec["flinkConfiguration"]
    for key in ("execution.checkpointing.dir", "execution.checkpointing.savepoint-dir", "high-availability.storageDir"):
        conf[key] = conf[key].replace(f"/{PIPELINE}", f"/{name}")
    pod = spec["podTemplate"]["spec"]
    pod["volumes"] = [*pod.get("volumes", []), {"name": "backfill-runs", "persistentVolumeClaim": {"claimName": RUNS_CLAIM}}]
    [container] = [c for c in pod["containers"] if c["name"] == "flink-main-container"]
    container["volumeMounts"] = [*container.get("volumeMounts", []), {"name": "backfill-runs", "mountPath": RUNS_MOUNT}]
    metadata = pipeline["metadata"]
    return {"apiVersion": pipeline["apiVersion"], "kind": "FlinkDeployment",
            "metadata": {"name": name, "namespace": metadata.get("namespace"),
                         "labels": {**metadata.get("labels", {}), "app.kubernetes.io/component": "backfill"}},
            "spec": spec}
