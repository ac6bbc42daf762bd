"""What the sinks must hold after a harness run, computed from the input alone with the jobs' own
pure functions (udfs): the failure harness compares the sinks against this, record by record.

  unique valid events   (vehicle_id, event time) of every valid event, once: enriched topic,
                        Bronze, hot store must each hold exactly these
  rejects               (reason, payload) of every invalid payload as sent, re-sends included:
                        the DLQ must hold exactly these
  alerts                the alert ids the alert job must raise: the event rules replayed per
                        vehicle in send order (Kafka keeps a vehicle's order), with an offline
                        silence wherever a vehicle's next send (or the end of the input) is more
                        than the offline timeout of *seen* silence away
  blind                 stretches of the input with no record at all for longer than the stall
                        period (the ingest path down): from a stall period after the last record
                        to the next one, they count towards no vehicle's silence
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from device_sim.kafka_output import key_and_payload
from udfs.alert_rules import AlertPolicy, VehicleAlertState, on_event, on_silence
from udfs.telemetry_schema import Rejection, parse, parse_timestamp_ms

# A silence this close to the offline timeout could go either way (timer rounding, scheduling):
# the harness plans its input so that no gap falls inside the band, and says so if one does.
AMBIGUOUS_BAND_S = 3.0


@dataclass(frozen=True)
class Expectation:
    sent: int
    unique_valid: frozenset[tuple[int, int]]
    rejects: Counter  # (reason, payload bytes) → copies
    alert_ids: frozenset[str]
    alerts_by_kind: dict[str, int]
    ambiguous_gaps: int  # vehicle gaps within AMBIGUOUS_BAND_S of the offline timeout
    blind_ms: tuple[tuple[int, int], ...] = ()  # (from, to) send times no silence counts in


def blind_spans(send_times: list[int], stall_after_ms: int) -> list[tuple[int, int]]:
    """Where the input had no record for longer than the stall period: from a stall period after
    the last record to the next record."""
    return [(a + stall_after_ms, b) for a, b in zip(send_times, send_times[1:]) if b - a > stall_after_ms]


def seen_ms(start: int, end: int, blind: list[tuple[int, int]]) -> int:
    return end - start - sum(max(0, min(end, b) - max(start, a)) for a, b in blind)


def expect(
    timed_items: Iterable[tuple[int, Any]],
    policy: AlertPolicy,
    inside_service_area: Callable[[float, float], bool],
    *,
    stall_after_ms: int | None = None,
) -> Expectation:
    """`timed_items`: (send time ms, item) in send order, as `Scenario.timed()` yields them and the
    harness sends them (paced at real time, so send-time gaps are processing-time gaps).
    `stall_after_ms`: the job's input stall period (None: the input never stalls)."""
    timed_items = list(timed_items)
    send_times = [send_ms for send_ms, _ in timed_items]
    blind = blind_spans(send_times, stall_after_ms) if stall_after_ms is not None else []
    sent = 0
    unique: set[tuple[int, int]] = set()
    rejects: Counter = Counter()
    per_vehicle: dict[int, list[tuple[int, dict[str, Any], int]]] = {}
    for send_ms, item in timed_items:
        sent += 1
        _key, payload = key_and_payload(item)
        result = parse(payload, now_ms=send_ms)  # the job validates against its clock when it reads
        if isinstance(result, Rejection):
            rejects[(result.reason, payload)] += 1
            continue
        event_ms = parse_timestamp_ms(result["timestamp"])
        unique.add((result["vehicle_id"], event_ms))
        per_vehicle.setdefault(result["vehicle_id"], []).append((send_ms, result, event_ms))

    offline_ms = policy.offline_after_s * 1000
    band_ms = AMBIGUOUS_BAND_S * 1000
    alert_ids: set[str] = set()
    kinds: Counter = Counter()
    ambiguous = 0
    for vehicle_id, events in per_vehicle.items():
        state = VehicleAlertState()
        previous_send: int | None = None
        for send_ms, event, event_ms in events:
            if previous_send is not None:
                gap = seen_ms(previous_send, send_ms, blind)
                if abs(gap - offline_ms) <= band_ms:
                    ambiguous += 1
                if gap > offline_ms:
                    state, raised = on_silence(state, vehicle_id, policy)
                    _collect(raised, alert_ids, kinds)
            state, raised = on_event(state, event, event_ms, inside_service_area, policy)
            _collect(raised, alert_ids, kinds)
            previous_send = send_ms
        # Silent to the end of the input: offline only if the silence the job saw before the input
        # ended is past the timeout (after it, the job counts at most one more stall period).
        trailing = seen_ms(previous_send, send_times[-1], blind)
        if trailing > offline_ms + band_ms:
            state, raised = on_silence(state, vehicle_id, policy)
            _collect(raised, alert_ids, kinds)
        elif trailing + (stall_after_ms or 0) > offline_ms - band_ms:
            ambiguous += 1
    return Expectation(sent, frozenset(unique), rejects, frozenset(alert_ids), dict(sorted(kinds.items())), ambiguous, tuple(blind))


def _collect(raised: list[dict[str, Any]], ids: set[str], kinds: Counter) -> None:
    for alert in raised:
        if alert["alert_id"] not in ids:
            ids.add(alert["alert_id"])
            kinds[alert["kind"]] += 1
