"""`telemetry live` (the README's `make run`): the whole platform on this machine, until Ctrl-C.

    local servers (Kafka, Mosquitto, moto) → topics → vehicle registry
    → telemetry pipeline + alerts job (MiniCluster each, resumed from their last savepoint)
    → MQTT→Kafka bridge(s) → simulated fleet over MQTT (rounds of faults)
    → live status (terminal, <run_dir>/live/status.json, /metrics) + the fleet map (http)

Ctrl-C (or SIGTERM, SIGHUP) stops the fleet first, then the bridges, then each job with a savepoint,
then the servers this command started (servers already running before are left running), and
checks that no process of any child's group is left. The data stays in the run folder: the next
start resumes each job from its savepoint (exactly once), and `telemetry query …` reads the stores
meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

from fleet.config import PlatformConfig
from fleet.live.fleet_rounds import sim_argv
from fleet.live.processes import Children

_JOB_START_TIMEOUT_S = 240.0
_SIM_RESTARTS = 5
JOB_UPTIME = ("jobmanager_job_uptime",)  # Flink's reporter: flink_jobmanager_job_uptime (ms, > 0 once RUNNING)


class _StopRequested(Exception):
    """Ctrl-C (or SIGTERM/SIGHUP) arrived while the platform was still starting."""


def add_parser(commands: argparse._SubParsersAction) -> None:
    sub = commands.add_parser("live", help="run the whole platform locally with a live status (make run)",
                              description=__doc__.splitlines()[0])
    sub.add_argument("--vehicles", type=int, default=None, help="simulated fleet size (default: [live] vehicles)")
    sub.add_argument("--bridges", type=int, default=None, help="MQTT→Kafka bridges in one group (default: [live] bridges)")
    sub.add_argument("--stop-after-s", type=float, default=None, help="stop by itself after this long (default: at Ctrl-C)")
    sub.add_argument("--plain", action="store_true", help="one status line per --print-every-s instead of the redrawn panel "
                     "(the default when stdout is not a terminal)")
    sub.add_argument("--print-every-s", type=float, default=10.0, help="plain mode: seconds between status lines")
    sub.add_argument("--no-map", action="store_true", help="do not serve the fleet map")
    sub.add_argument("--prometheus", action="store_true", help="also run Debian's Prometheus scraping every process (docs/metrics.md)")
    sub.add_argument("--prometheus-port", type=int, default=9090, help="its port (default 9090)")
    sub.set_defaults(func=_cmd_live)


def _cmd_live(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from fleet.config import ConfigError, load_config

    config = load_config(args.profile, args.set)
    live = config.live
    if args.vehicles is not None or args.bridges is not None:
        live = replace(live, vehicles=live.vehicles if args.vehicles is None else args.vehicles,
                       bridges=live.bridges if args.bridges is None else args.bridges)
        if live.vehicles < 1 or live.bridges < 1:
            raise ConfigError("--vehicles and --bridges must be >= 1")
        config = replace(config, live=live)
    return LivePlatform(config, cli=_cli_prefix(args)).run(
        stop_after_s=args.stop_after_s, plain=args.plain or not sys.stdout.isatty(), print_every_s=args.print_every_s,
        serve_map=not args.no_map, prometheus_port=args.prometheus_port if args.prometheus else None,
    )


def _cli_prefix(args: argparse.Namespace) -> list[str]:
    """How a child runs `telemetry` with this command's profile and overrides."""
    script = Path(sys.executable).with_name("telemetry")
    base = [str(script)] if script.exists() else [sys.executable, "-m", "fleet.cli"]
    return [*base, "--profile", str(args.profile), *(item for value in args.set for item in ("--set", value))]


