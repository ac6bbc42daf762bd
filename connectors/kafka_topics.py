"""Topics as code: create what is missing, compare what exists, report every difference.

Differences are reported, not silently "fixed": shrinking partitions is impossible, and changing a
partition count re-maps keys to partitions (breaking per-vehicle order), so an operator decides.
`fix=True` applies only what is safe to apply in place: topic config values.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from confluent_kafka import KafkaException
from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

# Broker-wide defaults show up as topic configs too; only what a spec sets is compared.
_TIMEOUT_S = 30


@dataclass(frozen=True)
class TopicSpec:
    """A topic as code: what `telemetry topics ensure` creates and compares against the broker."""

    role: str
    name: str  # the topic's name on the broker
    partitions: int  # created with this many; `topics ensure --fix` never changes them
    replication_factor: int
    configs: Mapping[str, str]


@dataclass(frozen=True)
class TopicReport:
    name: str
    action: str  # created | ok | differs | updated
    differences: tuple[str, ...] = field(default=())


def admin_client(bootstrap_servers: str) -> AdminClient:
    return AdminClient({"bootstrap.servers": bootstrap_servers})


def ensure_topics(admin: AdminClient, specs: Iterable[TopicSpec], *, fix: bool = False) -> list[TopicReport]:
    specs = list(specs)
    existing = admin.list_topics(timeout=_TIMEOUT_S).topics
    reports: dict[str, TopicReport] = {}

    missing = [s for s in specs if s.name not in existing]
    if missing:
        futures = admin.create_topics(
            [NewTopic(s.name, num_partitions=s.partitions, replication_factor=s.replication_factor, config=dict(s.configs)) for s in missing],
            operation_timeout=_TIMEOUT_S,
        )
        for name, future in futures.items():
            try:
                future.result()
            except KafkaException as exc:
                if exc.args[0].code() != exc.args[0].TOPIC_ALREADY_EXISTS:  # a concurrent creator won the race
                    raise
            reports[name] = TopicReport(name, "created")
        _wait_for_leaders(admin, [s.name for s in missing])

    present = [s for s in specs if s.name in existing]
    if present:
        described = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, s.name) for s in present])
        current = {resource.name: future.result() for resource, future in described.items()}
        for spec in present:
            metadata = existing[spec.name]
            differences = []
            partitions = len(metadata.partitions)
            if partitions != spec.partitions:
                differences.append(f"partitions: broker has {partitions}, spec says {spec.partitions}")
            replicas = {len(p.replicas) for p in metadata.partitions.values()}
            if replicas != {spec.replication_factor}:
                differences.append(f"replication factor: broker has {sorted(replicas)}, spec says {spec.replication_factor}")
            config_diffs = {
                key: (current[spec.name][key].value if key in current[spec.name] else None, wanted)
                for key, wanted in spec.configs.items()
                if key not in current[spec.name] or current[spec.name][key].value != wanted
            }
            differences += [f"{key}: broker has {have}, spec says {want}" for key, (have, want) in config_diffs.items()]
            if config_diffs and fix:
                _set_configs(admin, spec.name, {key: want for key, (_, want) in config_diffs.items()})
                action = "updated"
            else:
                action = "differs" if differences else "ok"
            reports[spec.name] = TopicReport(spec.name, action, tuple(differences))

    return [reports[s.name] for s in specs]


def _wait_for_leaders(admin: AdminClient, names: list[str]) -> None:
    """Creation returns before partitions have leaders; producers and offset queries need them."""
    deadline = time.monotonic() + _TIMEOUT_S
    while True:
        topics = admin.list_topics(timeout=_TIMEOUT_S).topics
        pending = [
            name for name in names
            if name not in topics or topics[name].error is not None
            or any(p.leader < 0 or p.error is not None for p in topics[name].partitions.values())
        ]
        if not pending:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"topics without partition leaders after {_TIMEOUT_S}s: {', '.join(pending)}")
        time.sleep(0.1)


def topic_max_message_bytes(bootstrap_servers: str, topic: str, timeout_s: float = 10.0) -> int | None:
    """The topic's max.message.bytes as the broker has it; None if it cannot be read (no topic yet:
    it will be made with the profile's settings)."""
    admin = admin_client(bootstrap_servers)  # held until the answer is in: a collected client cancels it
    try:
        [described] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)], request_timeout=timeout_s).values()
        entry = described.result(timeout=timeout_s).get("max.message.bytes")
    except Exception:  # noqa: BLE001 - an unknown limit falls back to the configured one
        return None
    return int(entry.value) if entry is not None and entry.value else None


def _set_configs(admin: AdminClient, topic: str, configs: dict[str, str]) -> None:
    from confluent_kafka.admin import AlterConfigOpType, ConfigEntry

    resource = ConfigResource(
        ConfigResource.Type.TOPIC, topic,
        incremental_configs=[ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET) for k, v in configs.items()],
    )
    for future in admin.incremental_alter_configs([resource]).values():
        future.result()
    # The change travels through the KRaft metadata log: wait until the broker reports it, so
    # "updated" means what it says.
    deadline = time.monotonic() + _TIMEOUT_S
    while True:
        [described] = admin.describe_configs([ConfigResource(ConfigResource.Type.TOPIC, topic)]).values()
        current = described.result()
        if all(key in current and current[key].value == value for key, value in configs.items()):
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{topic}: config change {configs} not visible after {_TIMEOUT_S}s")
        time.sleep(0.1)


def delete_topics(admin: AdminClient, names: Iterable[str]) -> None:
    for future in admin.delete_topics(list(names), operation_timeout=_TIMEOUT_S).values():
        future.result()


def format_reports(reports: list[TopicReport]) -> str:
    lines = []
    for report in reports:
        lines.append(f"{report.name:<22} {report.action}")
        lines += [f"{'':<22}   - {difference}" for difference in report.differences]
    return "\n".join(lines)
