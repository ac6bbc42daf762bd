"""`telemetry faults run`: the failure harness. Exactly-once is a claim until something is killed
and every record is counted afterwards.

Per failure kind, on a real standalone cluster (infra.flink_cluster, jobs submitted with
`flink run -py`), with topics, paths and consumer groups of its own:

  1. a known input (a simulated fleet with duplicates, invalid payloads, vehicles going silent,
     leaving the area, running flat) is sent to Kafka in real time while the telemetry pipeline
     and the anomaly job run;
  2. partway through, one failure is injected;
  3. after the input, once the sinks are complete (or a deadline passes), every sink is read back
     and compared with what the input says it must hold (fleet.harness.expectations).

The result is one table row per failure: records in, out per sink, lost, duplicated, restarts.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fleet.config import PlatformConfig, load_config
from fleet.harness.expectations import Expectation, expect
from fleet.harness.sinks import SinkContents, read_sinks
from infra.flink_cluster import PROJECT_ROOT, FlinkCluster
from infra.manager import LocalInfra
from udfs.platform_alerts import INPUT_RESTORED, INPUT_STALLED

FAULTS: dict[str, str] = {
    "taskmanager_kill": "the TaskManager JVM is SIGKILLed mid-stream; a new one starts (as Kubernetes restarts a pod)",
    "udf_failure": "a Python user function raises on one record, once, in both jobs",
    "kafka_restart": "the Kafka broker is stopped and started again",
    "hot_store_outage": "the hot store is unavailable for the outage: local, another writer holds its write lock "
                        "(SQLite: database is locked); timestream, the AWS endpoint refuses and resets connections",
    "ingest_outage": "nothing reaches Kafka for the outage (the ingest path down; vehicles spool and drain when it is back), "
                     "longer than the offline timeout; one vehicle never comes back",
}
# Not a failure, the planned way a job is upgraded on Kubernetes, checked the same way.
OPERATIONS: dict[str, str] = {
    "savepoint_upgrade": "both jobs stopped with a savepoint mid-stream and started again from it (flink stop / run -s)",
}
BASELINE = "none"
JOB_FILES = {"pipeline": PROJECT_ROOT / "jobs" / "telemetry_pipeline.py", "alerts": PROJECT_ROOT / "jobs" / "anomaly_detection.py"}


@dataclass(frozen=True)
class HarnessPlan:
    vehicles: int = 60
    duration_s: float = 75.0
    duplicates: int = 40
    out_of_order: int = 10
    malformed: int = 8
    schema_invalid: int = 8
    offline_vehicles: int = 2
    offline_s: float = 55.0
    geofence_exits: int = 2
    low_batteries: int = 2
    # Longer than any pause a failure causes (a savepoint upgrade's resubmission: 20-40 s), so
    # only the planned silences are offline episodes (fault_expectations counts near misses).
    offline_after_s: float = 45.0
    # Parked vehicles report every 2 s here, not 10 s: the longest normal silence then stays far
    # below the offline timeout even when an outage delays it.
    parked_interval_ms: int = 2_000
    fault_at: float = 0.4  # share of the input sent before the failure
    outage_s: float = 30.0
    # The alerts job's input stall period: above the pauses a failure causes in what reaches Kafka
    # (none: the input keeps flowing while a job restarts), below the offline timeout.
    input_stall_after_s: float = 15.0
    checkpoint_interval_ms: int = 1000
    settle_timeout_s: float = 150.0  # after the input: how long the sinks may take to complete
    store: str = "local"  # local (SQLite) | timestream (Timestream + DynamoDB on moto, through a cuttable proxy)
    seed: int = 7

    def __post_init__(self) -> None:
        if self.store not in ("local", "timestream"):
            raise ValueError(f"store={self.store!r}: local or timestream")
        if not 0 < self.input_stall_after_s < self.offline_after_s:
            raise ValueError(f"input_stall_after_s={self.input_stall_after_s:g} must be in (0, offline_after_s={self.offline_after_s:g})")
        if self.offline_vehicles and not self.offline_after_s + 5 <= self.offline_s <= self.duration_s - 5:
            raise ValueError(
                f"an offline episode needs offline_after_s + 5 <= offline_s <= duration_s - 5 (a silence clearly past the "
                f"timeout that ends within the input); got {self.offline_after_s:g}, {self.offline_s:g}, {self.duration_s:g}"
            )


@dataclass(frozen=True)
class SinkTally:
    records: int
    lost: int
    duplicated: int
    unexpected: int  # records the input never had


@dataclass(frozen=True)
class ScenarioResult:
    fault: str
    sent: int
    unique_valid: int
    rejects: int
    enriched: SinkTally
    bronze: SinkTally
    hot_store: SinkTally
    dlq: SinkTally
    alerts_expected: int
    alerts_raised: int  # distinct expected alert ids found
    alerts_unexpected: int
    alert_deliveries: int  # records on fleet-alerts (at least once: repeats share an alert_id)
    restarts: dict[str, int]
    fault_detail: str
    store: str
    ambiguous_gaps: int
    seconds: float
    notes: list[str] = field(default_factory=list)
    # Timestream replaces a record of the same identity (dimensions, time, measure name); moto
    # stores every write, so with that backend the hot store is tallied as Timestream would hold it
    # (a second identity for one event is a duplicate) and the writes that replaced one counted here.
    hot_store_rewrites: int = 0
    alerts_expected_by_kind: dict[str, int] = field(default_factory=dict)
    # Platform alerts (input_stalled / input_restored) for incidents that began before the input
    # ended (its end is an ingest outage too): one pair for an ingest outage, none for a run without
    # a failure, at most one pair for a failure (a restart can put the alerts job behind).
    platform_alerts: dict[str, int] = field(default_factory=dict)
    platform_expected: tuple[int, int] = (0, 0)  # (least, most) input_stalled episodes

    @property
    def lost(self) -> int:
        return self.enriched.lost + self.bronze.lost + self.hot_store.lost + self.dlq.lost + (self.alerts_expected - self.alerts_raised)

    @property
    def duplicated(self) -> int:
        return self.enriched.duplicated + self.bronze.duplicated + self.hot_store.duplicated + self.dlq.duplicated

    @property
    def platform_ok(self) -> bool:
        stalled, restored = self.platform_alerts.get(INPUT_STALLED, 0), self.platform_alerts.get(INPUT_RESTORED, 0)
        least, most = self.platform_expected
        return stalled == restored and least <= stalled <= most

    @property
    def exact(self) -> bool:
        tallies = (self.enriched, self.bronze, self.hot_store, self.dlq)
        return (self.lost == 0 and self.duplicated == 0 and all(t.unexpected == 0 for t in tallies) and self.alerts_unexpected == 0
                and self.platform_ok)


def tally(expected: Counter | frozenset, got: Counter) -> SinkTally:
    """Compare a sink's keys (with copies) against the expected keys (each once, or a Counter)."""
    want = expected if isinstance(expected, Counter) else Counter(dict.fromkeys(expected, 1))
    lost = sum(max(0, n - got.get(k, 0)) for k, n in want.items())
    duplicated = sum(max(0, n - want[k]) for k, n in got.items() if k in want)
    unexpected = sum(n for k, n in got.items() if k not in want)
    return SinkTally(sum(got.values()), lost, duplicated, unexpected)


