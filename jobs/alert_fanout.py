"""The alert fan-out of the anomaly job: a storm guard, then batched, concurrent SNS publishing.

  detector alerts ─► key by (kind, zone_id) ─► storm guard ─┬─(suppressed: logged here)──────────────┬─► (returned:
  (JSON text)                                  ValueState:    │                                        │    to fleet-alerts)
                                               counts per     └─(pages, summaries, offline)─► key by ─► publisher
                                               window, summary                                 shard    ListState of pending,
                                               timers                                                   a flush timer: SNS
                                                                                                        PublishBatch, log, status

- **Storm guard** (udfs.alert_storm): beyond `storm_pages_per_window` per (kind, zone_id) and
  window, alerts are marked `"paged": false` with the `summary_id` of the one summary paged for
  that key and window when it closes. A suppressed alert is appended to the log and handed on to
  Kafka by the guard itself, at once: the storm's bulk never queues in front of the pages. Pages,
  summaries and offline alerts (the status table wants them in batches, paged or not) go to the
  publisher through a side output.
- **Publisher**: those wait in Flink list state per shard and are flushed by a processing-time
  timer every `publish_flush_ms`: the pages in PublishBatch calls of 10, `publish_concurrency` in
  flight; then all of the flush to the log in one write, offline vehicles marked in the status
  table in one batch, and everything handed on to Kafka. Nothing is buffered in a Python
  attribute, so a checkpoint taken between an alert's arrival and its flush holds it: a restore
  flushes it again (at least once, same ids). A publish still failing after its retries fails the
  job, which restarts from the checkpoint and replays. A bounded input flushes at its end through
  an event-time timer only the final watermark reaches (END_OF_INPUT).
"""

from __future__ import annotations

import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from pyflink.common import Row, Types
from pyflink.datastream import DataStream, OutputTag
from pyflink.datastream.functions import KeyedProcessFunction, RuntimeContext
from pyflink.datastream.state import ListStateDescriptor, ValueStateDescriptor

from connectors.hot_store import StoreConfig
from jobs.pipeline_functions import END_OF_INPUT
from udfs.alert_rules import OFFLINE
from udfs.alert_storm import GuardState, StormPolicy, alert_time_ms, due_summaries, mark, on_alert, storm_key
from udfs.telemetry_schema import parse_timestamp_ms

if TYPE_CHECKING:
    from fleet.config import AlertSettings
    from jobs.anomaly_detection import AnomalyConfig

# What the guard hands the publisher: the shard it is keyed by and the alert as recorded.
SHARDED_ALERT_TYPE = Types.ROW_NAMED(["shard", "alert"], [Types.INT(), Types.STRING()])
TO_PUBLISHER = OutputTag("alerts-to-publish", SHARDED_ALERT_TYPE)


@dataclass(frozen=True)
class FanoutSettings:
    storm: StormPolicy = StormPolicy()
    publish_concurrency: int = 8
    publish_flush_ms: int = 50
    publish_shards: int = 1

    @staticmethod
    def from_alert_settings(alerts: AlertSettings) -> FanoutSettings:
        return FanoutSettings(
            storm=StormPolicy(alerts.storm_window_s, alerts.storm_pages_per_window),
            publish_concurrency=alerts.publish_concurrency,
            publish_flush_ms=alerts.publish_flush_ms,
            publish_shards=alerts.publish_shards,
        )


def shard_of(alert: dict[str, Any], shards: int) -> int:
    """A vehicle's alerts share a shard (and so a flush, in order); a summary goes by its id."""
    vehicle_id = alert.get("vehicle_id")
    if isinstance(vehicle_id, int):
        return vehicle_id % shards
    return zlib.crc32(alert["alert_id"].encode()) % shards


class _Tally:
    """A metric counter incremented in Java every `every` counts, not per alert (each inc() is a
    call into the JVM). Metrics only: a crash may lose the last few counts, never an alert."""

    def __init__(self, counter: Any, every: int = 256):
        self.counter, self.every, self.pending = counter, every, 0

    def inc(self) -> None:
        self.pending += 1
        if self.pending >= self.every:
            self.flush()

    def flush(self) -> None:
        if self.pending:
            self.counter.inc(self.pending)
            self.pending = 0


