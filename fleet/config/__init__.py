"""Typed, frozen configuration for every component, read from a profile plus overrides.

Only `main()` functions and the CLI call `load_config`; everything else receives the objects.
Sources, later ones winning: the profile file (fleet/config/profiles/<name>.toml or a path), then
environment variables TELEMETRY__SECTION__KEY=value, then explicit `section.key=value` overrides
(the CLI's --set).
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from connectors.aws_residency import ResidencyError, check_residency
from connectors.hot_store import StoreConfig
from connectors.kafka_topics import TopicSpec
from fleet.config.invariants import record_size_problems, restart_window_ms, transaction_problems
from udfs.telemetry_schema import ValidationPolicy

PROFILES_DIR = Path(__file__).parent / "profiles"
ENV_PREFIX = "TELEMETRY__"
TOPIC_ROLES = ("telemetry", "enriched", "dlq", "alerts", "registry")


class ConfigError(ValueError):
    """A profile or override that cannot become a valid configuration."""


@dataclass(frozen=True)
class InfraConfig:
    run_dir: Path  # the local servers' data, logs and pid files, the checkpoints, the lake, the stores
    host: str  # the address every local server listens on and clients connect to
    kafka_port: int  # the local Kafka broker's client listener
    kafka_controller_port: int  # its KRaft controller listener
    kafka_heap: str  # the broker JVM's maximum heap (-Xmx)
    mqtt_port: int  # the local Mosquitto
    moto_port: int  # the local moto server (SNS, DynamoDB, Timestream, S3 APIs)
    mqtt_auth: bool  # per-vehicle credentials and ACL on the local Mosquitto
    mqtt_first_vehicle_id: int  # with mqtt_auth: the first vehicle id given credentials
    mqtt_vehicles: int  # with mqtt_auth: how many ids from there get credentials

    @property
    def kafka_address(self) -> str:
        return f"{self.host}:{self.kafka_port}"

    @property
    def moto_endpoint(self) -> str:
        return f"http://{self.host}:{self.moto_port}"


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str
    topics: tuple[TopicSpec, ...]
    # transaction.timeout.ms of the exactly-once sinks, and the broker's transaction.max.timeout.ms
    # it must not exceed (checked against the restart strategy: fleet/config/invariants.py).
    transaction_timeout_ms: int
    broker_max_transaction_timeout_ms: int
    max_record_bytes: int  # the largest record the brokers take (checked against [schema])

    def topic(self, role: str) -> TopicSpec:
        for spec in self.topics:
            if spec.role == role:
                return spec
        raise KeyError(f"no topic with role {role!r}; roles: {', '.join(TOPIC_ROLES)}")


@dataclass(frozen=True)
class FlinkConfig:
    parallelism: int  # every job's default operator parallelism
    execution_mode: str  # Python UDFs: thread (in the JVM, via pemja) | process (Beam workers)
    # Exactly-once sinks publish when a checkpoint completes: the floor of ingest→topic latency.
    checkpoint_interval_ms: int
    checkpoint_dir: str  # a URI: file:///… or s3://…
    state_backend: str  # hashmap (state on the JVM heap) | rocksdb (state on local disk)
    restart_strategy: str  # fixed-delay | exponential-delay
    restart_attempts: int  # fixed-delay: in total; exponential-delay: before the backoff resets
    restart_delay_ms: int  # fixed-delay: between attempts; exponential-delay: the first backoff
    restart_max_delay_ms: int  # exponential-delay: the backoff stops growing here
    python_bundle_time_ms: int
    python_bundle_size: int  # Python output is handed on after at most this many records
    buffer_timeout_ms: int
    # Flink's S3 filesystem (s3:// Bronze, checkpoints): "" is AWS itself; a URL (moto, MinIO) is
    # reached path-style, with the AWS_* environment's keys or, absent those, dummy ones.
    s3_endpoint: str
    # Flink's Prometheus reporter (flink-metrics-prometheus): the port its /metrics is served on,
    # 0 = no reporter. `telemetry live` gives each job its own ([live] *_metrics_port).
    prometheus_port: int
    # The REST port of the job's MiniCluster (a local run): 0 = any free one. `telemetry live` sets
    # one per job to stop it with a savepoint.
    rest_port: int


@dataclass(frozen=True)
class AwsConfig:
    region: str  # every AWS client's region; outside the EU only with allow_outside_eu
    endpoint_url: str | None  # None: real AWS
    allow_outside_eu: bool = False  # EU data residency: refused on load unless set


@dataclass(frozen=True)
class PipelineSettings:
    group_id: str  # the pipeline's Kafka consumer group: its committed offsets are where a restart resumes
    transactional_id_prefix: str
    dedup_recent_events: int
    dedup_ttl_s: int  # a vehicle silent this long forgets its recent event times (state TTL)
    registry_file: str
    batch_window_ms: int
    batch_shards: int
    bronze_path: str  # a URI: file:///… or s3://…


LAKE_TABLES = {  # [lake] key → where the table lives under base_path by default
    "silver_path": "silver/telemetry",
    "silver_rejected_path": "silver/telemetry_rejected",
    "gold_path": "gold/vehicle_hourly",
    "ledger_path": "_meta/silver_bronze_files",
    "audit_path": "_meta/audit",
}


@dataclass(frozen=True)
class LakeSettings:
    """The batch lakehouse: Delta tables beside Bronze (URIs) and each layer's retention."""

    silver_path: str  # Silver: Bronze's rows deduplicated and checked
    silver_rejected_path: str  # the Bronze rows Silver's checks refused, with the rule
    gold_path: str  # Gold: hourly aggregates per vehicle
    ledger_path: str  # the Bronze files Silver has read
    audit_path: str  # every retention removal and erasure, one row per layer touched
    bronze_retention_days: int  # days of event dates Bronze keeps
    silver_retention_days: int  # days of event dates Silver keeps
    gold_retention_days: int  # days of event dates Gold keeps