class Harness:
    """Local Kafka + moto and a standalone Flink cluster for a series of scenarios."""

    def __init__(self, config: PlatformConfig, plan: HarnessPlan = HarnessPlan(), *, out: Callable[[str], None] = print):
        self.config = config
        self.plan = plan
        self.out = out
        self.infra = LocalInfra(config.infra)
        self.cluster = FlinkCluster(config.infra.run_dir, config.infra.host)

    def __enter__(self) -> Harness:
        """Start what is not running yet; on exit stop only that (a test session shares its
        Kafka with other tests)."""
        self.out(f"servers: Kafka, moto and a Flink standalone cluster in {self.config.infra.run_dir}")
        self._started = [s.name for s in self.infra.status(["kafka", "moto"]) if s.pid is None]
        self.infra.up(["kafka", "moto"])
        from infra.fault_proxy import TcpProxy

        # Every AWS call of the jobs (Timestream, DynamoDB, SNS) goes through this, so an outage
        # can be made without stopping moto (which would lose its in-memory data).
        self.aws_proxy = TcpProxy(self.config.infra.host, self.config.infra.moto_port, self.config.infra.host)
        self.aws_proxy.start()
        self._cluster_started = self.cluster.jobmanager.pid() is None
        self.cluster.up()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.aws_proxy.stop()
        if self._cluster_started:
            self.cluster.down()
        if self._started:
            self.infra.down(self._started)

    # ---- one scenario ----------------------------------------------------------------------

    def run(self, fault: str) -> ScenarioResult:
        if fault not in FAULTS and fault not in OPERATIONS and fault != BASELINE:
            raise ValueError(f"unknown fault {fault!r}; known: {', '.join([*FAULTS, *OPERATIONS, BASELINE])}")
        started = time.monotonic()
        plan = self.plan
        tag = f"{fault.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        folder = self.config.infra.run_dir / "faults" / tag
        timed, fleet_ids = self._input(plan)
        outage = ""
        if fault == "ingest_outage":
            timed, outage = _with_ingest_outage(timed, plan)
        expectation = self._expect(timed, plan)
        settings = self._settings(tag, folder, plan)
        if fault == "udf_failure":
            settings["faults.fail_once_at"] = self._victim(timed, plan)
        config = load_config(self.config.profile, settings, environ={})
        self.out(f"\n== {fault}: {FAULTS.get(fault) or OPERATIONS.get(fault) or 'no failure (baseline)'}")
        self.out(f"   input: {expectation.sent} records over {plan.duration_s:.0f}s, {len(expectation.unique_valid)} unique valid, "
                 f"{sum(expectation.rejects.values())} invalid, {len(expectation.alert_ids)} alerts expected {expectation.alerts_by_kind}")
        self._prepare(config, fleet_ids)
        self._args = ["--profile", config.profile, *(a for k, v in settings.items() for a in ("--set", f"{k}={v}")), "--start", "earliest"]
        self._folder = folder
        self._jobs = jobs = self._submit()
        try:
            detail, end_of_input = self._drive(config, timed, fault, plan)
            detail = outage or detail
            end_of_input_ms = int(time.time() * 1000)
            restarts = {name: self.cluster.restarts(job_id) for name, job_id in jobs.items()}
            contents = self._settle(config, folder, jobs, expectation, end_of_input, plan)
            restarts = {name: max(restarts[name], self._safe_restarts(job_id)) for name, job_id in jobs.items()}
        finally:
            for job_id in jobs.values():
                self._cancel_quietly(job_id)
        result = self._result(fault, expectation, contents, restarts, detail, time.monotonic() - started, plan.store, end_of_input_ms)
        self.out("   " + summary_line(result))
        return result

    def _input(self, plan: HarnessPlan) -> tuple[list[tuple[int, Any]], list[int]]:
        from device_sim.fleet_model import FleetSpec
        from device_sim.scenario import Scenario, ScenarioKnobs

        knobs = ScenarioKnobs(
            duplicates=plan.duplicates, out_of_order=plan.out_of_order, malformed=plan.malformed,
            schema_invalid=plan.schema_invalid, offline_vehicles=plan.offline_vehicles, offline_s=plan.offline_s,
            geofence_exits=plan.geofence_exits, low_batteries=plan.low_batteries, seed=plan.seed,
        )
        from device_sim.report_rates import RateModes

        scenario = Scenario(FleetSpec(vehicles=plan.vehicles, seed=plan.seed), knobs, duration_s=plan.duration_s,
                            modes=RateModes(parked_ms=plan.parked_interval_ms))
        return list(scenario.timed()), [v.vehicle_id for v in scenario.fleet.vehicles]

    def _expect(self, timed: list[tuple[int, Any]], plan: HarnessPlan) -> Expectation:
        from udfs.alert_rules import AlertPolicy
        from udfs.geofence import load_service_area

        alerts = self.config.alerts
        policy = AlertPolicy(alerts.low_battery_percent, alerts.battery_rearm_percent, plan.offline_after_s)
        area = load_service_area(alerts.service_area)
        return expect(timed, policy, area.contains, stall_after_ms=int(plan.input_stall_after_s * 1000))

    @staticmethod
    def _victim(timed: list[tuple[int, Any]], plan: HarnessPlan) -> str:
        """The valid event the user functions fail on: the first one past `fault_at` of the input."""
        from udfs.telemetry_schema import parse_timestamp_ms

        start, end = timed[0][0], timed[-1][0]
        at = start + (end - start) * plan.fault_at
        for send_ms, item in timed:
            if send_ms >= at and isinstance(item, dict) and isinstance(item.get("vehicle_id"), int):
                millis = parse_timestamp_ms(item.get("timestamp"))
                if millis is not None:
                    return f"{item['vehicle_id']}@{millis}"
        raise RuntimeError("no valid event after the fault point to fail on")

    def _settings(self, tag: str, folder: Path, plan: HarnessPlan) -> dict[str, str]:
        infra = self.config.infra
        return {
            "infra.run_dir": str(infra.run_dir), "infra.host": infra.host,
            "infra.kafka_port": str(infra.kafka_port), "infra.kafka_controller_port": str(infra.kafka_controller_port),
            "infra.mqtt_port": str(infra.mqtt_port), "infra.moto_port": str(infra.moto_port),
            **{f"topics.{role}.name": f"{role}-{tag}" for role in ("telemetry", "enriched", "dlq", "alerts", "registry")},
            "pipeline.group_id": f"pipeline-{tag}", "pipeline.transactional_id_prefix": f"pipeline-{tag}",
            "pipeline.bronze_path": (folder / "bronze").as_uri(),
            "stores.local_path": str(folder / "hot_store.sqlite"),
            "alerts.group_id": f"alerts-{tag}", "alerts.offline_after_s": str(plan.offline_after_s),
            "alerts.input_stall_after_s": str(plan.input_stall_after_s),
            "alerts.alert_log": str(folder / "alerts.log"), "alerts.sns_topic": f"fleet-alerts-{tag}",
            "flink.checkpoint_interval_ms": str(plan.checkpoint_interval_ms),
            "flink.checkpoint_dir": (folder / "checkpoints").as_uri(),
            # Production's strategy (exponential delay), with shorter backoffs: the longest outage
            # here (30 s) costs a handful of attempts and recovery follows within 4 s.
            "flink.restart_strategy": "exponential-delay", "flink.restart_attempts": "20",
            "flink.restart_delay_ms": "500", "flink.restart_max_delay_ms": "4000",
            "faults.marker_dir": str(folder / "markers"),
            "aws.endpoint_url": self.aws_proxy.endpoint,
            **({
                "stores.hot_store_backend": "timestream", "stores.status_backend": "dynamodb",
                "stores.timestream_database": f"mobility_{tag.replace('-', '_')}", "stores.dynamodb_table": f"vehicle-status-{tag}",
            } if plan.store == "timestream" else {}),
        }

    def _prepare(self, config: PlatformConfig, vehicle_ids: list[int]) -> None:
        from connectors.kafka_topics import admin_client, ensure_topics
        from connectors.vehicle_registry_topic import publish_registry
        from device_sim.registry import registry_records

        ensure_topics(admin_client(config.kafka.bootstrap_servers), config.kafka.topics)
        if config.stores.hot_store_backend == "timestream":
            from connectors.hot_store import open_hot_store, open_status_store

            hot, status = open_hot_store(config.stores), open_status_store(config.stores)
            try:
                hot.ensure_database_and_table(config.stores.retention_hours)
                status.ensure_table()
            finally:
                hot.close()
                status.close()
        publish_registry(config.kafka.bootstrap_servers, config.kafka.topic("registry").name, registry_records(vehicle_ids, seed=self.plan.seed))

    def _submit(self, savepoints: dict[str, str] | None = None) -> dict[str, str]:
        # Two `flink run` clients at once: each is a JVM plus a Python process, ~12 s alone.
        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = {
                name: pool.submit(self.cluster.submit, path, self._args, savepoint=(savepoints or {}).get(name))
                for name, path in JOB_FILES.items()
            }
            jobs = {name: future.result() for name, future in futures.items()}
        for job_id in jobs.values():
            self.cluster.wait_running(job_id)
            self.cluster.wait_for_checkpoints(job_id, 0, timeout_s=60)
        self.out(f"   jobs running: {', '.join(f'{n} {j}' for n, j in jobs.items())}")
        return jobs

    def _drive(self, config: PlatformConfig, timed: list[tuple[int, Any]], fault: str, plan: HarnessPlan) -> tuple[str, float]:
        """Send the input in real time; inject the fault when `fault_at` of it has gone out."""
        from device_sim.kafka_output import produce_events
        from device_sim.pacing import realtime

        reports: list[Any] = []
        errors: list[BaseException] = []

        def send() -> None:
            try:
                reports.append(produce_events(config.kafka.bootstrap_servers, config.kafka.topic("telemetry").name,
                                              realtime(timed), flush_timeout_s=180.0))
            except BaseException as exc:  # noqa: BLE001 - surfaced after join
                errors.append(exc)

        sender = threading.Thread(target=send, name="harness-input", daemon=True)
        began = time.monotonic()
        sender.start()
        span_s = (timed[-1][0] - timed[0][0]) / 1000
        time.sleep(max(0.0, span_s * plan.fault_at - (time.monotonic() - began)))
        detail = self._inject(fault, config, plan)
        self.out(f"   fault at {time.monotonic() - began:.1f}s: {detail}")
        sender.join()
        if errors:
            raise errors[0]
        report = reports[0]
        if report.failed:
            raise RuntimeError(f"the harness's own producer lost {report.failed} records: {report.first_error}")
        return detail, time.monotonic()

    def _inject(self, fault: str, config: PlatformConfig, plan: HarnessPlan) -> str:
        t0 = time.monotonic()
        if fault == "taskmanager_kill":
            pid = self.cluster.kill_taskmanager()
            self.cluster.start_taskmanager()
            return f"TaskManager pid {pid} killed; a new one registered after {time.monotonic() - t0:.1f}s"
        if fault == "kafka_restart":
            kafka = self.infra.components["kafka"]
            kafka.down()
            down_s = time.monotonic() - t0
            kafka.up()
            return f"broker stopped in {down_s:.1f}s, serving again after {time.monotonic() - t0:.1f}s"
        if fault == "hot_store_outage" and plan.store == "timestream":
            self.aws_proxy.cut()
            threading.Timer(plan.outage_s, self.aws_proxy.restore).start()
            return f"AWS endpoint (Timestream, DynamoDB, SNS) refusing connections for {plan.outage_s:.0f}s"
        if fault == "hot_store_outage":
            threading.Thread(target=_hold_write_lock, args=(Path(config.stores.local_path), plan.outage_s), daemon=True).start()
            return f"hot store write-locked for {plan.outage_s:.0f}s"
        if fault == "udf_failure":
            return f"user functions fail once on event {config.faults.fail_once_at}"
        if fault == "ingest_outage":
            return f"nothing reaches Kafka for {plan.outage_s:g}s (the input is shaped so)"
        if fault == "savepoint_upgrade":
            target = (self._folder / "savepoints").as_uri()
            savepoints = {name: self.cluster.stop_with_savepoint(job_id, target) for name, job_id in self._jobs.items()}
            stopped_s = time.monotonic() - t0
            self._jobs.update(self._submit(savepoints))
            restored = {name: self.cluster.restored_from(job_id) for name, job_id in self._jobs.items()}
            if restored != savepoints:
                raise RuntimeError(f"jobs did not restore from their savepoints: {restored} != {savepoints}")
            return (f"stopped with savepoints in {stopped_s:.1f}s, both restored from them and running after "
                    f"{time.monotonic() - t0:.1f}s")
        return "none"

    def _settle(self, config: PlatformConfig, folder: Path, jobs: dict[str, str], expectation: Expectation,
                end_of_input: float, plan: HarnessPlan) -> SinkContents:
        """Wait for the sinks to hold what they should (or the deadline), then two more
        checkpoints (a late duplicate would show), and read them. The alert job is cancelled
        before the whole fleet's silence after the input could raise offline alerts."""
        topics = config.kafka
        stores = config.stores
        timestream = (self.config.infra.moto_endpoint, stores.timestream_database, stores.timestream_table) if stores.hot_store_backend == "timestream" else None
        read = lambda: read_sinks(  # noqa: E731 - one call, used twice
            topics.bootstrap_servers, enriched_topic=topics.topic("enriched").name, dlq_topic=topics.topic("dlq").name,
            alerts_topic=topics.topic("alerts").name, bronze_root=folder / "bronze", hot_store=Path(stores.local_path),
            timestream=timestream,
        )
        alerts_deadline = end_of_input + plan.offline_after_s - 5
        deadline = end_of_input + plan.settle_timeout_s
        alerts_open = True
        while True:
            contents = read()
            if alerts_open and (expectation.alert_ids <= set(contents.alerts) or time.monotonic() > alerts_deadline):
                self._cancel_quietly(jobs["alerts"])
                alerts_open = False
            if not alerts_open and _complete(contents, expectation) or time.monotonic() > deadline:
                break
            time.sleep(1.0)
        if self.cluster.job_state(jobs["pipeline"]) == "RUNNING":
            done = self.cluster.completed_checkpoints(jobs["pipeline"])
            self.cluster.wait_for_checkpoints(jobs["pipeline"], done + 1, timeout_s=60)
        return read()

    def _result(self, fault: str, expectation: Expectation, contents: SinkContents, restarts: dict[str, int], detail: str,
                seconds: float, store: str, end_of_input_ms: int) -> ScenarioResult:
        expected_alerts = expectation.alert_ids
        platform = {a for a, kind in contents.alert_kinds.items() if kind in (INPUT_STALLED, INPUT_RESTORED)}
        got = set(contents.alerts) - platform
        platform_kinds = Counter(contents.alert_kinds[a] for a in platform if contents.alert_episodes[a] < end_of_input_ms)
        hot_store, rewrites = contents.hot_store, contents.hot_store_rewrites
        return ScenarioResult(
            fault=fault, sent=expectation.sent, unique_valid=len(expectation.unique_valid),
            rejects=sum(expectation.rejects.values()),
            enriched=tally(expectation.unique_valid, contents.enriched),
            bronze=tally(expectation.unique_valid, contents.bronze),
            hot_store=tally(expectation.unique_valid, hot_store),
            dlq=tally(expectation.rejects, contents.dlq),
            alerts_expected=len(expected_alerts), alerts_raised=len(expected_alerts & got),
            alerts_unexpected=len(got - expected_alerts), alert_deliveries=contents.alert_records,
            restarts=restarts, fault_detail=detail, store=store, ambiguous_gaps=expectation.ambiguous_gaps, seconds=seconds,
            hot_store_rewrites=rewrites, alerts_expected_by_kind=expectation.alerts_by_kind,
            platform_alerts=dict(sorted(platform_kinds.items())),
            platform_expected=(1, 1) if fault == "ingest_outage" else (0, 0) if fault == BASELINE else (0, 1),
            notes=[f"unexpected alert {contents.alert_kinds[a]} {a}" for a in sorted(got - expected_alerts)][:5],
        )

    def _safe_restarts(self, job_id: str) -> int:
        try:
            return self.cluster.restarts(job_id)
        except OSError:
            return 0

    def _cancel_quietly(self, job_id: str) -> None:
        try:
            if self.cluster.job_state(job_id) not in ("CANCELED", "FINISHED", "FAILED"):
                self.cluster.cancel(job_id)
        except OSError:
            pass


