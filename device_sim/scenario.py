"""A simulated fleet with faults injected on purpose: every one deterministic and counted.

`Scenario(spec, knobs, duration_s=…)` runs a `RateModeFleet` for `duration_s` of event time and
injects what `ScenarioKnobs` asks for:

  duplicates       an event sent twice in a row (a QoS 1 re-send after a lost PUBACK)
  late             an event held back and sent `late_after_s` later, after events that are newer
                   (the edge spool delivering after an outage); unique, but late
  late_resends     an event sent on time and again `late_after_s` later (the spool re-sending what
                   had in fact arrived); the copy is a duplicate
  out_of_order     an event sent right after the same vehicle's next event
  malformed        raw bytes that are not JSON in place of an event (defects.MALFORMED, in turn)
  schema_invalid   JSON the schema rejects in place of an event (defects.DEFECTS, in turn)
  offline_vehicles vehicles that send nothing for `offline_s` (their model keeps running)
  geofence_exits   vehicles driven out of the service area (they stay out)
  low_batteries    vehicles whose battery drops below 15 % (it stays there)

Per-event faults are planned as times spread over the run; each fires on the first eligible event
at or after its time (one fault per event; never on an offline vehicle). Vehicle faults go to
distinct vehicles. `report` counts
what was injected as the stream runs — complete once the stream is exhausted — and
`report.expected()` says what downstream must see: unique valid events, duplicates to drop,
invalid payloads per DLQ reason. A knob that could not be honoured in full (a run too short for the
faults asked) shows in `report.shortfall()`; the counts are always what was actually sent.

Items are dicts (valid or schema-invalid events) and `RawPayload` bytes (malformed) from `stream()`,
or (key, payload bytes) pairs from `stream_encoded()`; the outputs take any of them.
"""

from __future__ import annotations

import copy
import heapq
import random
from collections import Counter
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields
from typing import Any

import orjson

from device_sim.defects import DEFECTS, MALFORMED, malformed_payload, schema_defect
from device_sim.fleet_model import FleetSpec
from device_sim.rate_fleet import RateModeFleet
from device_sim.report_rates import SEED_RATES, RateModes
from device_sim.service_region import DEFAULT_AREA
from device_sim.vehicle_physics import SimVehicle
from udfs.telemetry_schema import BAD_JSON, encode

Item = Any  # dict | RawPayload | tuple[bytes, bytes]

_EVENT_KNOBS = ("schema_invalid", "malformed", "late", "late_resends", "duplicates", "out_of_order")
_VEHICLE_KNOBS = ("offline_vehicles", "geofence_exits", "low_batteries")
_OOO_GUARD_MS = 11_000  # an out-of-order event needs its vehicle's next event (≤ 10 s later) in the run


@dataclass(frozen=True)
class ScenarioKnobs:
    duplicates: int = 0
    late: int = 0
    late_resends: int = 0
    late_after_s: float = 120.0
    out_of_order: int = 0
    malformed: int = 0
    schema_invalid: int = 0
    offline_vehicles: int = 0
    offline_s: float = 60.0
    geofence_exits: int = 0
    low_batteries: int = 0
    seed: int = 1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name != "seed" and value < 0:
                raise ValueError(f"{f.name} must be >= 0, got {value}")
        if self.late_after_s <= 0 or self.offline_s <= 0:
            raise ValueError("late_after_s and offline_s must be > 0")

    @property
    def any(self) -> bool:
        return any(getattr(self, name) for name in (*_EVENT_KNOBS, *_VEHICLE_KNOBS))


@dataclass(frozen=True)
class OfflinePeriod:
    vehicle_id: int
    from_ms: int
    to_ms: int
    suppressed: int  # events the vehicle would have sent in the window


