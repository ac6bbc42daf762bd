"""docs/configuration.md, generated from the typed config (fleet/config/__init__.py) and the two profiles.

For every section and key of the profiles: its type (the dataclass field's annotation, else the
TOML value's), the local and the production value as written, and the explanation: the comment on
or directly above the key in local.toml, else the comment on or above the dataclass field. Fields
the loader fills in itself (from another section, or a built-in default) follow each section's keys.

Nothing here is written by hand twice: a key in a profile that is neither a dataclass field nor
listed in PROFILE_ONLY, or a field that is neither a key nor listed in DERIVED, is an error, so
a setting added without its place in the reference fails the test that keeps the file current.
"""

from __future__ import annotations

import ast
import dataclasses
import inspect
import io
import re
import textwrap
import tokenize
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectors.hot_store import StoreConfig
from fleet import config as config_module
from fleet.config import (
    PROFILES_DIR,
    TOPIC_ROLES,
    AlertSettings,
    AwsConfig,
    FaultSettings,
    FlinkConfig,
    InfraConfig,
    KafkaConfig,
    LakeSettings,
    LiveSettings,
    PipelineSettings,
    PlatformConfig,
    TopicSpec,
    load_config,
)
from udfs.telemetry_schema import ValidationPolicy

# Profile section → the dataclass it becomes and the PlatformConfig field holding it.
SECTIONS: dict[str, tuple[type, str]] = {
    "infra": (InfraConfig, "infra"),
    "kafka": (KafkaConfig, "kafka"),
    **{f"topics.{role}": (TopicSpec, "kafka") for role in TOPIC_ROLES},
    "flink": (FlinkConfig, "flink"),
    "aws": (AwsConfig, "aws"),
    "pipeline": (PipelineSettings, "pipeline"),
    "lake": (LakeSettings, "lake"),
    "stores": (StoreConfig, "stores"),
    "alerts": (AlertSettings, "alerts"),
    "live": (LiveSettings, "live"),
    "schema": (ValidationPolicy, "schema"),
    "faults": (FaultSettings, "faults"),
}

# Keys of a profile that are no field of the section's dataclass: where the loader puts them.
PROFILE_ONLY: dict[tuple[str, str], str] = {
    ("kafka", "replication_factor"): "Becomes every topic's replication factor (TopicSpec.replication_factor)",
    ("kafka", "min_insync_replicas"): "Becomes min.insync.replicas in every topic's configs",
    ("lake", "base_path"): "Not kept itself: it places the tables whose *_path is empty",
    ("topics", "retention_ms"): "Becomes retention.ms in the topic's configs (cleanup.policy=delete)",
    ("topics", "compression"): "Becomes compression.type in the topic's configs",
    ("topics", "compacted"): "true: cleanup.policy=compact and no retention.ms",
}

# Dataclass fields that are no key of their section: where the loader takes them from.
DERIVED: dict[tuple[type, str], str] = {
    (PlatformConfig, "profile"): "The profile's name: the file's stem (local, production, or a .toml path's)",
    (KafkaConfig, "topics"): "One TopicSpec per [topics.*] section, in the order " + ", ".join(TOPIC_ROLES),
    (TopicSpec, "role"): "The section's name: [topics.<role>]",
    (TopicSpec, "replication_factor"): "From [kafka] replication_factor",
    (TopicSpec, "configs"): "From compression, retention_ms or compacted, and [kafka] min_insync_replicas",
    (StoreConfig, "region"): "From [aws] region",
    (StoreConfig, "endpoint_url"): "From [aws] endpoint_url (local: the moto server of [infra])",
    (StoreConfig, "allow_outside_eu"): "From [aws] allow_outside_eu",
    (ValidationPolicy, "max_future_skew_s"): "Not in the profiles: the schema's built-in value",
    (ValidationPolicy, "earliest_timestamp_ms"): "Not in the profiles: the schema's built-in value",
}


class ReferenceError(ValueError):
    """The profiles and the dataclasses disagree in a way the reference cannot describe."""


@dataclass(frozen=True)
class TomlKey:
    value: str  # the value as written
    comment: str  # the comment above it and after it, joined


def profile_keys(text: str) -> dict[str, dict[str, TomlKey]]:
    """Section → key → (value as written, comment) of a profile's text, in file order.

    A key's comment is the block of comment lines directly above it (no blank line between) and
    the comment after its value. Values here are one line each, as in our profiles."""
    sections: dict[str, dict[str, TomlKey]] = {}
    current: dict[str, TomlKey] | None = None
    above: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            above = []
        elif stripped.startswith("#"):
            above.append(stripped.lstrip("#").strip())
        elif stripped.startswith("["):
            current = sections.setdefault(stripped.strip("[]").strip(), {})
            above = []
        else:
            key, sep, rest = stripped.partition("=")
            if not sep or current is None:
                raise ReferenceError(f"cannot read profile line {line!r}")
            value, comment = _split_comment(rest)
            current[key.strip()] = TomlKey(value, _sentences(" ".join(above), comment))
            above = []
    return sections