def _with_ingest_outage(timed: list[tuple[int, Any]], plan: HarnessPlan) -> tuple[list[tuple[int, Any]], str]:
    """The input as an outage of the ingest path shapes it: nothing is sent from `fault_at` for
    `outage_s`; what the vehicles sent meanwhile (their spools) goes out in a burst when it ends, in
    order; one vehicle, reporting right up to the outage, is never heard from again."""
    start, end = timed[0][0], timed[-1][0]
    cut = int(start + (end - start) * plan.fault_at)
    back = cut + int(plan.outage_s * 1000)
    if back >= end:
        raise ValueError(f"an outage of {plan.outage_s:g}s from {plan.fault_at:g} of the input ends after it")
    before = [item["vehicle_id"] for send_ms, item in timed if send_ms < cut and isinstance(item, dict) and isinstance(item.get("vehicle_id"), int)]
    silent = before[-1]
    shaped = [
        (max(send_ms, back) if send_ms >= cut else send_ms, item)
        for send_ms, item in timed
        if not (send_ms >= cut and isinstance(item, dict) and item.get("vehicle_id") == silent)
    ]
    return shaped, f"nothing sent for {plan.outage_s:g}s, then the spooled records at once; vehicle {silent} silent from then on"


def _complete(contents: SinkContents, expectation: Expectation) -> bool:
    unique = len(expectation.unique_valid)
    return (
        len(contents.enriched) >= unique and len(contents.bronze) >= unique and len(contents.hot_store) >= unique
        and sum(contents.dlq.values()) >= sum(expectation.rejects.values())
    )


