"""`telemetry map`: the fleet map over the local stores on their own, until Ctrl-C.

`telemetry live` serves the same page with its live metrics; this command is for looking at the
stores a run left behind (or one another process is writing), with empty charts.
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Callable

from fleet.cli.exit_codes import ExitCode
from fleet.config import PlatformConfig


def cmd_map(args: argparse.Namespace, config: PlatformConfig) -> int:
    from fleet.live.map_server import MapServer

    port = config.live.map_port if args.port is None else args.port
    server = MapServer(config, host=args.host, port=port).start()
    print(f"fleet map: {server.url}  (status table {config.stores.local_path}, alert log {config.alerts.alert_log}); Ctrl-C stops it")
    # Handlers of our own, not KeyboardInterrupt: a process started with SIGINT ignored (a
    # background job of a non-interactive shell, such as CI's) would never see Ctrl-C otherwise.
    stopped: list[int] = []
    done = threading.Event()

    def on_signal(signum, _frame) -> None:
        stopped.append(signum)
        done.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    try:
        done.wait()
    finally:
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return ExitCode.INTERRUPTED if stopped and stopped[0] == signal.SIGINT else ExitCode.OK


def add_parser(commands: argparse._SubParsersAction, add: Callable[..., argparse.ArgumentParser], config_of: Callable) -> None:
    text = "serve the live fleet map (vehicles, alerts) over the local status table and alert log until Ctrl-C"
    map_cmd = add(commands, "map", lambda args: cmd_map(args, config_of(args)), text)
    map_cmd.add_argument("--port", type=int, default=None, help="default: [live] map_port")
    map_cmd.add_argument("--host", default="127.0.0.1", help="the address to listen on (default: loopback only)")
