"""The live status of the platform, sampled every `refresh_s`: one snapshot for the terminal, the
fleet map and the status file, and a few minutes of history for the map's charts.

Every figure comes from where an operator would look: the processes' own /metrics (simulator,
bridges, Flink jobs), Kafka (end offsets, the jobs' committed offsets, a read_committed tail of the
outputs) and the Bronze folder. Rates are taken over the last `_RATE_WINDOW_S` seconds of samples.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fleet.config import PlatformConfig
from fleet.live.bronze_watch import BronzeWatch
from fleet.live.kafka_watch import Offsets, OutputTail
from fleet.live.prom_scrape import pick, scrape

_RATE_WINDOW_S = 5.0
_HISTORY = 600  # samples kept for the charts (10 minutes at 1 s)
_BRONZE_EVERY_S = 5.0
_STEADY_SAMPLES = 15  # the steady condition must hold this many samples in a row

# Metric names by the suffix their exporters give them (device_sim/sim_metrics.py,
# ingest/metrics.py, Flink's reporter: `flink_<scope>_<name>`).
SIM_PUBLISHED = ("sim_events_acknowledged_total", "sim_events_published_total")
BRIDGE_FORWARDED = ("bridge_forwarded_total",)
BRIDGE_RECEIVED = ("bridge_received_total",)
BRIDGE_IN_FLIGHT = ("bridge_in_flight",)
DUPLICATES = ("_duplicates_dropped",)
CHECKPOINTS = ("_numberOfCompletedCheckpoints",)
CHECKPOINTS_FAILED = ("_numberOfFailedCheckpoints",)
CHECKPOINT_MS = ("_lastCheckpointDuration",)


@dataclass(frozen=True)
class Stage:
    key: str
    label: str


STAGES = (
    Stage("fleet", "fleet → MQTT (simulator, acknowledged)"),
    Stage("bridge", "MQTT → Kafka (bridge, forwarded)"),
    Stage("telemetry", "vehicle-telemetry (ingest)"),
    Stage("enriched", "pipeline → telemetry-enriched"),
    Stage("dlq", "→ telemetry-dlq (bridge + pipeline)"),
    Stage("alerts", "alerts job → fleet-alerts"),
)


class Collector(threading.Thread):
    def __init__(self, config: PlatformConfig, *, processes: Callable[[], list[dict[str, Any]]] = list, refresh_s: float | None = None):
        super().__init__(name="live-collector", daemon=True)
        self.config = config
        kafka = config.kafka
        self.topics = {role: kafka.topic(role).name for role in ("telemetry", "enriched", "dlq", "alerts")}
        self.groups = {"pipeline": config.pipeline.group_id, "alerts": config.alerts.group_id}
        self.refresh_s = refresh_s or config.live.refresh_s
        self.processes = processes
        self.offsets = Offsets(kafka.bootstrap_servers, list(self.topics.values()), list(self.groups.values()))
        self.tail = OutputTail(kafka.bootstrap_servers, enriched=self.topics["enriched"], dlq=self.topics["dlq"], alerts=self.topics["alerts"])
        self.bronze = BronzeWatch(config.pipeline.bronze_path)
        self.started_at = time.time()
        self.steady_since: float | None = None
        self._steady_run = 0
        self._samples: deque[tuple[float, dict[str, float]]] = deque(maxlen=_HISTORY)
        self._history: deque[dict[str, Any]] = deque(maxlen=_HISTORY)
        self._snapshot: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self._start_offsets: dict[str, int] = {}
        self._carry: dict[str, tuple[float, float]] = {}
        self.sample_error: str | None = None
        self._bronze = (0, 0)
        self._bronze_at = 0.0

    # -- lifecycle -------------------------------------------------------------------------------

    def prepare(self) -> None:
        """Baselines before anything flows: this session's counts start at zero."""
        self._start_offsets = {role: sum(self.offsets.end(name).values()) for role, name in self.topics.items()}
        self.bronze.mark_baseline()
        self._bronze = (self.bronze.baseline_files, self.bronze.baseline_rows)
        self.tail.start()
        self.tail.wait_ready()

    def run(self) -> None:
        while not self._halt.wait(self.refresh_s):
            try:
                self.sample()
            except Exception as exc:  # noqa: BLE001 - the status says what failed; it keeps sampling
                self.sample_error = f"sampling failed: {type(exc).__name__}: {exc}"
            else:
                self.sample_error = None

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(10)
        if self.tail.is_alive():
            self.tail.stop()
        self.offsets.close()

    # -- one sample ------------------------------------------------------------------------------

    def sample(self) -> dict[str, Any]:
        now = time.time()
        live, host = self.config.live, self.config.infra.host
        ends = {role: self.offsets.end(name) for role, name in self.topics.items()}
        lag = {job: self.offsets.lag(group, self.topics["telemetry"], ends["telemetry"]) for job, group in self.groups.items()}
        tail = self.tail.snapshot()
        sim = scrape(host, live.sim_metrics_port)
        bridges = [scrape(host, live.bridge_metrics_port + i) for i in range(live.bridges)]
        pipeline = scrape(host, live.pipeline_metrics_port)
        alerts_job = scrape(host, live.alerts_metrics_port)
        if now - self._bronze_at >= _BRONZE_EVERY_S:
            self._bronze, self._bronze_at = self.bronze.refresh(), now

        totals = {
            "fleet": self._carried("fleet", pick(sim, *SIM_PUBLISHED)),
            # per bridge: one bridge's scrape missing must not look like the others' restart
            "bridge": _sum(self._carried(f"bridge-{i}", pick(b, *BRIDGE_FORWARDED)) for i, b in enumerate(bridges)),
            "telemetry": sum(ends["telemetry"].values()) - self._start_offsets["telemetry"],
            "enriched": float(tail["enriched"]),
            "dlq": float(tail["dlq"]),
            "alerts": float(tail["alerts"]),
        }
        self._samples.append((now, {k: v for k, v in totals.items() if v is not None}))
        rates = {k: self._rate(k) for k in totals}
        input_rate = rates["telemetry"] or 0.0
        # lag in seconds of input: none to speak of without input (0 events is 0 s; otherwise unknown)
        lag_s = {job: (None if n is None else (n / input_rate if input_rate > 0 else (0.0 if n == 0 else None))) for job, n in lag.items()}
        checkpoints = {
            "completed": pick(pipeline, *CHECKPOINTS), "failed": pick(pipeline, *CHECKPOINTS_FAILED),
            "last_duration_ms": pick(pipeline, *CHECKPOINT_MS),
        }
        snapshot = {
            "time": now,
            "uptime_s": round(now - self.started_at, 1),
            "vehicles": live.vehicles,
            "stages": [{"key": s.key, "label": s.label, "total": totals[s.key], "rate": rates[s.key]} for s in STAGES],
            "lag": {job: {"group": self.groups[job], "events": n, "seconds": None if lag_s[job] is None else round(lag_s[job], 1)} for job, n in lag.items()},
            "latency_ms": tail["latency_ms"],
            "dlq_by_reason": tail["dlq_by_reason"],
            "alerts_by_kind": tail["alerts_by_kind"],
            "recent_alerts": tail["recent_alerts"],
            "duplicates_dropped": pick(pipeline, *DUPLICATES),
            "checkpoints": checkpoints,
            "bronze": {"files": self._bronze[0] - self.bronze.baseline_files, "rows": self._bronze[1] - self.bronze.baseline_rows,
                       "files_total": self._bronze[0], "rows_total": self._bronze[1]},
            "bridge_received": _sum(pick(b, *BRIDGE_RECEIVED) for b in bridges),
            "bridge_in_flight": _sum(pick(b, *BRIDGE_IN_FLIGHT) for b in bridges),
            "exporters": {"simulator": sim is not None, "bridges": sum(b is not None for b in bridges),
                          "pipeline": pipeline is not None, "alerts": alerts_job is not None},
            "processes": self.processes(),
            "errors": [e for e in (tail["error"], self.bronze.error, self.sample_error) if e],
        }
        snapshot["steady"] = self._steady(snapshot, input_rate, now)
        snapshot["steady_after_s"] = None if self.steady_since is None else round(self.steady_since - self.started_at, 1)
        with self._lock:
            self._snapshot = snapshot
            self._history.append({"t": round(now, 1), "rates": {s.key: rates[s.key] for s in STAGES},
                                  "lag": {job: lag[job] for job in lag}})
        return snapshot

    def _carried(self, key: str, value: float | None) -> float | None:
        """A process's counter across its restarts (a new simulator round starts at zero): when it
        goes down, what it had counted is carried into a base added from then on."""
        if value is None:
            return None
        base, last = self._carry.get(key, (0.0, 0.0))
        if value < last:
            base += last
        self._carry[key] = (base, value)
        return base + value

    def _rate(self, key: str) -> float | None:
        """events/s of one total over the last window of samples that carry it."""
        points = [(t, values[key]) for t, values in self._samples if key in values]
        if len(points) < 2:
            return None
        end_t, end_v = points[-1]
        start_t, start_v = next(((t, v) for t, v in points if t >= end_t - _RATE_WINDOW_S), points[0])
        if start_t >= end_t:  # samples further apart than the window: the last two
            start_t, start_v = points[-2]
        if end_t - start_t <= 0:
            return None
        return round(max(0.0, end_v - start_v) / (end_t - start_t), 1)

    def _steady(self, snapshot: dict[str, Any], input_rate: float, now: float) -> bool:
        """Steady: the fleet sends, events reach telemetry-enriched, and both jobs keep up (lag under
        10 s of input) — for _STEADY_SAMPLES samples in a row. Lag, not the output rate, decides:
        exactly-once output arrives in bursts, one per checkpoint, so a few seconds' rate swings."""
        rates = {s["key"]: s["rate"] or 0.0 for s in snapshot["stages"]}
        lags = [snapshot["lag"][job]["seconds"] for job in ("pipeline", "alerts")]
        ok = input_rate > 0 and rates["fleet"] > 0 and rates["enriched"] > 0 and all(lag is not None and lag <= 10.0 for lag in lags)
        self._steady_run = self._steady_run + 1 if ok else 0
        if self._steady_run >= _STEADY_SAMPLES and self.steady_since is None:
            self.steady_since = now
        return self._steady_run >= _STEADY_SAMPLES

    # -- readers ---------------------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The latest complete sample ({} before the first), with a sampling failure since in `errors`."""
        with self._lock:
            snapshot = dict(self._snapshot)
        if self.sample_error:
            snapshot["errors"] = [*snapshot.get("errors", []), self.sample_error]
        return snapshot

    def history(self) -> dict[str, Any]:
        """The map's charts: `{"t": [...], "rates": {label: [...]}, "lag": {group: [...]}}`."""
        with self._lock:
            rows = list(self._history)
        labels = {s.key: s.label for s in STAGES}
        return {
            "t": [r["t"] for r in rows],
            "rates": {labels[key]: [r["rates"][key] for r in rows] for key in labels},
            "lag": {self.groups[job]: [r["lag"][job] for r in rows] for job in self.groups},
        }


def _sum(values: Any) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None
