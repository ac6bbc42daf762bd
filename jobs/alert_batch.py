"""The anomaly job's Python operator: a batch of raw payloads of one shard in, alerts out.

Per event: parse + validate (rejects are only counted: the pipeline already sends them to the DLQ),
then the rules of udfs.alert_rules against the vehicle's state. Offline detection needs no timer
per vehicle: each vehicle's state holds when it was last heard (its record's ingest time), the
shard has one processing-time timer, and when it fires every vehicle silent for the offline
timeout goes offline once and the timer moves to the next vehicle due.

Silence is counted on the input clock (udfs.input_clock), not the wall clock: a restart or a
backlog cannot page a vehicle that was talking meanwhile, and while the input is stalled (the
ingest path down) no vehicle's silence grows; the instance reports its input status on a side
output (PLATFORM_TAG) and jobs.platform_monitor turns those reports into one platform alert.

State: MapState vehicle_id → JSON [rule state..., heard_ms], under the shard key, and at key -1
the input clock as this shard last saw it. The operator keeps a full copy of each shard it has
touched (loaded once from state after every (re)start, since `open()` starts empty), so the timer
can scan a shard without reading state, and writes the changed vehicles back with one `put_all`
per batch or timer. Timers are Flink's, checkpointed: a restart neither re-raises an open episode
nor forgets a vehicle that was about to go offline.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import orjson
from pyflink.common import Row, Types
from pyflink.datastream import OutputTag
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import MapStateDescriptor

from udfs.alert_rules import AlertPolicy, VehicleAlertState, is_late, on_event, on_silence
from udfs.fault_injection import FailOnce
from udfs.geofence import load_service_area
from udfs.input_clock import CURRENT, STALLED, InputClock, InputPolicy
from udfs.platform_alerts import status_report
from udfs.telemetry_schema import DEFAULT_POLICY, Rejection, ValidationPolicy, parse, parse_timestamp_ms

# The detector's input status reports (JSON), for jobs.platform_monitor.
PLATFORM_TAG = OutputTag("input-status", Types.STRING())
_CLOCK_KEY = -1  # vehicle ids are >= 0 (the schema), so this key of the map holds the shard's clock

# One vehicle's entry: (VehicleAlertState, heard_ms: ingest time of its newest record, None once offline).
_Entry = tuple[VehicleAlertState, Any]


def _decode(stored: str) -> _Entry:
    values = orjson.loads(stored)
    return VehicleAlertState.from_tuple(values[:-1]), values[-1]


def _encode(entry: _Entry) -> str:
    return orjson.dumps([*entry[0].to_tuple(), entry[1]]).decode()


def subtask_index(runtime_context: RuntimeContext) -> int:
    """PyFlink 2.x's thread mode calls `getIndexOfThisSubtask`, which Flink 2 moved to TaskInfo."""
    try:
        return runtime_context.get_index_of_this_subtask()
    except AttributeError:
        return runtime_context._runtime_context.getTaskInfo().getIndexOfThisSubtask()


