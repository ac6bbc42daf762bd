"""One logging setup for every command and service: `configure_logging(level, json=...)`, called once
from each main(). Human lines on stderr by default; with json=True one JSON object a line (ts, level,
logger, message, and any `extra=` fields of the call), which a log shipper reads without a pattern.

It sits at the config layer and imports only the standard library, so fleet.cli, fleet.live,
fleet.bench, ingest and jobs can all use it without importing anything above them.
"""

from __future__ import annotations

import json as json_module
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

LEVEL_ENV = "FLEET_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
HUMAN_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# The project's packages get the level asked for; other libraries (py4j, kafka clients, botocore,
# urllib3) only their warnings unless DEBUG is asked: their INFO lines would bury ours.
OWN_PACKAGES = ("fleet", "ingest", "jobs", "connectors", "device_sim", "edge_agent", "infra", "lake", "udfs")

# Attributes every LogRecord has; anything else on a record came from `extra=` and is a field.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName",
}


def default_level() -> str:
    """$FLEET_LOG_LEVEL, else INFO (read when a parser is built, not at import). A value that is not
    a level is INFO too; configure_logging then says so, as --help must still work."""
    level = os.environ.get(LEVEL_ENV, "INFO").upper()
    return level if level in LEVELS else "INFO"


def add_logging_arguments(parser: Any) -> None:
    """--log-level and --log-json on an argparse parser (a command's top level)."""
    parser.add_argument("--log-level", type=str.upper, choices=LEVELS, default=default_level(),
                        help=f"the least severe log level shown (default: ${LEVEL_ENV} or INFO)")
    parser.add_argument("--log-json", action="store_true",
                        help="log JSON lines (ts, level, logger, message, extra fields) for a log shipper")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts (UTC ISO-8601, ms), level, logger, message, then extra fields;
    an exception's traceback under "exc_info". A value JSON cannot hold is written as its str()."""

    def format(self, record: logging.LogRecord) -> str:
        created = datetime.fromtimestamp(record.created, tz=UTC)
        document: dict[str, Any] = {
            "ts": created.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in document:
                document[key] = value
        if record.exc_info:
            document["exc_info"] = self.formatException(record.exc_info)
        return json_module.dumps(document, default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a line is logged, not when logging was set up (a test's
    captured stderr, replaced after the test, would otherwise be written to once closed)."""

    @property  # type: ignore[override]
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(
    level: str = "INFO", json: bool = False, stream: TextIO | None = None,
) -> logging.Handler:
    """Write `level` and above of the project's loggers (and warnings of other libraries, or all
    of everything at DEBUG) to stderr or `stream`, as human or JSON lines.

    Replaces the handler an earlier call installed, so calling it again (tests, a command run
    in-process twice) does not double every line. Returns the handler."""
    level = level.upper()
    handler = _StderrHandler() if stream is None else logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter() if json else logging.Formatter(HUMAN_FORMAT))
    handler._fleet_log_setup = True  # type: ignore[attr-defined]  # marks ours for the next call
    root = logging.getLogger()
    for old in [h for h in root.handlers if getattr(h, "_fleet_log_setup", False)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level if level == "DEBUG" else max(logging.getLevelName(level), logging.WARNING))
    for package in OWN_PACKAGES:
        logging.getLogger(package).setLevel(level)
    if os.environ.get(LEVEL_ENV, "INFO").upper() not in LEVELS:
        logging.getLogger(__name__).warning("%s=%s is not one of %s; using INFO", LEVEL_ENV, os.environ[LEVEL_ENV],
                                            ", ".join(LEVELS))
    return handler