@dataclass
class ScenarioReport:
    """What a scenario sent. Complete once its stream is exhausted."""

    knobs: ScenarioKnobs
    start_ms: int
    end_ms: int
    items: int = 0  # everything yielded
    events: int = 0  # distinct valid events (each (vehicle_id, timestamp) once, however often sent)
    duplicates: int = 0
    late: int = 0
    late_resends: int = 0
    out_of_order: int = 0
    malformed: Counter = field(default_factory=Counter)  # MALFORMED kind → count
    schema_invalid: Counter = field(default_factory=Counter)  # DEFECTS name → count
    offline: list[OfflinePeriod] = field(default_factory=list)
    geofence_exits: list[tuple[int, int]] = field(default_factory=list)  # (vehicle_id, from ms)
    low_batteries: list[tuple[int, int, int]] = field(default_factory=list)  # (vehicle_id, from ms, percent)
    by_mode: dict[str, int] = field(default_factory=dict)  # events per rate mode
    battery_swaps: int = 0

    def injected(self) -> dict[str, int]:
        return {
            "duplicates": self.duplicates, "late": self.late, "late_resends": self.late_resends,
            "out_of_order": self.out_of_order, "malformed": sum(self.malformed.values()),
            "schema_invalid": sum(self.schema_invalid.values()), "offline_vehicles": len(self.offline),
            "geofence_exits": len(self.geofence_exits), "low_batteries": len(self.low_batteries),
        }

    def shortfall(self) -> dict[str, int]:
        """Knob → how many fewer were injected than asked (only knobs that fell short)."""
        injected = self.injected()
        return {name: getattr(self.knobs, name) - n for name, n in injected.items() if n < getattr(self.knobs, name)}

    def expected(self) -> dict[str, Any]:
        """What a downstream that deduplicates on (vehicle_id, timestamp) must count."""
        reasons = Counter({BAD_JSON: sum(self.malformed.values())})
        for name, count in self.schema_invalid.items():
            reasons[DEFECTS[name][1]] += count
        return {
            "items": self.items,
            "unique_valid": self.events,
            "duplicates": self.duplicates + self.late_resends,
            "invalid": sum(reasons.values()),
            "invalid_by_reason": {reason: n for reason, n in sorted(reasons.items()) if n},
            "geofence_exit_vehicles": sorted(v for v, _ in self.geofence_exits),
            "low_battery_vehicles": sorted(v for v, _, _ in self.low_batteries),
            "offline_vehicles": sorted(p.vehicle_id for p in self.offline),
        }

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["malformed"], out["schema_invalid"] = dict(self.malformed), dict(self.schema_invalid)
        out["injected"], out["expected"], out["shortfall"] = self.injected(), self.expected(), self.shortfall()
        return out