@dataclass(frozen=True)
class AlertSettings:
    group_id: str  # the anomaly job's Kafka consumer group
    low_battery_percent: float  # below this, and not charging: one low_battery alert per episode
    battery_rearm_percent: float
    offline_after_s: float
    offline_timer_granularity_ms: int
    service_area: str  # a GeoJSON path
    sns_topic: str  # the SNS topic pages are published to (created if missing)
    alert_log: str  # a JSON-lines path
    storm_window_s: float  # storm guard: tumbling windows on the alerts' event time
    storm_pages_per_window: int  # pages per (kind, zone_id) and window; beyond, one summary per window
    publish_concurrency: int  # SNS PublishBatch calls in flight at once
    publish_flush_ms: int  # pending pages are published (and logged, and sent on) at least this often
    publish_shards: int  # keys of the publisher: parallel flushes across its subtasks
    input_stall_after_s: float  # no record for this long: the input is stalled (offline detection holds)
    input_lag_limit_s: float  # records read this long after their ingest: the input is lagging


@dataclass(frozen=True)
class FaultSettings:
    """Fault injection for the failure harness; empty = off (the only sane production value)."""

    fail_once_at: str  # "<vehicle_id>@<event_time_ms>": user functions fail once on that record
    marker_dir: str


@dataclass(frozen=True)
class LiveSettings:
    """`telemetry live` (`make run`): the whole platform on this machine, its fleet and its ports."""

    vehicles: int  # the simulated fleet (seed rates, ~1.18 events/s per vehicle)
    seed: int  # the simulated fleet's seed; round i runs with seed + i
    round_s: float  # faults are planned per round of this much event time; rounds follow each other
    low_batteries_per_round: int  # per round, for 2,000 vehicles (scaled to the fleet's size)
    geofence_exits_per_round: int  # vehicles that leave the service area and come back
    offline_vehicles_per_round: int  # each silent for offline_s: long enough for an offline alert
    offline_s: float
    duplicates_per_round: int  # events sent twice (dedup drops the copy)
    malformed_per_round: int  # payloads that are not JSON, in place of events (DLQ: bad_json)
    schema_invalid_per_round: int  # JSON payloads the schema refuses, in place of events (DLQ)
    bridges: int  # MQTT→Kafka bridges in one shared-subscription group
    refresh_s: float  # the terminal status is redrawn this often
    map_port: int  # the fleet map (http://host:map_port/)
    metrics_port: int  # telemetry live's own /metrics (what the status shows)
    sim_metrics_port: int  # the simulator's /metrics
    bridge_metrics_port: int  # bridge i serves /metrics and /healthz on bridge_metrics_port + i
    pipeline_metrics_port: int  # the pipeline's Flink Prometheus reporter
    alerts_metrics_port: int  # the anomaly job's
    pipeline_rest_port: int  # the pipeline's MiniCluster REST API: stop-with-savepoint at Ctrl-C
    alerts_rest_port: int