class StormGuard(KeyedProcessFunction):
    """Keyed by "kind/zone_id". One ValueState: the key's counts per window (udfs.alert_storm).

    The first suppressed alert of a window arms a processing-time timer for when its summary is
    due, and the END_OF_INPUT timer so a bounded input still summarises an open storm.
    Main output: suppressed alerts, already logged. TO_PUBLISHER: pages, summaries, offline alerts.

    Per alert it costs one state write and no state read: the state last written for a key is kept
    in `self.written` (only this instance writes its keys, and a restore starts a new instance, so
    the copy is never stale), and the key and the clock are taken in Python, not asked of Flink.
    """

    def __init__(self, policy: StormPolicy, shards: int, alert_log: str = "", *, to_status: bool = False):
        self.policy = policy
        self.shards = shards
        self.alert_log = alert_log
        self.to_status = to_status

    def open(self, runtime_context: RuntimeContext) -> None:
        from connectors.alert_log import AlertLog

        self.log = AlertLog(self.alert_log) if self.alert_log else None
        self.state = runtime_context.get_state(ValueStateDescriptor("alert-storm-guard", Types.STRING()))
        self.written: dict[str, str] = {}
        metrics = runtime_context.get_metrics_group()
        self.paged = _Tally(metrics.counter("alerts_to_page"))
        self.suppressed = _Tally(metrics.counter("alerts_suppressed"))
        self.summaries = metrics.counter("storm_summaries")

    def _load(self, key: str) -> GuardState:
        text = self.written.get(key)
        return GuardState.decode(text if text is not None else self.state.value())

    def _store(self, key: str, state: GuardState) -> None:
        text = state.encode()
        self.state.update(text)
        self.written[key] = text

    def process_element(self, text: str, ctx: KeyedProcessFunction.Context) -> Iterable:
        alert = orjson.loads(text)
        key = storm_key(alert)  # == ctx.get_current_key(), without the call into Flink
        now = int(time.time() * 1000)  # Flink's processing time is the same wall clock
        state, decision = on_alert(self._load(key), key, alert_time_ms(alert), now, self.policy)
        self._store(key, state)
        if decision.close_at_ms is not None:
            timers = ctx.timer_service()
            timers.register_processing_time_timer(decision.close_at_ms)
            timers.register_event_time_timer(END_OF_INPUT)
        (self.paged if decision.paged else self.suppressed).inc()
        mark(alert, decision)
        if decision.paged or (self.to_status and alert["kind"] == OFFLINE):
            yield TO_PUBLISHER, Row(shard_of(alert, self.shards), orjson.dumps(alert).decode())
            return
        if self.log is not None:
            self.log.append(alert)
        yield orjson.dumps(alert).decode()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable:
        end_of_input = timestamp == END_OF_INPUT  # the only event-time timer here
        now = ctx.timer_service().current_processing_time() if end_of_input else timestamp
        key = ctx.get_current_key()
        self.paged.flush()
        self.suppressed.flush()
        state, summaries = due_summaries(self._load(key), key, now, self.policy, all_open=end_of_input)
        if not summaries:
            return
        self._store(key, state)
        for summary in summaries:
            self.summaries.inc()
            yield TO_PUBLISHER, Row(shard_of(summary, self.shards), orjson.dumps(summary).decode())