class AlertBatchDetector(KeyedProcessFunction):
    def __init__(
        self, policy: AlertPolicy, service_area_path: str, timer_granularity_ms: int, fail_once: FailOnce | None = None,
        schema: ValidationPolicy = DEFAULT_POLICY, input_policy: InputPolicy = InputPolicy(),
    ):
        self.policy = policy
        self.schema = schema
        self.input_policy = input_policy
        self.service_area_path = service_area_path
        self.granularity = max(1, timer_granularity_ms)
        self.fail_once = fail_once

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_map_state(MapStateDescriptor("vehicle-alert-state", Types.LONG(), Types.STRING()))
        self.area = load_service_area(self.service_area_path)
        self.offline_ms = int(self.policy.offline_after_s * 1000)
        self.shards: dict[int, dict[int, _Entry]] = {}
        self.timer_at: dict[int, int] = {}  # the shard timer this instance registered (a cache)
        self.subtask = subtask_index(runtime_context)
        self.clock: InputClock | None = None  # made at the first call: it needs a processing time
        self.reported: tuple[str, int] | None = None  # (status, when) last sent to the platform monitor
        self.status_since = 0
        metrics = runtime_context.get_metrics_group()
        self.raised = metrics.counter("alerts_raised")
        self.rejected = metrics.counter("payloads_rejected")
        self.late = metrics.counter("late_readings")  # older than the vehicle's newest: no episode change
        # 1 while stalled. A counter, not a gauge: in thread mode a Python gauge is read by calling
        # into Python from Flink's metric thread, and a metric query during a stop-with-savepoint
        # crashed the TaskManager (SIGSEGV in take_gil, found by the failure harness in CI); a
        # counter's value lives on the Java side.
        self.stalled = metrics.counter("input_stalled")

    def _clock(self, now: int) -> InputClock:
        if self.clock is None:
            self.clock = InputClock(self.input_policy, started_wall_ms=now)
            self.status_since = now
        return self.clock

    def _shard(self, shard: int) -> dict[int, _Entry]:
        vehicles = self.shards.get(shard)
        if vehicles is None:
            stored = dict(self.state.items())
            clock = stored.pop(_CLOCK_KEY, None)
            if clock is not None:
                input_ms, gaps = orjson.loads(clock)
                self.clock.learn(input_ms, gaps)
            vehicles = {vehicle: _decode(value) for vehicle, value in stored.items()}
            self.shards[shard] = vehicles
        return vehicles

    def _store(self, changed: dict[int, _Entry]) -> None:
        """The changed vehicles and the clock as this shard now knows it, in one put_all."""
        stored = {vehicle: _encode(entry) for vehicle, entry in changed.items()}
        stored[_CLOCK_KEY] = orjson.dumps([self.clock.input_ms, self.clock.gaps]).decode()
        self.state.put_all(stored)

    def _round_up(self, ms: int) -> int:
        return -(-ms // self.granularity) * self.granularity

    def process_element(self, batch: Row, ctx: KeyedProcessFunction.Context) -> Iterable[Any]:
        shard = ctx.get_current_key()
        timers = ctx.timer_service()
        now = timers.current_processing_time()
        clock = self._clock(now)
        vehicles = self._shard(shard)
        clock.observe(batch[1], now)
        changed: dict[int, _Entry] = {}
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
            prior, last_heard = held if held else (VehicleAlertState(), None)
            heard = now if ingested_at_ms is None else min(ingested_at_ms, now)
            # due_ms is never before last_heard + offline_ms: that comparison spares the gap sum.
            if last_heard is not None and heard > last_heard + self.offline_ms and heard > clock.due_ms(last_heard, self.offline_ms):
                # Silent past the timeout in input time, and back in this very batch (a backlog read
                # at once): the timer never saw it between the two, so it goes offline here first.
                prior, silent = on_silence(prior, vehicle_id, self.policy)
                yield from self._emit(silent, None, now)
            if is_late(prior, event_time_ms):
                self.late.inc()
            state, alerts = on_event(prior, event, event_time_ms, self.area.contains, self.policy)
            if last_heard is not None and last_heard > heard:
                heard = last_heard  # a record ingested earlier but read later: the vehicle was heard since
            entry = (state, heard)
            vehicles[vehicle_id] = entry
            changed[vehicle_id] = entry
            yield from self._emit(alerts, ingested_at_ms, now)
        yield from self._report(now)
        if changed:
            self._store(changed)
            if shard not in self.timer_at:
                self._register(timers, shard, now + min(self.offline_ms, self.input_policy.stall_after_ms))

    def _register(self, timers, shard: int, at_ms: int) -> None:
        at_ms = self._round_up(at_ms)
        timers.register_processing_time_timer(at_ms)
        self.timer_at[shard] = at_ms

    def _emit(self, alerts: list[dict[str, Any]], ingested_at_ms: int | None, raised_at_ms: int) -> Iterable[str]:
        for alert in alerts:
            self.raised.inc()
            alert["ingested_at_ms"] = ingested_at_ms  # None for offline: no event caused it
            alert["raised_at_ms"] = raised_at_ms
            yield orjson.dumps(alert).decode()

    def _report(self, now: int) -> Iterable[Any]:
        """Tell the platform monitor when the status changes, and every half stall period while blind
        (so that it can forget an instance that went away)."""
        status = self.clock.status
        last = self.reported
        if last is not None and last[0] == status and (status == CURRENT or now - last[1] < self.input_policy.stall_after_ms // 2):
            return
        if last is None or last[0] != status:
            self.status_since = now
            if status == STALLED:
                self.stalled.inc()
            elif last is not None and last[0] == STALLED:
                self.stalled.dec()
        # The first report after a (re)start goes out even when current: the monitor may still hold
        # this subtask as blind from before the restart.
        self.reported = (status, now)
        yield PLATFORM_TAG, orjson.dumps(status_report(self.subtask, status, now, self.clock.input_ms, self.status_since)).decode()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable[Any]:
        shard = ctx.get_current_key()
        clock = self._clock(timestamp)
        vehicles = self._shard(shard)
        clock.tick(timestamp)
        yield from self._report(timestamp)
        self.timer_at.pop(shard, None)
        input_now = clock.now_ms(timestamp)
        if input_now is None:
            return
        changed: dict[int, _Entry] = {}
        next_due = None
        for vehicle_id, (state, heard) in vehicles.items():
            if heard is None:
                continue
            due = self._round_up(clock.due_ms(heard, self.offline_ms))
            if due > input_now:
                next_due = due if next_due is None else min(next_due, due)
                continue
            state, alerts = on_silence(state, vehicle_id, self.policy)
            changed[vehicle_id] = (state, None)
            yield from self._emit(alerts, None, timestamp)
        clock.prune(self.offline_ms)
        if changed:
            vehicles.update(changed)
            self._store(changed)
        if next_due is not None:
            # Input time runs with the wall clock while the input is current (the stall is noticed
            # by these timers, hence at most a stall period apart); a stalled clock is only polled.
            wait = self.input_policy.stall_after_ms // 2 if clock.status == STALLED else min(next_due - input_now, self.input_policy.stall_after_ms)
            self._register(ctx.timer_service(), shard, timestamp + max(self.granularity, wait))
