"""The sizing as docs/kubernetes.md shows it (between its markers) and `telemetry deploy sizing`
prints it: each number with the measured figure and the rule it follows from."""

from __future__ import annotations

from fleet.deploy.inputs import Inputs
from fleet.deploy.sizing import Sizing
from fleet.text_table import markdown_table

BEGIN = "<!-- telemetry deploy generate: sizing begin -->"
END = "<!-- telemetry deploy generate: sizing end -->"


def _n(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def figures_lines(inputs: Inputs) -> list[str]:
    f, p = inputs.figures, inputs.policy
    rows = []
    for kind, job in (("pipeline", f.pipeline), ("alerts", f.alerts)):
        rows += [
            (f"{kind}: one TaskManager (1 slot) drains", f"{_n(job.events_per_s)} events/s", f"stage cluster-{kind}-1tm, `rate`"),
            (f"{kind}: its CPU", f"{job.taskmanager_cpu_s_per_1k:.4f} CPU s per 1K events = {job.taskmanager_cores:.2f} cores at that rate",
             f"cluster-{kind}-1tm, taskmanager `cpu_s_window` / events"),
            (f"{kind}: TaskManager peak RSS", f"{_n(job.taskmanager_peak_rss_mib, 1)} MiB",
             f"the higher of cluster-{kind}-1tm's taskmanager (draining) and state.jobs.{kind}.taskmanager ({job.state_vehicles:,} vehicles' state)"),
            (f"{kind}: JobManager + Python driver peak RSS", f"{_n(job.jobmanager_peak_rss_mib, 1)} + {_n(job.client_peak_rss_mib, 1)} MiB",
             f"cluster-{kind}-1tm jobmanager, {kind} job-client"),
            (f"{kind}: state per vehicle", f"{_n(job.state_bytes_per_vehicle, 1)} B",
             "state.jobs." + kind + ".checkpoints.idle.latest.state_bytes / vehicles" + (" + the full dedup horizon" if kind == "pipeline" else "")),
        ]
    rows += [
        ("one bridge drains", f"{_n(f.bridge.messages_per_s)} msgs/s on {f.bridge.cores:.2f} cores, peak RSS {_n(f.bridge.peak_rss_mib, 1)} MiB",
         "bridge.json `msgs_per_s`, `cpu_s_process` / `drain_s`, `peak_rss_mib`"),
        ("broker CPU per 1K pipeline events", f"{f.broker_cpu_s_per_1k:.4f} CPU s", "cluster-pipeline-1tm, broker `cpu_s_window` / events"),
        ("mean telemetry payload", f"{_n(f.event_bytes)} B", "bridge.json `mean_payload_bytes`"),
    ]
    lines = ["Measured figures (" + "; ".join(inputs.sources.values()) + "):", "",
             markdown_table(["figure", "value", "where in the JSON"], rows), "",
             f"Policy (deploy/flink-k8s/sizing.toml): headroom {p.headroom} × the peak rate, memory {p.memory_margin} × the peak RSS "
             f"rounded up to {p.memory_step_mib} MiB (at least {p.min_flink_memory_mib} MiB for a Flink process), CPU rounded up to "
             f"{p.cpu_step} cores, JobManager CPU {p.jobmanager_cpu} (a choice, not a measurement), at least {p.min_bridges} bridges, "
             f"{p.vehicles_per_partition:,} vehicles per partition at most.", ""]
    return lines


def sizing_rows(sized: dict[str, Sizing]) -> list[tuple[str, ...]]:
    rows = []
    for name, s in sized.items():
        t = s.target
        for kind, job in (("pipeline", s.pipeline), ("alerts", s.alerts)):
            rows.append((name, f"{t.events_per_s:,}", kind, str(job.parallelism), f"{job.taskmanagers} × {job.slots} slot",
                         f"{job.taskmanager_cpu:g}", f"{job.taskmanager_memory_mib}m", f"{job.jobmanager_cpu:g} / {job.jobmanager_memory_mib}m",
                         f"{job.state_mib:,.0f} MiB", f"{job.state_mib / job.parallelism:,.1f} MiB"))
    return rows


def section_lines(inputs: Inputs, sized: dict[str, Sizing]) -> list[str]:
    lines = [BEGIN, "", "_Written by `telemetry deploy generate`; `tests/unit/test_deploy_sizing.py` recomputes it._", ""]
    lines += figures_lines(inputs)
    lines += ["Rules: parallelism = ⌈peak × headroom ÷ one TaskManager's drain rate⌉, one TaskManager per subtask; TaskManager CPU = "
              "the cores one used at its drain rate; TaskManager memory = its peak RSS with the measured state × margin; JobManager "
              "memory = (JobManager + Python driver RSS) × margin; bridges = ⌈peak × headroom ÷ one bridge's rate⌉; partitions = a "
              "multiple of every parallelism of the topic group (50K and 100K share one, so scaling changes no topic), at least "
              "vehicles ÷ vehicles per partition; `pipeline.max-parallelism` (key groups, fixed for the life of the savepoints) = the "
              "fewest, a power of two ≥ 128, with which no subtask at any target's parallelism, the 1M plan's included, holds more "
              f"than {inputs.policy.key_group_skew:.1%} above the mean of the keyed load (a subtask holds ⌈K/p⌉ or ⌊K/p⌋ of K key groups).", "",
              markdown_table(["target", "peak events/s", "job", "parallelism", "TaskManagers", "TM CPU", "TM memory", "JM CPU / memory", "state (whole job)",
                              "full checkpoint per TaskManager"],
                             sizing_rows(sized)), ""]
    rows = [(name, f"{s.partitions}", f"{s.max_parallelism}", f"{s.bridge.replicas} × {s.bridge.cpu:g} CPU, {s.bridge.memory_mib}Mi",
             f"{s.pipeline.taskmanagers * s.pipeline.taskmanager_cpu + s.alerts.taskmanagers * s.alerts.taskmanager_cpu + s.bridge.replicas * s.bridge.cpu:,.2f}",
             f"{s.broker_cores:,.2f}", f"{s.broker_mib_per_s:,.1f}")
            for name, s in sized.items()]
    lines += [markdown_table(["target", "partitions (telemetry, enriched)", "max parallelism", "bridges", "cores requested (TMs + bridges)",
                              "broker cores, one replica", "produced MiB/s (telemetry + enriched at the payload's size), one replica"], rows), ""]
    lines.append(END)
    return lines


def sizing_text(inputs: Inputs, sized: dict[str, Sizing]) -> str:
    return "\n".join(line for line in section_lines(inputs, sized) if line not in (BEGIN, END)).strip() + "\n"


def replace_section(document: str, lines: list[str]) -> str:
    start, end = document.find(BEGIN), document.find(END)
    if start < 0 or end < start:
        raise ValueError(f"docs/kubernetes.md has no {BEGIN} … {END} section")
    return document[:start] + "\n".join(lines) + document[end + len(END):]
