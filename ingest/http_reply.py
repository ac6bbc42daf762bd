"""One HTTP answer of the platform's small http.server endpoints: the bridge's /metrics and /healthz
(ingest/metrics.py) and the fleet map (fleet/live/map_server.py). The body is whole in memory, so the
length is known and the client never waits for the connection to close."""

from __future__ import annotations

from collections.abc import Mapping
from http.server import BaseHTTPRequestHandler


def send_body(handler: BaseHTTPRequestHandler, status: int, content_type: str, body: bytes,
              headers: Mapping[str, str] | None = None) -> None:
    handler.send_response(status)
    handler.send_header("Content-Type", content_type)
    handler.send_header("Content-Length", str(len(body)))
    for name, value in (headers or {}).items():
        handler.send_header(name, value)
    handler.end_headers()
    handler.wfile.write(body)
