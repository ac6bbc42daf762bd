"""The layers of docs/architecture.md hold: no module imports one of a higher layer at import time,
and no two modules import each other in a circle. Read from the source (ast), so a new upward import
fails here, not when a Flink worker or a vehicle's agent first loads the module. Imports inside
functions are left out: they run late, after every module is loaded, and are how a command reaches
the heavy modules only when asked."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("edge_agent", "udfs", "connectors", "fleet", "jobs", "ingest", "lake", "infra", "device_sim")

# Most specific prefix first. Command-line entry modules sit on top whichever package holds them.
LAYERS: tuple[tuple[str, int], ...] = (
    ("fleet.cli", 6), ("ingest.cli", 6), ("device_sim.cli", 6), ("fleet.bench.pipeline_cli", 6),
    ("fleet.config", 3), ("fleet.text_table", 3),
    ("fleet", 5),
    ("jobs", 4), ("ingest", 4), ("lake", 4), ("infra", 4), ("device_sim", 4),
    ("connectors", 2), ("udfs", 1), ("edge_agent", 0),
)


def layer(module: str) -> int:
    for prefix, number in LAYERS:
        if module == prefix or module.startswith(prefix + "."):
            return number
    raise AssertionError(f"{module} is in no layer of docs/architecture.md")


def modules() -> dict[str, Path]:
    found = {}
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def top_level_imports(path: Path, known: dict[str, Path]) -> set[str]:
    deps = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                qualified = f"{node.module}.{alias.name}"
                deps.add(qualified if qualified in known else node.module)
        elif isinstance(node, ast.Import):
            deps.update(alias.name for alias in node.names)
    return {d for d in deps if d in known}


def import_graph() -> dict[str, set[str]]:
    known = modules()
    return {name: top_level_imports(path, known) - {name} for name, path in known.items()}


def test_no_module_imports_a_higher_layer():
    upward = sorted(f"{m} ({layer(m)}) imports {d} ({layer(d)})"
                    for m, deps in import_graph().items() for d in deps if layer(d) > layer(m))
    assert upward == []


def test_no_import_cycles():
    graph = import_graph()
    cycles = []
    for start in graph:  # a depth-first walk from each module back to itself: small graph, plain code
        stack = [(start, [start])]
        seen = set()
        while stack:
            node, path = stack.pop()
            for dep in graph[node]:
                if dep == start:
                    cycles.append(" -> ".join([*path, start]))
                elif dep not in seen:
                    seen.add(dep)
                    stack.append((dep, [*path, dep]))
    assert cycles == []


def test_the_walk_sees_the_known_imports():
    # The check above is only as good as its graph: a few imports every reader can confirm.
    graph = import_graph()
    assert "connectors.retry" in graph["connectors.kafka_offsets"]
    assert "edge_agent.rate" in graph["device_sim.report_rates"]
    assert all(not d.startswith(("fleet", "udfs", "device_sim")) for d in graph["edge_agent.agent"])
