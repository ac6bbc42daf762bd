"""The anomaly job's Python operator: a batch of raw payloads of one shard in, alerts out.

Per event: parse + validate (rejects are only counted: the pipeline already sends them to the DLQ),
then the rules of udfs.alert_rules against the vehicle's state. Offline detection needs no timer
per vehicle: each vehicle's state holds its deadline (processing time of its last event plus the
offline timeout, rounded up to the timer granularity), and the shard has one processing-time timer
at the earliest deadline among its vehicles; when it fires, every vehicle past its deadline goes
offline once, and the timer moves to the next earliest deadline.

State: MapState vehicle_id → JSON [rule state..., deadline], under the shard key. The operator
keeps a full copy of each shard it has touched (loaded once from state after every (re)start,
since `open()` starts empty), so the timer can scan a shard without reading state, and writes the
changed vehicles back with one `put_all` per batch or timer. Timers are Flink's, checkpointed: a
restart neither re-raises an open episode nor forgets a vehicle that was about to go offline.
"""

from __future__ import annotations

from typing import Any, Iterable

import orjson
from pyflink.common import Row, Types
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from udfs.alert_rules import AlertPolicy, VehicleAlertState, is_late, on_event, on_silence
from udfs.fault_injection import FailOnce
from udfs.geofence import load_service_area
from udfs.telemetry_schema import DEFAULT_POLICY, Rejection, ValidationPolicy, parse, parse_timestamp_ms

# One vehicle's entry: (VehicleAlertState, deadline_ms or None once it is offline / never seen).
_Entry = tuple[VehicleAlertState, Any]


def _decode(stored: str) -> _Entry:
    values = orjson.loads(stored)
    return VehicleAlertState.from_tuple(values[:-1]), values[-1]


def _encode(entry: _Entry) -> str:
    return orjson.dumps([*entry[0].to_tuple(), entry[1]]).decode()


class AlertBatchDetector(KeyedProcessFunction):
    def __init__(
        self, policy: AlertPolicy, service_area_path: str, timer_granularity_ms: int, fail_once: FailOnce | None = None,
        schema: ValidationPolicy = DEFAULT_POLICY,
    ):
        self.policy = policy
        self.schema = schema
        self.service_area_path = service_area_path
        self.granularity = max(1, timer_granularity_ms)
        self.fail_once = fail_once

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_map_state(MapStateDescriptor("vehicle-alert-state", Types.LONG(), Types.STRING()))
        self.area = load_service_area(self.service_area_path)
        self.offline_ms = int(self.policy.offline_after_s * 1000)
        self.shards: dict[int, dict[int, _Entry]] = {}
        self.timer_at: dict[int, int] = {}  # the shard timer this instance registered (a cache)
        metrics = runtime_context.get_metrics_group()
        self.raised = metrics.counter("alerts_raised")
        self.rejected = metrics.counter("payloads_rejected")
        self.late = metrics.counter("late_readings")  # older than the vehicle's newest: no episode change

    def _shard(self, shard: int) -> dict[int, _Entry]:
        vehicles = self.shards.get(shard)
        if vehicles is None:
            vehicles = {vehicle: _decode(stored) for vehicle, stored in self.state.items()}
            self.shards[shard] = vehicles
        return vehicles

    def process_element(self, batch: Row, ctx: KeyedProcessFunction.Context) -> Iterable[str]:
        shard = ctx.get_current_key()
        vehicles = self._shard(shard)
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        deadline = -(-(now + self.offline_ms) // self.granularity) * self.granularity
        changed: dict[int, str] = {}
        for raw, ingested_at_ms in zip(batch[0], batch[1]):
            event = parse(bytes(raw), self.schema)
            if isinstance(event, Rejection):
                self.rejected.inc()
                continue
            vehicle_id = event["vehicle_id"]
            event_time_ms = parse_timestamp_ms(event["timestamp"])
            if self.fail_once is not None:
                self.fail_once.check(vehicle_id, event_time_ms)
            held = vehicles.get(vehicle_id)
            prior = held[0] if held else VehicleAlertState()
            if is_late(prior, event_time_ms):
                self.late.inc()
            state, alerts = on_event(prior, event, event_time_ms, self.area.contains, self.policy)
            entry = (state, deadline)
            vehicles[vehicle_id] = entry
            changed[vehicle_id] = entry
            yield from self._emit(alerts, ingested_at_ms, now)
        if changed:
            self.state.put_all({vehicle: _encode(entry) for vehicle, entry in changed.items()})
            if shard not in self.timer_at:
                timers.register_processing_time_timer(deadline)
                self.timer_at[shard] = deadline

    def _emit(self, alerts: list[dict[str, Any]], ingested_at_ms: int | None, raised_at_ms: int) -> Iterable[str]:
        for alert in alerts:
            self.raised.inc()
            alert["ingested_at_ms"] = ingested_at_ms  # None for offline: no event caused it
            alert["raised_at_ms"] = raised_at_ms
            yield orjson.dumps(alert).decode()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable[str]:
        shard = ctx.get_current_key()
        vehicles = self._shard(shard)
        changed: dict[int, str] = {}
        next_deadline = None
        for vehicle_id, (state, deadline) in vehicles.items():
            if deadline is None:
                continue
            if deadline > timestamp:
                next_deadline = deadline if next_deadline is None else min(next_deadline, deadline)
                continue
            state, alerts = on_silence(state, vehicle_id, self.policy)
            changed[vehicle_id] = (state, None)
            yield from self._emit(alerts, None, timestamp)
        if changed:
            vehicles.update(changed)
            self.state.put_all({vehicle: _encode(entry) for vehicle, entry in changed.items()})
        self.timer_at.pop(shard, None)
        if next_deadline is not None:
            ctx.timer_service().register_processing_time_timer(next_deadline)
            self.timer_at[shard] = next_deadline
