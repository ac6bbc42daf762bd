"""The live fleet map: a local web page over the status table, the alert log and the live metrics.

Endpoints (JSON, never cached; docs/fleet-map.md):

  /                 the page (static/map.html, map.js, map.css: no CDN, no map tiles)
  /api/vehicles     every vehicle's last status and state (fleet/live/vehicle_states.py), counts per state
  /api/alerts       ?limit=N (1..ALERTS_KEPT, default 50): the newest alerts of the log, newest first
  /api/geo          the service area's polygons and geohash-6 zones, as [lon, lat] rings
  /api/metrics      what `metrics()` returns: {"t": [...], "rates": {label: [...]}, "lag": {group: [...]}}
  /healthz          {"ok": true}

A stdlib ThreadingHTTPServer in a daemon thread: the page is for a few people on this machine,
polling every 2 s, which needs no web framework. It reads the local SQLite status table (the file the
pipeline writes) through its own connection; in WAL mode a reader never blocks the writer.
"""

from __future__ import annotations

import logging
import mimetypes
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson

from connectors.vehicle_status_local import LocalVehicleStatusStore
from fleet.config import PlatformConfig
from fleet.live.alert_tail import AlertTail
from fleet.live.vehicle_states import COLUMNS, FIELDS, StateRules, classify
from fleet.live.zone_cells import zone_ring, zones_over
from ingest.http_reply import send_body
from udfs.geofence import load_service_area

log = logging.getLogger("fleet.live.map_server")

STATIC_DIR = Path(__file__).parent / "static"
ALERTS_KEPT = 500  # the most /api/alerts returns; the tail keeps this many in memory
ALERTS_DEFAULT = 50
# The whole zone grid over the service area's box is drawn when it has at most this many cells
# (Frankfurt's: 16 x 18 = 288); beyond, only the zones vehicles occupy.
ZONE_GRID_LIMIT = 2_000
EMPTY_METRICS: dict[str, Any] = {"t": [], "rates": {}, "lag": {}}


class RequestError(Exception):
    """A request the server refuses, with the status and the message the client gets."""

    def __init__(self, status: HTTPStatus, message: str):
        super().__init__(message)
        self.status = status


