"""The anomaly job's platform monitor: the detector instances' input status reports in, one
platform alert per incident out (udfs.platform_alerts).

Keyed by a constant, so one subtask holds the whole picture whatever the job's parallelism; it
sees a handful of records per incident. ValueState holds the open episode, so a restart neither
re-raises it nor forgets to close it; a processing-time timer forgets instances that stopped
reporting while blind (a rescaled job has other subtasks).
"""

from __future__ import annotations

from collections.abc import Iterable

import orjson
from pyflink.common import Types
from pyflink.datastream import DataStream
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ValueStateDescriptor

from udfs.platform_alerts import MonitorState, expire, on_report


class PlatformInputMonitor(KeyedProcessFunction):
    def __init__(self, expire_ms: int):
        self.expire_ms = expire_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        self.state = runtime_context.get_state(ValueStateDescriptor("platform-input", Types.STRING()))

    def _load(self) -> MonitorState:
        stored = self.state.value()
        return MonitorState.from_json(orjson.loads(stored) if stored else None)

    def _store(self, state: MonitorState) -> None:
        self.state.update(orjson.dumps(state.to_json()).decode())

    def process_element(self, report: str, ctx: KeyedProcessFunction.Context) -> Iterable[str]:
        now = ctx.timer_service().current_processing_time()
        state, alerts = on_report(self._load(), orjson.loads(report))
        self._store(state)
        if state.blind:
            ctx.timer_service().register_processing_time_timer(now + self.expire_ms)
        yield from _as_text(alerts, now)

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable[str]:
        state, alerts = expire(self._load(), timestamp, self.expire_ms)
        self._store(state)
        yield from _as_text(alerts, timestamp)


def _as_text(alerts: list[dict], raised_at_ms: int) -> Iterable[str]:
    for alert in alerts:
        alert["ingested_at_ms"] = None
        alert["raised_at_ms"] = raised_at_ms
        yield orjson.dumps(alert).decode()


def add_platform_monitor(reports: DataStream, expire_ms: int) -> DataStream:
    return (
        reports.key_by(lambda _: 0, key_type=Types.INT())
        .process(PlatformInputMonitor(expire_ms), output_type=Types.STRING())
        .name("platform input monitor").uid("platform-input-monitor")
    )
