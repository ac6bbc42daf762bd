"""`telemetry config reference|show`: the configuration reference (docs/configuration.md) and the
effective configuration of a profile with its overrides, for troubleshooting."""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fleet.cli.exit_codes import ExitCode


def cmd_reference(args: argparse.Namespace) -> int:
    from fleet.config.reference import generate

    text = generate()
    if args.output:
        Path(args.output).write_text(text)
        print(f"wrote {args.output}")
    else:
        sys.stdout.write(text)
    return ExitCode.OK


def cmd_show(args: argparse.Namespace) -> int:
    from fleet.config import load_config

    document = plain(load_config(args.profile, args.set))
    sys.stdout.write(json.dumps(document, indent=2) + "\n" if args.json else to_toml(document))
    return ExitCode.OK


def plain(value: Any) -> Any:
    """A config object as JSON-able data: dataclasses as tables, paths as text, tuples as lists."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")


def to_toml(document: Mapping[str, Any]) -> str:
    """TOML of plain data (tables, lists of tables, scalars). TOML has no null: a None value is a
    comment line (`# key: none`), so reading the text back gives the document without it."""
    lines: list[str] = []
    _table(lines, [], document)
    return "\n".join(lines).lstrip("\n") + "\n"


def _table(lines: list[str], path: list[str], table: Mapping[str, Any], header: str | None = None) -> None:
    scalars = {k: v for k, v in table.items() if not isinstance(v, Mapping) and not _is_table_list(v)}
    if header is not None:
        lines += ["", header]
    elif path and scalars:
        lines += ["", "[" + ".".join(_key(p) for p in path) + "]"]
    for key, value in scalars.items():
        lines.append(f"# {_key(key)}: none" if value is None else f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        if isinstance(value, Mapping):
            _table(lines, [*path, key], value)
        elif _is_table_list(value):
            for item in value:
                _table(lines, [*path, key], item, header="[[" + ".".join(_key(p) for p in [*path, key]) + "]]")


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, Mapping) for v in value)


def _key(key: str) -> str:
    return key if _BARE_KEY.match(key) else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # a JSON string is a TOML basic string
    if isinstance(value, list):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    raise TypeError(f"no TOML for {type(value).__name__}")


def add_parser(commands: argparse._SubParsersAction) -> argparse.ArgumentParser:
    text = "the configuration: its reference (docs/configuration.md), and what a profile with overrides becomes"
    parser = commands.add_parser("config", help=text, description=text)
    actions = parser.add_subparsers(dest="action", required=True)

    reference = actions.add_parser("reference", help="every section and key: type, local and production value, what it means",
                                   description="Markdown generated from fleet/config/__init__.py and fleet/config/profiles/*.toml")
    reference.add_argument("--output", metavar="FILE", help="write it here (docs/configuration.md) instead of printing it")
    reference.set_defaults(func=cmd_reference)

    show = actions.add_parser("show", help="the effective configuration for --profile and --set (and TELEMETRY__* variables)",
                              description="every value resolved as a command gets it: empty paths under the run folder, "
                                          "the local broker's address, topics with their configs")
    show.add_argument("--json", action="store_true", help="JSON instead of TOML")
    show.set_defaults(func=cmd_show)
    return parser