@dataclass(frozen=True)
class PlatformConfig:
    profile: str
    infra: InfraConfig
    kafka: KafkaConfig
    flink: FlinkConfig
    aws: AwsConfig
    pipeline: PipelineSettings
    stores: StoreConfig
    lake: LakeSettings
    alerts: AlertSettings
    faults: FaultSettings
    live: LiveSettings
    schema: ValidationPolicy  # payload limits ([schema]); the rest of the policy keeps its defaults


def load_config(
    profile: str | os.PathLike[str] = "local",
    overrides: Iterable[str] | Mapping[str, Any] = (),
    environ: Mapping[str, str] | None = None,
) -> PlatformConfig:
    """Read a profile (a name in fleet/config/profiles or a .toml path), apply env and explicit overrides."""
    path = Path(profile)
    if path.suffix != ".toml":
        path = PROFILES_DIR / f"{profile}.toml"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in PROFILES_DIR.glob("*.toml")))
        raise ConfigError(f"no profile {str(profile)!r}: not a file, and not one of: {known}")
    with path.open("rb") as handle:
        raw = tomllib.load(handle)

    environ = os.environ if environ is None else environ
    env_pairs = [
        (key[len(ENV_PREFIX):].lower().replace("__", "."), value)
        for key, value in environ.items()
        if key.startswith(ENV_PREFIX)
    ]
    if isinstance(overrides, Mapping):
        explicit = list(overrides.items())
    else:
        explicit = [_split_override(item) for item in overrides]
    for dotted, value in (*env_pairs, *explicit):
        raw = _apply(raw, dotted, value)
    return _build(path.stem, raw, environ)


def _split_override(item: str) -> tuple[str, str]:
    key, sep, value = item.partition("=")
    if not sep or not key.strip():
        raise ConfigError(f"override {item!r} is not section.key=value")
    return key.strip(), value