class MapServer:
    def __init__(
        self,
        config: PlatformConfig,
        *,
        host: str,
        port: int,
        metrics: Callable[[], dict] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if config.stores.status_backend != "local":
            raise ValueError(
                f"the fleet map reads the local status table; [stores] status_backend is {config.stores.status_backend!r}"
            )
        self.config = config
        self.host = host
        self.port = port  # 0: a free port, known after start()
        self.metrics = metrics
        self.clock = clock
        self.rules = StateRules.of(config.alerts)
        self._alerts = AlertTail(config.alerts.alert_log, keep=ALERTS_KEPT)
        self._area = load_service_area(config.alerts.service_area)
        self._static = {path.name: path for path in STATIC_DIR.iterdir() if path.is_file()}
        self._store: LocalVehicleStatusStore | None = None
        self._http: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def start(self) -> MapServer:
        self._store = LocalVehicleStatusStore(self.config.stores.local_path)
        try:
            self._http = ThreadingHTTPServer((self.host, self.port), _handler_for(self))
        except BaseException:
            self._store.close()
            raise
        self._http.daemon_threads = True  # a slow client never holds up stop()
        self.port = self._http.server_address[1]
        # poll_interval bounds how long stop() waits for the serving loop to notice.
        self._thread = threading.Thread(target=self._http.serve_forever, args=(0.1,), name="fleet-map", daemon=True)
        self._thread.start()
        log.info("fleet_map_started url=%s", self.url)
        return self

    def stop(self) -> None:
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
            self._http = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self._store is not None:
            self._store.close()
            self._store = None

    def __enter__(self) -> MapServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # The answers; the handler only routes requests to them and writes what they return.

    def vehicles(self) -> dict[str, Any]:
        assert self._store is not None, "start() first"
        now_ms = int(self.clock() * 1000)
        vehicles, counts = classify(self._store.status_rows(COLUMNS), now_ms, self.rules)
        return {
            "now_ms": now_ms,
            "rules": {"low_battery_percent": self.rules.low_battery_percent, "offline_after_s": self.rules.offline_after_s},
            "total": len(vehicles),
            "counts": counts,
            "fields": FIELDS,
            "vehicles": vehicles,
        }

    def alerts(self, query: dict[str, list[str]]) -> dict[str, Any]:
        limit = _limit(query)
        alerts = self._alerts.newest(limit)
        return {"limit": limit, "count": len(alerts), "unreadable_lines": self._alerts.unreadable, "alerts": alerts}

    def geo(self) -> dict[str, Any]:
        assert self._store is not None, "start() first"
        boxes = [polygon.bbox for polygon in self._area.polygons]
        bbox = (min(b[0] for b in boxes), min(b[1] for b in boxes), max(b[2] for b in boxes), max(b[3] for b in boxes))
        grid = zones_over(bbox, ZONE_GRID_LIMIT)
        occupied = {zone for (zone,) in self._store.status_rows(("zone_id",))}
        zones = list(grid or ()) + sorted(occupied.difference(grid or ()))
        return {
            "name": self._area.name,
            "bbox": bbox,
            "polygons": [{"exterior": p.exterior, "holes": p.holes} for p in self._area.polygons],
            "zone_grid": grid is not None,
            "zones": [{"zone_id": zone, "ring": zone_ring(zone), "occupied": zone in occupied} for zone in zones],
        }

    def live_metrics(self) -> dict[str, Any]:
        return EMPTY_METRICS if self.metrics is None else self.metrics()

    def static(self, name: str) -> tuple[str, bytes]:
        """(content type, body) of a file of static/."""
        path = self._static.get(name)  # only the files listed at start: no path from the URL reaches the disk
        if path is None:
            raise RequestError(HTTPStatus.NOT_FOUND, f"no static file {name!r}")
        content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if content_type.startswith("text/"):
            content_type += "; charset=utf-8"
        return content_type, path.read_bytes()


def _limit(query: dict[str, list[str]]) -> int:
    values = query.get("limit")
    if not values:
        return ALERTS_DEFAULT
    text = values[-1]
    try:
        limit = int(text)
    except ValueError:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"limit must be a whole number from 1 to {ALERTS_KEPT}, got {text!r}") from None
    if not 1 <= limit <= ALERTS_KEPT:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"limit must be from 1 to {ALERTS_KEPT}, got {limit}")
    return limit


def _handler_for(server: MapServer) -> type[BaseHTTPRequestHandler]:
    api: dict[str, Callable[[dict[str, list[str]]], Any]] = {
        "/api/vehicles": lambda q: server.vehicles(),
        "/api/alerts": server.alerts,
        "/api/geo": lambda q: server.geo(),
        "/api/metrics": lambda q: server.live_metrics(),
        "/healthz": lambda q: {"ok": True},
    }

    class Handler(BaseHTTPRequestHandler):
        server_version = "fleet-map"

        def do_GET(self) -> None:
            parts = urlsplit(self.path)
            try:
                if parts.path in api:
                    body = orjson.dumps(api[parts.path](parse_qs(parts.query)))
                    self._send(HTTPStatus.OK, "application/json", body)
                elif parts.path in ("/", "/index.html"):
                    self._send(HTTPStatus.OK, *server.static("map.html"))
                elif parts.path.startswith("/static/"):
                    self._send(HTTPStatus.OK, *server.static(parts.path[len("/static/"):]))
                else:
                    raise RequestError(HTTPStatus.NOT_FOUND, f"no such path: {parts.path}")
            except RequestError as error:
                self._send(error.status, "application/json", orjson.dumps({"error": str(error)}))
            except Exception as error:  # one failed answer (a locked store, a broken collector), not a dead server
                log.exception("fleet_map_request_failed path=%s", parts.path)
                body = orjson.dumps({"error": f"{type(error).__name__}: {error}"})
                self._send(HTTPStatus.INTERNAL_SERVER_ERROR, "application/json", body)

        def _send(self, status: HTTPStatus, content_type: str, body: bytes) -> None:
            send_body(self, status, content_type, body, {"Cache-Control": "no-store"})

        def log_message(self, format: str, *args: Any) -> None:  # every poll would print a line to stderr
            log.debug("fleet_map_request %s", format % args)

    return Handler

