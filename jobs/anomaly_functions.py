"""Python functions of the anomaly-detection job: per-vehicle alert state and the offline timer,
and the notifier that fans alerts out to SNS and the local log. Rules live in udfs.alert_rules."""

from __future__ import annotations

from typing import Any, Iterable

import orjson
from pyflink.common import Types
from pyflink.datastream.functions import KeyedProcessFunction, ProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from connectors.alert_log import AlertLog
from connectors.hot_store import StoreConfig
from udfs.alert_rules import OFFLINE, AlertPolicy, VehicleAlertState, on_event, on_silence
from udfs.fault_injection import FailOnce
from udfs.geofence import load_service_area
from udfs.telemetry_schema import parse_timestamp_ms


def _decode(stored: str | None) -> tuple[VehicleAlertState, int | None]:
    if not stored:
        return VehicleAlertState(), None
    values = orjson.loads(stored)
    return VehicleAlertState.from_tuple(values[:-1]), values[-1]


def _encode(state: VehicleAlertState, timer_at: int | None) -> str:
    return orjson.dumps([*state.to_tuple(), timer_at]).decode()


class AlertDetector(KeyedProcessFunction):
    """Keyed by vehicle. One ValueState holds the rules' state and the pending offline timer.

    The offline timer is moved forward on every event (delete the old one, register the new one),
    rounded up to `timer_granularity_ms` so a vehicle at 5 Hz moves it once a second, not five
    times. Timers and state are checkpointed: a restart neither re-raises an open episode nor
    forgets a vehicle that was about to go offline.
    """

    def __init__(self, policy: AlertPolicy, service_area_path: str, timer_granularity_ms: int, fail_once: FailOnce | None = None):
        self.policy = policy
        self.fail_once = fail_once
        self.service_area_path = service_area_path
        self.granularity = max(1, timer_granularity_ms)

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("vehicle-alert-state", Types.STRING()))
        self.area = load_service_area(self.service_area_path)
        self.offline_ms = int(self.policy.offline_after_s * 1000)
        self.raised = runtime_context.get_metrics_group().counter("alerts_raised")

    def process_element(self, row: Any, ctx: KeyedProcessFunction.Context) -> Iterable[str]:
        event_time_ms, ingested_at_ms, payload = row[1], row[2], row[3]
        if self.fail_once is not None:
            self.fail_once.check(row[0], event_time_ms)
        state, timer_at = _decode(self.state.value())
        state, alerts = on_event(state, orjson.loads(payload), event_time_ms, self.area.contains, self.policy)
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        target = -(-(now + self.offline_ms) // self.granularity) * self.granularity
        if target != timer_at:
            if timer_at is not None:
                timers.delete_processing_time_timer(timer_at)
            timers.register_processing_time_timer(target)
            timer_at = target
        self.state.update(_encode(state, timer_at))
        for alert in alerts:
            self.raised.inc()
            alert["ingested_at_ms"] = ingested_at_ms
            alert["raised_at_ms"] = now
            yield orjson.dumps(alert).decode()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable[str]:
        state, timer_at = _decode(self.state.value())
        if timer_at != timestamp:  # a timer that was moved on but fired in the same instant
            return
        state, alerts = on_silence(state, ctx.get_current_key(), self.policy)
        self.state.update(_encode(state, None))
        for alert in alerts:
            self.raised.inc()
            alert["ingested_at_ms"] = None
            alert["raised_at_ms"] = timestamp
            yield orjson.dumps(alert).decode()


class AlertNotifier(ProcessFunction):
    """Publishes each alert to SNS and appends it to the local log, marks offline vehicles in the
    vehicle status table, then passes the alert on to Kafka.

    A publish that still fails after retries fails the job: Flink restarts from the checkpoint and
    the replay raises the same alert (same id) again, so nothing is lost (at least once).
    """

    def __init__(self, aws: StoreConfig, sns_topic: str, alert_log: str, *, to_sns: bool = True, to_status: bool = False):
        self.aws = aws
        self.sns_topic = sns_topic
        self.alert_log = alert_log
        self.to_sns = to_sns
        self.to_status = to_status  # mark vehicles offline in the pipeline's vehicle status table

    def open(self, runtime_context: RuntimeContext) -> None:
        self.log = AlertLog(self.alert_log) if self.alert_log else None
        self.sns = None
        if self.to_sns:
            from connectors.sns_alerts import SnsAlertPublisher

            self.sns = SnsAlertPublisher(self.aws, self.sns_topic)
            self.sns.ensure_topic()
        self.status = None
        if self.to_status:
            from connectors.hot_store import open_status_store

            self.status = open_status_store(self.aws)

    def close(self) -> None:
        if self.status is not None:
            self.status.close()

    def process_element(self, text: str, ctx: ProcessFunction.Context) -> Iterable[str]:
        alert = orjson.loads(text)
        if self.sns is not None:
            self.sns.publish(alert)
        if self.log is not None:
            self.log.append(alert)
        if self.status is not None and alert["kind"] == OFFLINE:
            self.status.mark_offline(alert["vehicle_id"], parse_timestamp_ms(alert["episode_start"]))
        yield text