def _split_comment(rest: str) -> tuple[str, str]:
    """`value  # comment` → (value, comment); a '#' inside a string is part of the value."""
    quote = None
    for index, char in enumerate(rest):
        if quote:
            if char == quote:
                quote = None
        elif char in "\"'":
            quote = char
        elif char == "#":
            return rest[:index].strip(), rest[index + 1:].strip()
    return rest.strip(), ""


def field_comments(cls: type) -> dict[str, str]:
    """Field → the comment on its line or in the comment lines directly above it, in cls's source."""
    source = textwrap.dedent(inspect.getsource(cls))
    comments: dict[int, str] = {}
    for token in tokenize.generate_tokens(io.StringIO(source).readline):
        if token.type == tokenize.COMMENT:
            comments[token.start[0]] = token.string.lstrip("#").strip()
    lines = source.splitlines()
    result = {}
    for node in ast.parse(source).body[0].body:
        if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            block, number = [], node.lineno - 1
            while number >= 1 and lines[number - 1].strip().startswith("#"):
                block.insert(0, comments[number])
                number -= 1
            trailing = comments.get(node.lineno)
            result[node.target.id] = _sentences(" ".join(block), trailing or "")
    return result


def generate(profiles_dir: Path = PROFILES_DIR) -> str:
    """The Markdown of docs/configuration.md."""
    local_text = (profiles_dir / "local.toml").read_text()
    production_text = (profiles_dir / "production.toml").read_text()
    local, production = profile_keys(local_text), profile_keys(production_text)
    for name, parsed in (("local", local), ("production", production)):
        if set(parsed) != set(SECTIONS):
            raise ReferenceError(f"{name}.toml sections {sorted(parsed)} are not the reference's {sorted(SECTIONS)}")
    _check_parsed_like_tomllib(local_text, local)
    effective = {"local": load_config("local", environ={}), "production": load_config("production", environ={})}

    out = [_INTRO, _table(("setting", "type", "local", "production", "explanation"), [
        ("`profile`", f"`{_annotation(PlatformConfig, 'profile')}`", "`local`", "`production`", _text(_sentences(DERIVED[(PlatformConfig, "profile")]))),
    ])]
    for section, (cls, attribute) in SECTIONS.items():
        out.append(_section(section, cls, local[section], production[section], effective, attribute))
    return "\n\n".join(out) + "\n"


def _section(section: str, cls: type, local: dict[str, TomlKey], production: dict[str, TomlKey],
             effective: Mapping[str, PlatformConfig], attribute: str) -> str:
    names = [f.name for f in dataclasses.fields(cls)]
    comments = field_comments(cls)
    kind = section.partition(".")[0]
    rows = []
    for key in dict.fromkeys([*local, *production]):
        if key in names:
            type_text, explanation = _annotation(cls, key), (local[key].comment if key in local else "") or comments.get(key, "")
        elif (kind, key) in PROFILE_ONLY:
            value = local.get(key) or production[key]
            type_text = type(tomllib.loads(f"v = {value.value}")["v"]).__name__
            explanation = _sentences(local[key].comment if key in local else "", PROFILE_ONLY[(kind, key)])
        else:
            raise ReferenceError(f"[{section}] {key}: neither a field of {cls.__name__} nor in PROFILE_ONLY")
        rows.append((f"`{key}`", f"`{type_text}`", _value(local.get(key)), _value(production.get(key)), _text(explanation)))
    derived = []
    for name in names:
        if name in local or name in production:
            continue
        if (cls, name) not in DERIVED:
            raise ReferenceError(f"{cls.__name__}.{name} is no key of [{section}] and not in DERIVED")
        values = [_effective(effective[profile], attribute, section, name) for profile in ("local", "production")]
        explanation = _sentences(DERIVED[(cls, name)], comments.get(name, ""))
        derived.append((f"`{name}`", f"`{_annotation(cls, name)}`", *values, _text(explanation)))
    doc = inspect.getdoc(cls) or ""
    heading = f"## [{section}]\n\n`{cls.__module__}.{cls.__name__}`" + (f": {_text(doc.splitlines()[0])}" if doc and not doc.startswith(cls.__name__ + "(") else "")
    parts = [heading, _table(("key", "type", "local", "production", "explanation"), rows)]
    if derived:
        parts.append(_table(("field", "type", "local", "production", "explanation"), derived))
    return "\n\n".join(parts)


