"""Sizes of every process from measured per-process figures (pure: no I/O, no Kubernetes).

One Flink TaskManager runs one slot: in thread mode every Python operator of a TaskManager shares
one interpreter and its GIL (DESIGN.md), so a second slot adds no Python throughput; parallelism is
scaled with TaskManagers instead. What one such TaskManager drains, and the cores and memory it
uses doing it, are measured (`telemetry bench pipeline`, the `cluster-*-1tm` stages and the 100K
vehicles' state step); everything here follows from those figures, the policy and the target.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class SizingPolicy:
    headroom: float                 # capacity / peak rate
    memory_margin: float            # memory / measured peak RSS
    memory_step_mib: int
    cpu_step: float
    min_flink_memory_mib: int
    vehicles_per_partition: int
    min_bridges: int
    jobmanager_cpu: float
    key_group_skew: float           # most extra keyed load a subtask may get from uneven key groups


@dataclass(frozen=True)
class Target:
    name: str
    events_per_s: int
    vehicles: int
    topic_group: str                # targets a running platform moves between share partition counts


@dataclass(frozen=True)
class JobFigures:
    """One Flink job on a standalone cluster with one TaskManager of one slot, draining a topic."""

    events_per_s: float             # drain rate of that one TaskManager
    taskmanager_cpu_s_per_1k: float
    taskmanager_peak_rss_mib: float  # with the state of `state_vehicles` vehicles
    state_vehicles: int
    jobmanager_peak_rss_mib: float
    client_peak_rss_mib: float      # the Python driver: in the JobManager's pod in application mode
    state_bytes_per_vehicle: float  # full state, checkpointed (idle)

    @property
    def taskmanager_cores(self) -> float:
        return self.taskmanager_cpu_s_per_1k * self.events_per_s / 1000


@dataclass(frozen=True)
class BridgeFigures:
    messages_per_s: float           # one bridge process
    cores: float                    # CPU it used at that rate
    peak_rss_mib: float


@dataclass(frozen=True)
class Figures:
    pipeline: JobFigures
    alerts: JobFigures
    bridge: BridgeFigures
    broker_cpu_s_per_1k: float      # the broker's CPU per 1K events the pipeline processed
    event_bytes: float              # mean telemetry payload, bytes


@dataclass(frozen=True)
class JobSize:
    parallelism: int
    taskmanagers: int
    slots: int
    taskmanager_cpu: float
    taskmanager_memory_mib: int
    jobmanager_cpu: float
    jobmanager_memory_mib: int
    state_mib: float                # the job's whole state, all subtasks


@dataclass(frozen=True)
class BridgeSize:
    replicas: int
    cpu: float
    memory_mib: int


@dataclass(frozen=True)
class Sizing:
    target: Target
    pipeline: JobSize
    alerts: JobSize
    bridge: BridgeSize
    partitions: int                 # vehicle-telemetry and telemetry-enriched
    max_parallelism: int
    broker_cores: float             # one replica's work; replication multiplies it
    broker_mib_per_s: float         # produced: telemetry + enriched at the payload's size, one replica


def round_up(value: float, step: float) -> float:
    return math.ceil(value / step - 1e-9) * step


def _memory(rss_mib: float, policy: SizingPolicy, floor: int) -> int:
    return max(floor, int(round_up(rss_mib * policy.memory_margin, policy.memory_step_mib)))


def size_job(figures: JobFigures, policy: SizingPolicy, target: Target) -> JobSize:
    parallelism = max(1, math.ceil(target.events_per_s * policy.headroom / figures.events_per_s - 1e-9))
    per_taskmanager = target.vehicles / parallelism
    if per_taskmanager > figures.state_vehicles:
        raise ValueError(f"{target.name}: {per_taskmanager:,.0f} vehicles per TaskManager, more than the "
                         f"{figures.state_vehicles:,} whose state was measured; measure a larger state first")
    return JobSize(
        parallelism=parallelism, taskmanagers=parallelism, slots=1,
        taskmanager_cpu=max(policy.cpu_step, round_up(figures.taskmanager_cores, policy.cpu_step)),
        taskmanager_memory_mib=_memory(figures.taskmanager_peak_rss_mib, policy, policy.min_flink_memory_mib),
        jobmanager_cpu=policy.jobmanager_cpu,
        jobmanager_memory_mib=_memory(figures.jobmanager_peak_rss_mib + figures.client_peak_rss_mib, policy, policy.min_flink_memory_mib),
        state_mib=target.vehicles * figures.state_bytes_per_vehicle / 2**20,
    )


def size_bridge(figures: BridgeFigures, policy: SizingPolicy, target: Target) -> BridgeSize:
    replicas = max(policy.min_bridges, math.ceil(target.events_per_s * policy.headroom / figures.messages_per_s - 1e-9))
    return BridgeSize(replicas=replicas, cpu=max(policy.cpu_step, round_up(figures.cores, policy.cpu_step)),
                      memory_mib=_memory(figures.peak_rss_mib, policy, policy.memory_step_mib))


def _lcm(values: list[int]) -> int:
    return math.lcm(*values) if values else 1


def partitions(group: list[tuple[Target, JobSize, JobSize]], policy: SizingPolicy) -> int:
    """One partition count for a topic group: a multiple of every member's pipeline and alerts
    parallelism (each subtask reads as many partitions; moving between members needs no new
    partitions, which would move vehicles between partitions), at least the seed's vehicles per
    partition for the largest member."""
    step = _lcm([size.parallelism for _, pipeline, alerts in group for size in (pipeline, alerts)])
    least = max(math.ceil(target.vehicles / policy.vehicles_per_partition) for target, _, _ in group)
    return step * max(1, math.ceil(least / step))


def max_parallelism(parallelisms: list[int], skew: float) -> int:
    """Flink's key groups, fixed for the life of a job's savepoints: the fewest — a power of two
    (Flink's own choice for a default), at least 128 — with which no subtask at any of these
    parallelisms holds more than `skew` above the mean (a subtask holds ⌈K/p⌉ or ⌊K/p⌋ of K)."""
    keys = 128
    while any(math.ceil(keys / p) / (keys / p) - 1 > skew + 1e-12 for p in parallelisms):
        keys *= 2
    return keys


def size_all(figures: Figures, policy: SizingPolicy, targets: list[Target]) -> dict[str, Sizing]:
    jobs = {t.name: (t, size_job(figures.pipeline, policy, t), size_job(figures.alerts, policy, t)) for t in targets}
    keys = max_parallelism([size.parallelism for _, p, a in jobs.values() for size in (p, a)], policy.key_group_skew)
    sized = {}
    for name, (target, pipeline, alerts) in jobs.items():
        group = [member for member in jobs.values() if member[0].topic_group == target.topic_group]
        sized[name] = Sizing(
            target=target, pipeline=pipeline, alerts=alerts, bridge=size_bridge(figures.bridge, policy, target),
            partitions=partitions(group, policy), max_parallelism=keys,
            broker_cores=target.events_per_s * figures.broker_cpu_s_per_1k / 1000,
            broker_mib_per_s=target.events_per_s * figures.event_bytes * 2 / 2**20,
        )
    return sized
