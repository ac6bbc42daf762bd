"""A GDPR erasure Job for one subject, made from the overlay's suspended `lake-erase` CronJob (its
jobTemplate holds the image, profile, service account and resources that overlay renders)."""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Sequence
from typing import Any

from fleet.deploy.overlays import DeployError

TEMPLATE = "lake-erase"


def erasure_job(objects: Sequence[dict[str, Any]], subject_args: Sequence[str], *,
                check_args: Callable[[list[str]], None]) -> dict[str, Any]:
    """The Job: the template's pod with `subject_args` (`--vehicle N` or `--trip T`, `--since`,
    `--until`, `--dry-run`) appended to its `telemetry … lake erase` arguments. `check_args` gets
    the container's whole argument list and raises DeployError when the command would refuse it."""
    template = next((o for o in objects if o.get("kind") == "CronJob" and o["metadata"]["name"] == TEMPLATE), None)
    if template is None:
        raise DeployError(f"the rendered overlay has no CronJob {TEMPLATE!r} (deploy/flink-k8s/base/lake-cronjobs.yaml)")
    spec = copy.deepcopy(template["spec"]["jobTemplate"]["spec"])
    [container] = spec["template"]["spec"]["containers"]
    container["args"] = [*container["args"], *subject_args]
    check_args(list(container["args"]))
    label = re.sub(r"[^a-z0-9-]+", "-", "-".join(subject_args[1:2]).lower()).strip("-")[:40] or "subject"
    metadata = template["metadata"]
    return {
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"generateName": f"{TEMPLATE}-{label}-", "namespace": metadata.get("namespace"),
                     "labels": {**metadata.get("labels", {}), "app.kubernetes.io/component": "gdpr-erasure"}},
        "spec": spec,
    }