def _hold_write_lock(path: Path, seconds: float) -> None:
    """What an unavailable SQLite store looks like to its writers: someone else holds the write
    lock. Writers wait (busy timeout) and then fail with "database is locked"."""
    conn = sqlite3.connect(path, timeout=60, isolation_level=None)
    try:
        conn.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        conn.execute("ROLLBACK")
    finally:
        conn.close()


# ---- reporting ---------------------------------------------------------------------------------

HEADER = ("failure", "store", "in", "unique valid", "enriched", "bronze", "hot store", "dlq", "alerts exp/got (deliveries)", "lost", "duplicated", "restarts")


def table_rows(results: list[ScenarioResult]) -> list[tuple[str, ...]]:
    return [
        (
            r.fault, r.store, str(r.sent), str(r.unique_valid), str(r.enriched.records), str(r.bronze.records), str(r.hot_store.records),
            str(r.dlq.records), f"{r.alerts_expected}/{r.alerts_raised} ({r.alert_deliveries})", str(r.lost), str(r.duplicated),
            "/".join(str(r.restarts.get(k, 0)) for k in ("pipeline", "alerts")),
        )
        for r in results
    ]


def format_table(results: list[ScenarioResult]) -> str:
    rows = [HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(HEADER))]
    return "\n".join("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row)).rstrip() for row in rows)


def markdown_table(results: list[ScenarioResult]) -> str:
    rows = [HEADER, tuple("---" for _ in HEADER), *table_rows(results)]
    return "\n".join("| " + " | ".join(row) + " |" for row in rows)


def summary_line(r: ScenarioResult) -> str:
    verdict = "EXACT" if r.exact else "MISMATCH"
    line = (f"{verdict}: enriched {r.enriched.records}, bronze {r.bronze.records}, hot store {r.hot_store.records} of "
            f"{r.unique_valid}; dlq {r.dlq.records} of {r.rejects}; alerts {r.alerts_raised}/{r.alerts_expected} "
            f"({r.alert_deliveries} deliveries); lost {r.lost}, duplicated {r.duplicated}; restarts {r.restarts}; {r.seconds:.0f}s")
    if r.platform_alerts:
        line += f"; platform alerts {r.platform_alerts}"
    if r.hot_store_rewrites:
        line += f"; {r.hot_store_rewrites} Timestream rewrites (no-ops there)"
    if r.ambiguous_gaps:
        line += f"; {r.ambiguous_gaps} send gaps near the offline timeout"
    return line + "".join(f"\n   note: {n}" for n in r.notes)


def write_report(results: list[ScenarioResult], plan: HarnessPlan, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"faults-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.write_text(json.dumps({
        "plan": asdict(plan),
        "results": [{**asdict(r), "lost": r.lost, "duplicated": r.duplicated, "exact": r.exact} for r in results],
        "markdown": markdown_table(results),
    }, indent=2))
    return path


def run_harness(config: PlatformConfig, faults: list[str], plan: HarnessPlan = HarnessPlan(), *, out: Callable[[str], None] = print) -> list[ScenarioResult]:
    results = []
    with Harness(config, plan, out=out) as harness:
        for fault in faults:
            results.append(harness.run(fault))
    return results