def _apply(raw: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    raw = copy.deepcopy(raw)
    parts = dotted.split(".")
    node = raw
    for part in parts[:-1]:
        if not isinstance(node.get(part), dict):
            raise ConfigError(f"override {dotted!r}: no section {part!r}")
        node = node[part]
    leaf = parts[-1]
    if leaf not in node:
        raise ConfigError(f"override {dotted!r}: unknown key {leaf!r} (known: {', '.join(sorted(node))})")
    node[leaf] = _coerce(dotted, value, node[leaf])
    return raw


def _coerce(dotted: str, value: Any, current: Any) -> Any:
    """Overrides arrive as strings; give them the type the profile's value has."""
    if not isinstance(value, str) or isinstance(current, str):
        return value
    try:
        if isinstance(current, bool):
            if value.lower() in ("true", "1", "yes"):
                return True
            if value.lower() in ("false", "0", "no"):
                return False
            raise ValueError(value)
        if isinstance(current, int):
            return int(value)
        if isinstance(current, float):
            return float(value)
    except ValueError:
        raise ConfigError(f"override {dotted}={value!r}: expected {type(current).__name__}") from None
    return value


def _section(raw: dict[str, Any], name: str) -> dict[str, Any]:
    if not isinstance(raw.get(name), dict):
        raise ConfigError(f"profile has no [{name}] section")
    return raw[name]


def _construct(cls: type, values: dict[str, Any], section: str) -> Any:
    names = {f.name for f in fields(cls)}
    missing = names - values.keys()
    unknown = values.keys() - names
    if missing or unknown:
        raise ConfigError(f"[{section}]: missing {sorted(missing)} unknown {sorted(unknown)}")
    return cls(**values)


def default_state_dir(environ: Mapping[str, str]) -> Path:
    home = environ.get("HOME") or str(Path.home())
    base = environ.get("XDG_STATE_HOME") or str(Path(home) / ".local" / "state")
    return Path(base) / "fleet-telemetry"


def _build(profile: str, raw: dict[str, Any], environ: Mapping[str, str]) -> PlatformConfig:
    infra_raw = dict(_section(raw, "infra"))
    infra_raw["run_dir"] = Path(infra_raw["run_dir"]).expanduser() if infra_raw.get("run_dir") else default_state_dir(environ)
    infra = _construct(InfraConfig, infra_raw, "infra")
    for port_name in ("kafka_port", "kafka_controller_port", "mqtt_port", "moto_port"):
        port = getattr(infra, port_name)
        if not 0 < port < 65536:
            raise ConfigError(f"[infra] {port_name}={port} is not a TCP port")

    kafka_raw = _section(raw, "kafka")
    bootstrap = kafka_raw.get("bootstrap_servers") or infra.kafka_address
    replication = int(kafka_raw["replication_factor"])
    min_isr = int(kafka_raw["min_insync_replicas"])
    topics_raw = _section(raw, "topics")
    if set(topics_raw) != set(TOPIC_ROLES):
        raise ConfigError(f"[topics] must define exactly {', '.join(TOPIC_ROLES)}; has {', '.join(sorted(topics_raw))}")
    topics = tuple(_topic_spec(role, topics_raw[role], replication, min_isr) for role in TOPIC_ROLES)
    try:
        transaction_timeout = int(kafka_raw["transaction_timeout_ms"])
        broker_max_transaction_timeout = int(kafka_raw["broker_max_transaction_timeout_ms"])
        max_record_bytes = int(kafka_raw["max_record_bytes"])
    except KeyError as missing:
        raise ConfigError(f"[kafka] missing {missing.args[0]}") from None

    flink_raw = dict(_section(raw, "flink"))
    flink_raw["checkpoint_dir"] = _uri(flink_raw.get("checkpoint_dir"), infra.run_dir / "checkpoints")
    flink = _construct(FlinkConfig, flink_raw, "flink")
    if flink.restart_strategy not in ("fixed-delay", "exponential-delay"):
        raise ConfigError(f"[flink] restart_strategy={flink.restart_strategy!r}: fixed-delay or exponential-delay")
    if flink.execution_mode not in ("thread", "process"):
        raise ConfigError(f"[flink] execution_mode={flink.execution_mode!r}: thread or process")
    if flink.parallelism < 1 or flink.checkpoint_interval_ms < 10:
        raise ConfigError("[flink] parallelism must be >= 1 and checkpoint_interval_ms >= 10")
    problems = transaction_problems(
        transaction_timeout_ms=transaction_timeout,
        broker_max_transaction_timeout_ms=broker_max_transaction_timeout,
        checkpoint_interval_ms=flink.checkpoint_interval_ms,
        restart_window=restart_window_ms(flink.restart_strategy, flink.restart_attempts, flink.restart_delay_ms, flink.restart_max_delay_ms),
    )
    if problems:
        raise ConfigError(f"profile {profile!r}: " + "; ".join(problems))

    aws_raw = _section(raw, "aws")
    endpoint = aws_raw.get("endpoint_url") or None
    if endpoint == "local":
        endpoint = infra.moto_endpoint
    aws = AwsConfig(region=aws_raw["region"], endpoint_url=endpoint, allow_outside_eu=bool(aws_raw.get("allow_outside_eu", False)))
    try:
        check_residency(aws.region, allow_outside_eu=aws.allow_outside_eu)
    except ResidencyError as error:
        raise ConfigError(f"profile {profile!r}: {error}") from None

    pipeline_raw = dict(_section(raw, "pipeline"))
    pipeline_raw["bronze_path"] = _uri(pipeline_raw.get("bronze_path"), infra.run_dir / "lake" / "bronze" / "telemetry")
    pipeline = _construct(PipelineSettings, pipeline_raw, "pipeline")
    if pipeline.dedup_ttl_s < 1 or pipeline.dedup_recent_events < 1 or pipeline.batch_window_ms < 1 or pipeline.batch_shards < 1:
        raise ConfigError("[pipeline] dedup_ttl_s, dedup_recent_events, batch_window_ms and batch_shards must be >= 1")

    stores_raw = dict(_section(raw, "stores"))
    stores_raw["local_path"] = str(Path(stores_raw.get("local_path") or infra.run_dir / "hot_store.sqlite").expanduser())
    stores = _construct(StoreConfig, {**stores_raw, "region": aws.region, "endpoint_url": aws.endpoint_url,
                                      "allow_outside_eu": aws.allow_outside_eu}, "stores")
    if stores.hot_store_backend not in ("local", "timestream") or stores.status_backend not in ("local", "dynamodb"):
        raise ConfigError("[stores] hot_store_backend is local or timestream; status_backend is local or dynamodb")

    lake_raw = dict(_section(raw, "lake"))
    # Each table: its own path if set, else under base_path (itself <run_dir>/lake if empty).
    lake_base = _uri(lake_raw.pop("base_path", None), infra.run_dir / "lake").rstrip("/")
    for key, relative in LAKE_TABLES.items():
        lake_raw[key] = _uri(lake_raw.get(key), None) if lake_raw.get(key) else f"{lake_base}/{relative}"
    lake = _construct(LakeSettings, lake_raw, "lake")
    if min(lake.bronze_retention_days, lake.silver_retention_days, lake.gold_retention_days) < 1:
        raise ConfigError("[lake] retention days must be >= 1")

    alerts_raw = dict(_section(raw, "alerts"))
    if not alerts_raw.get("service_area"):
        from udfs.geofence import DEFAULT_SERVICE_AREA

        alerts_raw["service_area"] = str(DEFAULT_SERVICE_AREA)
    alerts_raw["alert_log"] = str(Path(alerts_raw.get("alert_log") or infra.run_dir / "alerts.log").expanduser())
    for key in ("low_battery_percent", "battery_rearm_percent", "offline_after_s", "input_stall_after_s", "input_lag_limit_s"):
        alerts_raw[key] = float(alerts_raw[key])
    alerts = _construct(AlertSettings, alerts_raw, "alerts")
    if alerts.battery_rearm_percent < alerts.low_battery_percent or alerts.offline_after_s <= 0:
        raise ConfigError("[alerts] battery_rearm_percent >= low_battery_percent and offline_after_s > 0")
    if alerts.storm_window_s < 1 or alerts.storm_pages_per_window < 0:
        raise ConfigError("[alerts] storm_window_s >= 1 and storm_pages_per_window >= 0")
    if not 1 <= alerts.publish_concurrency <= 64 or alerts.publish_flush_ms < 10 or alerts.publish_shards < 1:
        raise ConfigError("[alerts] publish_concurrency in 1..64, publish_flush_ms >= 10 and publish_shards >= 1")
    if not 0 < alerts.input_stall_after_s < alerts.offline_after_s or alerts.input_lag_limit_s <= 0:
        raise ConfigError(
            f"[alerts] input_stall_after_s={alerts.input_stall_after_s:g} must be > 0 and below offline_after_s="
            f"{alerts.offline_after_s:g} (an ingest outage between the two would page every vehicle offline before "
            f"the stall is noticed), and input_lag_limit_s > 0"
        )

    faults_raw = dict(_section(raw, "faults"))
    faults_raw["marker_dir"] = str(Path(faults_raw.get("marker_dir") or infra.run_dir / "faults").expanduser())
    faults = _construct(FaultSettings, faults_raw, "faults")
    from udfs.fault_injection import FailOnce

    try:
        FailOnce.parse(faults.fail_once_at, faults.marker_dir, "check")
    except ValueError as exc:
        raise ConfigError(f"[faults] {exc}") from None

    live = _construct(LiveSettings, dict(_section(raw, "live")), "live")
    live_ports = [live.map_port, live.metrics_port, live.sim_metrics_port, live.pipeline_metrics_port, live.alerts_metrics_port,
                  live.pipeline_rest_port, live.alerts_rest_port,
                  *(live.bridge_metrics_port + i for i in range(max(live.bridges, 0)))]
    if live.vehicles < 1 or live.bridges < 1 or live.round_s < 60 or live.refresh_s <= 0:
        raise ConfigError("[live] vehicles >= 1, bridges >= 1, round_s >= 60 and refresh_s > 0")
    if any(not 0 < port < 65536 for port in live_ports) or len(set(live_ports)) != len(live_ports):
        raise ConfigError(f"[live] ports must be distinct TCP ports (bridge i uses bridge_metrics_port + i): {live_ports}")
    if not 0 <= flink.rest_port < 65536:
        raise ConfigError(f"[flink] rest_port={flink.rest_port} is not a TCP port (0: any free one)")
    if not 0 <= flink.prometheus_port < 65536:
        raise ConfigError(f"[flink] prometheus_port={flink.prometheus_port} is not a TCP port (0: off)")

    schema_raw = dict(_section(raw, "schema"))
    limits = {"max_payload_bytes", "max_depth", "max_string_chars", "max_list_items"}
    if set(schema_raw) != limits:
        raise ConfigError(f"[schema]: missing {sorted(limits - set(schema_raw))} unknown {sorted(set(schema_raw) - limits)}")
    try:
        schema = ValidationPolicy(**{key: int(value) for key, value in schema_raw.items()})
    except ValueError as exc:
        raise ConfigError(f"[schema] {exc}") from None
    problems = record_size_problems(max_payload_bytes=schema.max_payload_bytes, max_record_bytes=max_record_bytes)
    if problems:
        raise ConfigError(f"profile {profile!r}: " + "; ".join(problems))

    return PlatformConfig(
        profile=profile, infra=infra, kafka=KafkaConfig(bootstrap, topics, transaction_timeout, broker_max_transaction_timeout, max_record_bytes), flink=flink, aws=aws,
        pipeline=pipeline, stores=stores, lake=lake, alerts=alerts, faults=faults, live=live, schema=schema,
    )


def _uri(value: str | None, default: Path | None) -> str:
    """A path or URI from config as a URI; empty means `default`."""
    if not value:
        assert default is not None
        return default.as_uri()
    if "://" in value:
        return value
    return Path(value).expanduser().resolve().as_uri()


def _topic_spec(role: str, raw: dict[str, Any], replication: int, min_isr: int) -> TopicSpec:
    unknown = raw.keys() - {"name", "partitions", "retention_ms", "compression", "compacted"}
    if unknown:
        raise ConfigError(f"[topics.{role}]: unknown keys {sorted(unknown)}")
    partitions = int(raw["partitions"])
    if partitions < 1:
        raise ConfigError(f"[topics.{role}] partitions must be >= 1")
    configs = {
        "compression.type": str(raw.get("compression", "producer")),
        "min.insync.replicas": str(min_isr),
    }
    if raw.get("compacted"):
        configs["cleanup.policy"] = "compact"
    else:
        configs["cleanup.policy"] = "delete"
        configs["retention.ms"] = str(int(raw["retention_ms"]))
    return TopicSpec(role, str(raw["name"]), partitions, replication, configs)