class Scenario:
    """A fleet run of `duration_s` of event time with the faults of `knobs`. Stream it once."""

    def __init__(
        self,
        spec: FleetSpec = FleetSpec(),
        knobs: ScenarioKnobs = ScenarioKnobs(),
        *,
        duration_s: float,
        modes: RateModes = SEED_RATES,
        area: Any = DEFAULT_AREA,
    ):
        if duration_s <= 0:
            raise ValueError(f"duration_s must be > 0, got {duration_s}")
        vehicle_faults = knobs.offline_vehicles + knobs.geofence_exits + knobs.low_batteries
        if vehicle_faults > spec.vehicles:
            raise ValueError(f"{vehicle_faults} vehicle faults (offline, geofence, low battery) need as many vehicles, have {spec.vehicles}")
        self.fleet = RateModeFleet(spec, modes, area=area)
        self.knobs = knobs
        self.start_ms = self.fleet.start_ms
        self.end_ms = self.start_ms + int(round(duration_s * 1000))
        self.report = ScenarioReport(knobs, self.start_ms, self.end_ms)
        self._rng = random.Random(f"scenario:{spec.seed}:{knobs.seed}")
        self._streamed = False
        self._plan_vehicle_faults()
        self._triggers = {name: self._times(getattr(knobs, name), _OOO_GUARD_MS if name == "out_of_order" else 0) for name in _EVENT_KNOBS}

    # -- planning -------------------------------------------------------------------------------

    def _times(self, count: int, guard_ms: int) -> list[int]:
        """`count` trigger times spread uniformly over [start, end - guard), ascending."""
        span = max(1, self.end_ms - guard_ms - self.start_ms)
        return sorted(self.start_ms + self._rng.randrange(span) for _ in range(count))

    def _plan_vehicle_faults(self) -> None:
        knobs, fleet, rng = self.knobs, self.fleet, self._rng
        chosen = rng.sample(fleet.vehicles, knobs.offline_vehicles + knobs.geofence_exits + knobs.low_batteries)
        offline = chosen[: knobs.offline_vehicles]
        exits = chosen[knobs.offline_vehicles : knobs.offline_vehicles + knobs.geofence_exits]
        lows = chosen[knobs.offline_vehicles + knobs.geofence_exits :]
        self._offline_windows: list[tuple[SimVehicle, list[int]]] = []
        offline_ms = int(round(knobs.offline_s * 1000))
        for v in offline:
            begin = self.start_ms + rng.randrange(max(1, self.end_ms - offline_ms - self.start_ms))
            self._offline_windows.append((v, fleet.silence(v, begin, begin + offline_ms)))
        self._offline_ids = {v.index for v in offline}
        # Late enough in the run that events follow: within the first 80 % (or the first half).
        span = max(1, min(int(0.8 * (self.end_ms - self.start_ms)), self.end_ms - self.start_ms - 10_000))
        for v in exits:
            fleet.plan(v, self.start_ms + rng.randrange(span), self._exit)
        for v in lows:
            fleet.plan(v, self.start_ms + rng.randrange(span), self._drain)

    def _exit(self, v: SimVehicle, ts: int) -> None:
        self.fleet.drive_out(v, ts)
        self.report.geofence_exits.append((v.vehicle_id, ts))

    def _drain(self, v: SimVehicle, ts: int) -> None:
        self.fleet.drain(v, ts)
        self.report.low_batteries.append((v.vehicle_id, ts, int(round(v.battery))))

    # -- streaming ------------------------------------------------------------------------------

    def stream(self) -> Iterator[Item]:
        """Dicts (valid or schema-invalid events) and RawPayload (malformed bytes), in send order."""
        for _ts, item in self.timed(encoded=False):
            yield item

    def stream_encoded(self) -> Iterator[tuple[bytes, bytes]]:
        """(key = vehicle_id, payload bytes) pairs, in send order."""
        for _ts, item in self.timed(encoded=True):
            yield item

    def timed(self, *, encoded: bool = False) -> Iterator[tuple[int, Item]]:
        """(event time at which the item is sent, item): for pacing in real time (`device_sim.pacing`)."""
        if self._streamed:
            raise RuntimeError("a Scenario streams once; make a new one (same spec and knobs: same stream)")
        self._streamed = True
        fleet, report, knobs = self.fleet, self.report, self.knobs
        triggers = self._triggers
        pending = {name: 0 for name in _EVENT_KNOBS}
        late_heap: list[tuple[int, int, Item, int]] = []  # (due, seq, item, 1 if unique)
        held: dict[int, Item] = {}  # vehicle index → its event waiting for the vehicle's next one
        late_ms = int(round(knobs.late_after_s * 1000))
        malformed_kinds, defect_kinds = list(MALFORMED), list(DEFECTS)
        sequence = 0

        def next_check() -> int:
            times = [triggers[n][pending[n]] for n in _EVENT_KNOBS if pending[n] < len(triggers[n])]
            if late_heap:
                times.append(late_heap[0][0])
            return min(times, default=1 << 62)

        check_at = next_check()
        if encoded:
            source = ((v, ts, payload) for ts, batch in fleet.encoded_batches(self.end_ms) for v, payload in batch)
        else:
            render = fleet.render_dict
            source = ((v, ts, render(v, ts, sample)) for v, ts, sample in fleet.due(self.end_ms))

        for v, ts, payload in source:
            item = (v.key, payload) if encoded else payload
            if ts < check_at and v.index not in held:  # the common case: nothing due
                report.events += 1
                report.items += 1
                yield ts, item
                continue
            while late_heap and late_heap[0][0] <= ts:
                due_ms, _, late_item, unique = heapq.heappop(late_heap)
                report.events += unique
                report.items += 1
                yield due_ms, late_item
            released = held.pop(v.index, None)
            fired = None
            if released is None:
                for name in _EVENT_KNOBS:
                    index = pending[name]
                    if index < len(triggers[name]) and triggers[name][index] <= ts and self._eligible(name, v, ts):
                        pending[name] = index + 1
                        fired = name
                        break
            if fired is None:
                report.events += 1
                report.items += 1
                yield ts, item
            elif fired == "schema_invalid":
                kind = defect_kinds[sum(report.schema_invalid.values()) % len(defect_kinds)]
                event = orjson.loads(payload) if encoded else payload
                bad, _reason = schema_defect(event, kind)
                report.schema_invalid[kind] += 1
                report.items += 1
                yield ts, ((v.key, encode(bad)) if encoded else bad)
            elif fired == "malformed":
                kind = malformed_kinds[sum(report.malformed.values()) % len(malformed_kinds)]
                raw = malformed_payload(kind, payload if encoded else encode(payload), v.vehicle_id, self._rng)
                report.malformed[kind] += 1
                report.items += 1
                yield ts, ((v.key, bytes(raw)) if encoded else raw)
            elif fired == "late":
                report.late += 1
                sequence += 1
                heapq.heappush(late_heap, (ts + late_ms, sequence, item, 1))
            elif fired == "late_resends":
                report.late_resends += 1
                report.events += 1
                report.items += 1
                yield ts, item
                sequence += 1
                heapq.heappush(late_heap, (ts + late_ms, sequence, item if encoded else copy.deepcopy(item), 0))
            elif fired == "duplicates":
                report.duplicates += 1
                report.events += 1
                report.items += 2
                yield ts, item
                yield ts, (item if encoded else copy.deepcopy(item))
            else:  # out_of_order: wait for this vehicle's next event
                held[v.index] = item
            if released is not None:
                report.out_of_order += 1
                report.events += 1
                report.items += 1
                yield ts, released
            check_at = next_check()

        for _v_index, item in held.items():  # not reached in practice: eligibility leaves time for the next event
            report.events += 1
            report.items += 1
            yield self.end_ms, item
        while late_heap:
            due_ms, _, late_item, unique = heapq.heappop(late_heap)
            report.events += unique
            report.items += 1
            yield due_ms, late_item
        report.offline = [OfflinePeriod(v.vehicle_id, w[0], w[1], w[2]) for v, w in self._offline_windows]
        report.by_mode = dict(fleet.mode_counts)
        report.battery_swaps = fleet.swaps

    def _eligible(self, name: str, v: SimVehicle, ts: int) -> bool:
        """Offline vehicles get no per-event faults (a late event must not arrive while its vehicle is
        silent); an out-of-order event needs its vehicle's next event within the run."""
        if v.index in self._offline_ids:
            return False
        return name != "out_of_order" or ts < self.end_ms - _OOO_GUARD_MS
