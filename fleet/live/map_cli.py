"""`telemetry map`: the fleet map over the local stores on their own, until Ctrl-C.

`telemetry live` serves the same page with its live metrics; this command is for looking at the
stores a run left behind (or one another process is writing), with empty charts.
"""

from __future__ import annotations

import argparse
import threading
from typing import Callable

from fleet.config import PlatformConfig


def cmd_map(args: argparse.Namespace, config: PlatformConfig) -> int:
    from fleet.live.map_server import MapServer

    port = config.live.map_port if args.port is None else args.port
    server = MapServer(config, host=args.host, port=port).start()
    print(f"fleet map: {server.url}  (status table {config.stores.local_path}, alert log {config.alerts.alert_log}); Ctrl-C stops it")
    try:
        threading.Event().wait()  # until Ctrl-C (KeyboardInterrupt)
    finally:
        server.stop()
    return 0


def add_parser(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser], config_of: Callable) -> None:
    text = "serve the live fleet map (vehicles, alerts) over the local status table and alert log until Ctrl-C"
    map_cmd = add(commands, "map", lambda args: cmd_map(args, config_of(args)), text)
    map_cmd.add_argument("--port", type=int, default=None, help="default: [live] map_port")
    map_cmd.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: loopback only)")