class AlertPublisher(KeyedProcessFunction):
    """Keyed by shard. Pending alerts in ListState, flushed on a short processing-time timer:
    pages to SNS (PublishBatch, concurrent), every alert to the log, offline vehicles to the
    status table, then every alert on to Kafka."""

    def __init__(
        self, aws: StoreConfig, sns_topic: str, alert_log: str, *, to_sns: bool, to_status: bool,
        concurrency: int, flush_ms: int,
    ):
        self.aws = aws
        self.sns_topic = sns_topic
        self.alert_log = alert_log
        self.to_sns = to_sns
        self.to_status = to_status
        self.concurrency = concurrency
        self.flush_ms = flush_ms

    def open(self, runtime_context: RuntimeContext) -> None:
        from connectors.alert_log import AlertLog

        self.pending = runtime_context.get_list_state(ListStateDescriptor("pending-alerts", Types.STRING()))
        self.log = AlertLog(self.alert_log) if self.alert_log else None
        self.sns = None
        if self.to_sns:
            from connectors.sns_alerts import SnsAlertPublisher

            self.sns = SnsAlertPublisher(self.aws, self.sns_topic, concurrency=self.concurrency)
            self.sns.ensure_topic()
        self.status = None
        if self.to_status:
            from connectors.hot_store import open_status_store

            self.status = open_status_store(self.aws)
        # Timers already registered per shard (a cache only: Flink checkpoints the timers).
        self.flush_at: dict[int, int] = {}
        self.end_armed: set[int] = set()
        metrics = runtime_context.get_metrics_group()
        self.published = metrics.counter("alerts_published")
        self.refused = metrics.counter("alerts_refused_by_sns")
        self.calls = metrics.counter("sns_publish_batch_calls")

    def close(self) -> None:
        if self.sns is not None:
            self.sns.close()
        if self.status is not None:
            self.status.close()

    def process_element(self, row: Row, ctx: KeyedProcessFunction.Context) -> Iterable[str]:
        self.pending.add(row[1])
        shard = row[0]
        timers = ctx.timer_service()
        if shard not in self.flush_at:
            now = timers.current_processing_time()
            self.flush_at[shard] = now - now % self.flush_ms + self.flush_ms
            timers.register_processing_time_timer(self.flush_at[shard])
        if shard not in self.end_armed:
            timers.register_event_time_timer(END_OF_INPUT)
            self.end_armed.add(shard)
        return ()

    def on_timer(self, timestamp: int, ctx: KeyedProcessFunction.OnTimerContext) -> Iterable[str]:
        self.flush_at.pop(ctx.get_current_key(), None)
        texts = list(self.pending.get() or ())
        if not texts:
            return
        alerts = [orjson.loads(text) for text in texts]
        if self.sns is not None:
            pages = [alert for alert in alerts if alert.get("paged", True)]
            result = self.sns.publish_batch(pages)
            self.published.inc(len(result.message_ids))
            self.calls.inc(result.calls)
            if result.refused:
                self.refused.inc(len(result.refused))
                for index, alert in enumerate(alerts):
                    if alert["alert_id"] in result.refused and alert.get("paged", True):
                        alert["paged"], alert["page_refused"] = False, result.refused[alert["alert_id"]]
                        texts[index] = orjson.dumps(alert).decode()
        if self.log is not None:
            self.log.append_many(alerts)
        if self.status is not None:
            offline = [(a["vehicle_id"], parse_timestamp_ms(a["episode_start"])) for a in alerts if a["kind"] == OFFLINE]
            self.status.mark_offline_many(offline)
        self.pending.clear()
        yield from texts


def add_alert_fanout(alerts: DataStream, config: AnomalyConfig) -> DataStream:
    """Storm guard + publisher after the detector's stream of alert JSON texts; returns the stream
    for the fleet-alerts sink (every alert, marked paged or not, and the storm summaries)."""
    settings: FanoutSettings = config.fanout
    alert_log = config.alert_log if "log" in config.outputs else ""
    to_status = "status" in config.outputs
    guarded = (
        alerts.key_by(lambda text: storm_key(orjson.loads(text)), key_type=Types.STRING())
        .process(StormGuard(settings.storm, settings.publish_shards, alert_log, to_status=to_status), output_type=Types.STRING())
        .name("alert storm guard").uid("alert-storm-guard")
    )
    published = (
        guarded.get_side_output(TO_PUBLISHER).name("alerts to publish").uid("alerts-to-publish")
        .key_by(lambda row: row[0], key_type=Types.INT())
        .process(
            AlertPublisher(
                config.aws, config.sns_topic, alert_log, to_sns="sns" in config.outputs, to_status=to_status,
                concurrency=settings.publish_concurrency, flush_ms=settings.publish_flush_ms,
            ),
            output_type=Types.STRING(),
        )
        .name("publish sns, log, status").uid("alert-publisher")
    )
    return guarded.union(published)