class LivePlatform:
    def __init__(self, config: PlatformConfig, *, cli: list[str]):
        self.config = config
        self.cli = cli
        self.folder = config.infra.run_dir / "live"
        self.children = Children(self.folder)
        self._stop = threading.Event()
        self._round = 0
        self._cpu: dict[str, tuple[float, float]] = {}
        self._sim_failures = 0
        self._servers: dict[str, int] = {}  # the local servers' pids: their CPU is in the status too

    # -- the whole run ---------------------------------------------------------------------------

    def run(self, *, stop_after_s: float | None, plain: bool, print_every_s: float, serve_map: bool,
            prometheus_port: int | None = None) -> int:
        from infra.manager import LocalInfra

        config = self.config
        if config.infra.mqtt_auth:
            print("telemetry live: the simulated fleet publishes without per-vehicle credentials; "
                  "run it with infra.mqtt_auth=false (the default)", file=sys.stderr)
            return 2
        busy = self._busy_ports()
        if busy:
            print("telemetry live: " + "; ".join(busy), file=sys.stderr)
            return 2
        # SIGHUP too: a closed terminal must not leave the children (each in its own session) behind.
        previous = {sig: signal.signal(sig, lambda *_: self._stop.set()) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
        infra = LocalInfra(config.infra)
        already_up = {s.name for s in infra.status() if s.healthy}
        parts: dict[str, Any] = {}
        code = 0
        try:
            self._start_all(infra, parts, prometheus_port=prometheus_port, serve_map=serve_map)
            map_server = parts.get("map")
            self._watch(parts["collector"], map_url=map_server.url if map_server else "(off)", plain=plain,
                        print_every_s=print_every_s, stop_after_s=stop_after_s)
        except _StopRequested:
            print("stop requested while starting", flush=True)
        except Exception as exc:  # noqa: BLE001 - stop what was started, then report
            print(f"telemetry live: {type(exc).__name__}: {exc}", file=sys.stderr)
            code = 1
        finally:
            code = self._stop_all(infra, parts, already_up) or code
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return code

    def _check_stop(self) -> None:
        if self._stop.is_set():
            raise _StopRequested

    def _start_all(self, infra: Any, parts: dict[str, Any], *, prometheus_port: int | None, serve_map: bool) -> None:
        """Everything, in order; each part goes into `parts` as soon as it exists, so a failure or a
        Ctrl-C at any step stops exactly what was started."""
        from infra.manager import format_status

        config, live, say = self.config, self.config.live, print
        say(f"telemetry live: run folder {config.infra.run_dir}; logs of every process in {self.folder}")
        say("[1/5] local servers")
        rows = infra.up()
        self._servers = {s.name: s.pid for s in rows if s.pid is not None}
        say(format_status(rows))
        self._check_stop()
        say("[2/5] topics and the vehicle registry")
        self._topics_and_registry()
        self._check_stop()
        say("[3/5] jobs: telemetry pipeline and alerts on MiniClusters, one after the other")
        self._start_jobs()
        self._check_stop()
        from fleet.live.collector import Collector

        parts["collector"] = collector = Collector(config, processes=self._process_rows)
        collector.prepare()  # baselines before the fleet sends anything
        collector.start()
        say(f"[4/5] {live.bridges} MQTT→Kafka bridge(s) and {live.vehicles:,} simulated vehicles over MQTT")
        self._start_bridges()
        self._start_sim()
        if serve_map:
            from fleet.live.map_server import MapServer

            parts["map"] = MapServer(config, host=config.infra.host, port=live.map_port, metrics=collector.history)
            parts["map"].start()
        from fleet.live.live_metrics import serve_live_metrics

        parts["metrics"] = serve_live_metrics(collector, config.infra.host, live.metrics_port)
        if prometheus_port is not None:
            from infra.prometheus import PrometheusServer

            parts["prometheus"] = PrometheusServer(config.infra.run_dir, config.infra.host, prometheus_port)
            parts["prometheus"].up(config)
            say(f"      prometheus {parts['prometheus'].url} scraping every process every 2 s ({parts['prometheus'].config_file})")
        map_url = parts["map"].url if "map" in parts else "(off)"
        say(f"[5/5] live: map {map_url} · metrics http://{config.infra.host}:{live.metrics_port}/metrics · "
            f"status {self.folder / 'status.json'} · Ctrl-C stops")

    def _stop_all(self, infra: Any, parts: dict[str, Any], already_up: set[str]) -> int:
        """Stop in order — the status first (so its last word is the running platform's), the fleet,
        the bridges, the jobs, the rest, the servers this run started — each step on its own, so one
        failing does not leave the others running; then check for survivors. 1 if any is left."""
        print("stopping: fleet, bridges, jobs …", flush=True)
        problems: list[str] = []

        def attempt(what: str, step: Any) -> Any:
            try:
                return step()
            except Exception as exc:  # noqa: BLE001 - report it, go on stopping the rest
                problems.append(f"{what}: {type(exc).__name__}: {exc}")
                return None

        collector = parts.get("collector")
        last = attempt("status", lambda: (collector.stop(), collector.snapshot())[1]) if collector else {}
        bridges = [f"bridge-{i}" for i in range(self.config.live.bridges)]
        # The fleet and the bridges first (a bridge settles and acknowledges what it holds within its
        # own 30 s: give it that), then each job with a savepoint, then whatever is left by signal.
        codes = attempt("fleet", lambda: self.children.stop_all(["sim", *bridges], timeouts={name: 45.0 for name in bridges},
                                                                only=True)) or {}
        live = self.config.live
        for job, rest in (("pipeline", live.pipeline_rest_port), ("alerts", live.alerts_rest_port)):
            outcome = attempt(f"{job} savepoint", lambda job=job, rest=rest: self._stop_job(job, rest))
            if outcome:
                print(f"      {job}: {outcome}", flush=True)
        codes.update(attempt("children", lambda: self.children.stop_all(["pipeline", "alerts"])) or {})
        if "map" in parts:
            attempt("map", parts["map"].stop)
        if "metrics" in parts:
            attempt("metrics", parts["metrics"].shutdown)
        if "prometheus" in parts:
            attempt("prometheus", parts["prometheus"].down)
        # What this run started: whatever is up now and was not before (a partial start included).
        started = attempt("servers", lambda: [s.name for s in infra.status() if s.pid is not None and s.name not in already_up]) or []
        if started:
            attempt("servers", lambda: infra.down(started))
        survivors = self.children.survivors()
        if last:
            attempt("status file", lambda: self._write_status({**last, "stopped": {
                "exit_codes": codes, "servers_stopped": started, "survivors": [f"{pid} {cmd}" for pid, cmd in survivors],
                "problems": problems}}))
        print("stopped " + ", ".join(f"{name} (exit {rc})" for name, rc in codes.items())
              + (f"; servers stopped: {', '.join(started)}" if started else "")
              + (f"; left running (they were up before): {', '.join(sorted(already_up))}" if already_up else ""))
        for problem in problems:
            print(f"while stopping, {problem}", file=sys.stderr)
        print(f"the data stays in {self.config.infra.run_dir}; the next `telemetry live` resumes where this one stopped")
        if survivors:
            print("LEFT RUNNING (not stopped): " + "; ".join(f"{pid} {cmd[:120]}" for pid, cmd in survivors), file=sys.stderr)
            return 1
        print(f"no process left: checked every process group of the {len(codes)} children")
        return 1 if problems else 0

    # -- set-up ----------------------------------------------------------------------------------

    def _busy_ports(self) -> list[str]:
        """The [live] ports another process holds, each with the setting that moves it."""
        from infra.process import port_open

        live, host = self.config.live, self.config.infra.host
        ports = {"map_port": live.map_port, "metrics_port": live.metrics_port, "sim_metrics_port": live.sim_metrics_port,
                 "pipeline_metrics_port": live.pipeline_metrics_port, "alerts_metrics_port": live.alerts_metrics_port,
                 "pipeline_rest_port": live.pipeline_rest_port, "alerts_rest_port": live.alerts_rest_port,
                 **{f"bridge_metrics_port (+{i})": live.bridge_metrics_port + i for i in range(live.bridges)}}
        return [f"{host}:{port} ([live] {key}) is in use by another process: stop it, or --set live.{key.split(' ')[0]}=<port>"
                for key, port in ports.items() if port_open(host, port)]

    def _topics_and_registry(self) -> None:
        from connectors.kafka_topics import admin_client, ensure_topics, format_reports
        from connectors.vehicle_registry_topic import publish_registry
        from device_sim.registry import registry_records

        kafka = self.config.kafka
        print(format_reports(ensure_topics(admin_client(kafka.bootstrap_servers), kafka.topics)))
        first = 10_000  # device_sim's first vehicle id
        ids = list(range(first, first + self.config.live.vehicles))
        count = publish_registry(kafka.bootstrap_servers, kafka.topic("registry").name, registry_records(ids, seed=self.config.live.seed))
        print(f"vehicle registry: {count:,} vehicles ({ids[0]}…{ids[-1]}) in {kafka.topic('registry').name}")

    def _start_jobs(self) -> None:
        """One job after the other, each waited for until RUNNING: two MiniClusters booting at once on
        two cores take twice as long each, and a fleet sending meanwhile only builds a backlog. Each
        resumes from where the last run stopped (`_restore_point`)."""
        live = self.config.live
        for name, port, rest in (("pipeline", live.pipeline_metrics_port, live.pipeline_rest_port),
                                 ("alerts", live.alerts_metrics_port, live.alerts_rest_port)):
            started = time.monotonic()
            restore, how = self._restore_point(name)
            print(f"      {name}: {how}", flush=True)
            # Each JVM logs into a folder of its own: by default PyFlink's gateways share (and
            # overwrite) one file under site-packages/pyflink/log.
            self.children.start(name, [
                *self.cli, "--set", f"flink.prometheus_port={port}", "--set", f"flink.rest_port={rest}",
                "--set", f"flink.checkpoint_dir={self._checkpoints(name).as_uri()}",
                "run", name, "--start", "committed", *(["--restore", restore] if restore else []),
            ], env={"FLINK_LOG_DIR": str(self.folder / f"flink-{name}")})
            self._wait_running(name, port)
            self._check_stop()
            marker = self._savepoint_marker(name)
            if restore and marker.exists():  # used: a later crash must resume from newer checkpoints
                marker.replace(marker.with_suffix(".restored"))
            print(f"      {name}: running after {time.monotonic() - started:.0f} s", flush=True)

    def _checkpoints(self, name: str) -> Path:
        return self.folder / "checkpoints" / name

    def _savepoint_marker(self, name: str) -> Path:
        return self.folder / f"{name}.savepoint"

    def _restore_point(self, name: str) -> tuple[str | None, str]:
        """Where a job resumes: the savepoint its last clean stop took; after an unclean stop, its
        newest retained checkpoint (Flink keeps them on cancellation); the first time, the group's
        committed offsets (earliest where none)."""
        from jobs.backfill.runs import inspect_checkpoints

        marker = self._savepoint_marker(name)
        if marker.exists():
            location = marker.read_text().strip()
            if Path(location.removeprefix("file:"), "_metadata").exists():
                return location, f"resumes from the savepoint of its last stop ({location})"
        latest = inspect_checkpoints(self._checkpoints(name).as_uri()).latest if self._checkpoints(name).exists() else None
        if latest:
            return latest, f"resumes from its newest retained checkpoint ({latest}): the last stop took no savepoint"
        return None, "starts from its consumer group's committed offsets (no savepoint or checkpoint yet)"

    def _stop_job(self, name: str, rest_port: int) -> str:
        """Stop-with-savepoint through the job's REST API (fleet/live/flink_rest.py), then wait for
        its client to exit; a job that cannot take one is left to the SIGTERM that follows (its next
        start then resumes from its newest retained checkpoint)."""
        from fleet.live.flink_rest import FlinkRestError, stop_with_savepoint

        child = self.children.get(name)
        if child is None or child.exit_code() is not None:
            return "not running"
        try:
            location = stop_with_savepoint(f"http://127.0.0.1:{rest_port}", (self.folder / "savepoints" / name).as_uri())
        except FlinkRestError as exc:
            return f"no savepoint ({exc}); stopped by SIGTERM"
        self._savepoint_marker(name).write_text(location)
        try:
            child.proc.wait(60)
        except Exception:  # noqa: BLE001 - the group is stopped by signal next anyway
            pass
        return f"savepoint {location}"

    def _wait_running(self, name: str, port: int, timeout_s: float = _JOB_START_TIMEOUT_S) -> None:
        """Until the job's Flink reporter says it is up (job uptime > 0)."""
        from fleet.live.prom_scrape import pick, scrape

        child = self.children.get(name)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self._stop.is_set():
            if child.exit_code() is not None:
                raise RuntimeError(f"the {name} job exited ({child.exit_code()}) while starting; its log {child.log}:\n{child.log_tail()}")
            uptime = pick(scrape(self.config.infra.host, port), *JOB_UPTIME)
            if uptime is not None and uptime > 0:
                return
            time.sleep(1.0)
        if not self._stop.is_set():
            raise RuntimeError(f"the {name} job was not running after {timeout_s:.0f} s (no uptime on its /metrics port {port}); "
                               f"its log {child.log}:\n{child.log_tail()}")

    def _start_bridges(self) -> None:
        live = self.config.live
        for i in range(live.bridges):
            self.children.start(f"bridge-{i}", [*self.cli, "bridge", "--client-id", f"telemetry-live-bridge-{i}",
                                                "--metrics-port", str(live.bridge_metrics_port + i),
                                                "--metrics-host", self.config.infra.host, "--stats-every", "30"])

    def _start_sim(self) -> None:
        infra = self.config.infra
        self.children.start("sim", sim_argv(self.cli, self.config.live, vehicles=self.config.live.vehicles,
                                            round_index=self._round, mqtt=f"{infra.host}:{infra.mqtt_port}",
                                            metrics_host=infra.host))

    # -- while it runs ---------------------------------------------------------------------------

    def _watch(self, collector: Any, *, map_url: str, plain: bool, print_every_s: float, stop_after_s: float | None) -> None:
        from fleet.live.status_view import plain_line, render

        deadline = None if stop_after_s is None else time.monotonic() + stop_after_s
        refresh = self.config.live.refresh_s
        last_print = 0.0
        live_view = None
        if not plain:
            from rich.live import Live

            live_view = Live(render({}, map_url=map_url, run_dir=str(self.config.infra.run_dir)), refresh_per_second=4, screen=False)
            live_view.start()
        try:
            while not self._stop.wait(refresh):
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._keep_fleet_going()
                snapshot = collector.snapshot()
                try:  # showing the status must never be what stops the platform
                    self._write_status(snapshot)
                    if live_view is not None:
                        live_view.update(render(snapshot, map_url=map_url, run_dir=str(self.config.infra.run_dir)))
                    elif time.monotonic() - last_print >= print_every_s:
                        last_print = time.monotonic()
                        print(plain_line(snapshot), flush=True)
                except Exception as exc:  # noqa: BLE001
                    print(f"status display: {type(exc).__name__}: {exc}", file=sys.stderr)
        finally:
            if live_view is not None:
                live_view.stop()

    def _keep_fleet_going(self) -> None:
        """A finished round starts the next; a failed simulator is restarted (and counted); a job or
        bridge that exited is reported in the status with its log, not restarted behind your back
        (Flink restarts a failing job itself: an exited client means it gave up)."""
        sim = self.children.get("sim")
        if sim is None or sim.exit_code() is None:
            return
        if self._sim_failures > _SIM_RESTARTS:
            return  # given up: said so once, the status shows it exited
        if sim.exit_code() != 0:
            self._sim_failures += 1
            gave_up = self._sim_failures > _SIM_RESTARTS
            print(f"simulator exited with {sim.exit_code()} (failure {self._sim_failures}"
                  f"{'; not restarted again' if gave_up else ''}); its log {sim.log}:\n{sim.log_tail(10)}", file=sys.stderr)
            if gave_up:
                return
        self._round += 1
        self._start_sim()

    def _process_rows(self) -> list[dict[str, Any]]:
        """Each child, each local server and this process itself: pid, state, cores over the last
        sample (the CPU of a child's whole group: a job's JVM with its client)."""
        from fleet.live.processes import group_cpu_s

        now = time.monotonic()
        entries = []
        for child in self.children.all():
            code = child.exit_code()
            name = f"{child.name} (round {self._round + 1})" if child.name == "sim" else child.name
            entries.append((child.name, name, child.pid, "running" if code is None else f"exited {code}",
                            child.cpu_s() if code is None else None, str(child.log)))
        for server, pid in self._servers.items():
            cpu = group_cpu_s(pid)
            entries.append((f"server:{server}", f"{server} (server)", pid, "running" if cpu is not None else "gone", cpu, None))
        entries.append(("live", "telemetry live (status, map)", os.getpid(), "running", group_cpu_s(os.getpid(), own=True), None))
        rows = []
        for key, name, pid, state, cpu, log in entries:
            before = self._cpu.get(key)
            cores = None if cpu is None or before is None or now <= before[0] or cpu < before[1] else \
                round((cpu - before[1]) / (now - before[0]), 3)
            if cpu is not None:
                self._cpu[key] = (now, cpu)
            rows.append({"name": name, "pid": pid, "state": state, "cores": cores, "cpu_s": None if cpu is None else round(cpu, 1),
                         "log": log})
        return rows

    def _write_status(self, snapshot: dict[str, Any]) -> None:
        if not snapshot.get("stages"):
            return
        path = self.folder / "status.json"
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(snapshot, indent=1, default=str))
        os.replace(tmp, path)