def _effective(config: PlatformConfig, attribute: str, section: str, name: str) -> str:
    holder: Any = getattr(config, attribute) if attribute != "profile" else config
    if section.startswith("topics."):
        holder = config.kafka.topic(section.partition(".")[2])
    value = getattr(holder, name)
    if isinstance(value, tuple) and value and all(isinstance(v, TopicSpec) for v in value):
        return ", ".join(f"`{v.name}`" for v in value)
    return _literal(value)


def _literal(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, Mapping):
        return "`{" + ", ".join(f'"{k}" = "{v}"' for k, v in value.items()).replace("|", "\\|") + "}`"
    return f"`{value}`"


def _value(key: TomlKey | None) -> str:
    return "(not set)" if key is None else "`" + key.value.replace("|", "\\|") + "`"


def _annotation(cls: type, name: str) -> str:
    annotation = {f.name: f.type for f in dataclasses.fields(cls)}[name]
    return (annotation if isinstance(annotation, str) else getattr(annotation, "__name__", str(annotation))).replace("|", "\\|")


# A word holding a <placeholder> (e.g. <run_dir>/alerts.log), not already in backticks.
_PLACEHOLDER_WORD = re.compile(r"(?<![`\w])[^\s`]*<[A-Za-z_][^<>`\s]*>[^\s`]*")


def _text(text: str) -> str:
    """Comment text for a table cell: pipes escaped, <placeholders> as code (not HTML tags)."""
    def code(match: re.Match[str]) -> str:
        word = match.group(0)
        body = word.rstrip(".,;:)")
        return f"`{body}`{word[len(body):]}"

    return _PLACEHOLDER_WORD.sub(code, text).replace("|", "\\|").replace("*", "\\*")


def _sentences(*parts: str) -> str:
    """Comment fragments as sentences: capitalised, and ending with a full stop unless they have one.

    Not capitalised: a fragment listing values (`local | timestream`) or starting with a name
    (`fixed-delay: …`, `restart_max_delay_ms …`), which are written as the code spells them."""
    sentences = []
    for part in (p.strip() for p in parts):
        if not part:
            continue
        first_word = re.split(r"[\s:]", part, maxsplit=1)[0]
        if part[0].islower() and " | " not in part and not any(c in first_word for c in "_-./`"):
            part = part[0].upper() + part[1:]
        sentences.append(part if part.endswith((".", "!", "?")) else part + ".")
    return " ".join(sentences)


def _table(headers: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _check_parsed_like_tomllib(text: str, parsed: dict[str, dict[str, TomlKey]]) -> None:
    """The line reader above must see what tomllib sees, or the reference would describe another file."""
    loaded = tomllib.loads(text)
    for section, keys in parsed.items():
        node: Any = loaded
        for part in section.split("."):
            node = node[part]
        scalars = {k: v for k, v in node.items() if not isinstance(v, dict)}
        if set(scalars) != set(keys) or any(tomllib.loads(f"v = {keys[k].value}")["v"] != scalars[k] for k in keys):
            raise ReferenceError(f"[{section}]: the reference's reading differs from tomllib's")


_INTRO = f"""# Configuration reference

Generated by `telemetry config reference --output docs/configuration.md` from the dataclasses in
`fleet/config/__init__.py` and the profiles `fleet/config/profiles/local.toml` and `production.toml`; do not edit it
by hand (`tests/unit/test_config_reference.py` fails when it differs from what the code generates).

{config_module.__doc__.strip().splitlines()[0]}
Sources, later ones winning:

1. the profile: `--profile local` (the default), `--profile production`, or a path to a `.toml` file;
2. environment variables `TELEMETRY__SECTION__KEY=value`, e.g. `TELEMETRY__KAFKA__BOOTSTRAP_SERVERS=broker:9092`
   (a topic: `TELEMETRY__TOPICS__DLQ__NAME`);
3. `--set section.key=value` on the command line, e.g. `telemetry --set flink.parallelism=2 run pipeline`.

An override takes the type of the profile's value; every value is checked when the configuration
loads, and a bad one stops the command with a message naming it (exit code 2).
`telemetry [--profile P] [--set …] config show [--json]` prints the configuration a command would
get, with every empty value resolved (paths under the run folder, the local broker's address).

Columns: the key, its type, its value in each profile as written there, and what it means (the
profile's comment, else the field's comment in the code). Fields the loader fills in itself follow
each section's keys in a second table, with their resolved values."""
