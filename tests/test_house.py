"""The shape of the code, kept: imports point one way (the layering of the architecture note),
no import cycles, and no module or class grows past the size a reader can hold.

These read the source, so a change that breaks the shape fails here with the edge or the
module named, instead of being found by the next person who has to carry the code on.
"""

from __future__ import annotations

import ast
import graphlib
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "conductor"
MODULE_LINES = 420  # "no module over about 400 lines"
CLASS_LINES = 260  # "no class over about 250"

# Lower layers first; a module imports only from its own layer or a lower one. The first
# prefix that matches a module's name gives its layer (so name packages before their parents).
LAYERS: list[tuple[str, ...]] = [
    # what everything may use: errors, records, the event catalogue, plain helpers
    (
        "errors",
        "models",
        "events",
        "text",
        "paths",
        "validation",
        "machine",
        "plain_table",
        "credentials",
        "private",
        "jail",
    ),
    # settings and declared data; git; the store
    ("config", "plan", "gitops", "workspace", "leftovers", "store", "costs", "prompts"),
    # coordination semantics over the store: the only door to it
    ("bus", "enforce", "worktrees"),
    # what sessions do through the bus
    ("actions", "tools"),
    # one session; the gates; the planner
    ("session", "gates", "planner"),
    # the run; workers on other hosts, which run its workstreams
    ("run", "supervisor", "remote"),
    # views and tools built on the run: the read model, its renderings (terminal, report, web),
    # notifications, doctor, demo
    (
        "readmodel",
        "view",
        "live",
        "dashboard",
        "doctor",
        "demo",
        "standin",
        "notify",
        "report",
        "web",
    ),
    # the command line
    ("cli", "__main__"),
]


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts).removesuffix(".__init__")


def source_modules() -> dict[str, Path]:
    return {
        module_name(p): p
        for p in sorted(PACKAGE.rglob("*.py"))
        if "demo_files" not in p.parts  # the demo's example repository, not conductor
    }


def imports_of(path: Path) -> set[str]:
    """The conductor modules `path` imports (at any depth, TYPE_CHECKING ones included: an
    annotation that needs a module above is the same dependency)."""
    found: set[str] = set()
    modules = source_modules()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "conductor":
                found.update(f"conductor.{a.name}" for a in node.names)
            elif node.module.startswith("conductor."):
                # `from conductor.x import y` where y is a submodule imports conductor.x.y too
                found.add(node.module)
                found.update(
                    f"{node.module}.{a.name}"
                    for a in node.names
                    if f"{node.module}.{a.name}" in modules
                )
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("conductor."))
    return found


def layer_of(module: str) -> int:
    name = module.removeprefix("conductor.")
    for rank, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if name == prefix or name.startswith(prefix + "."):
                return rank
    raise AssertionError(f"{module} is in no layer of tests/test_house.py: give it one")


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str

    def __str__(self) -> str:
        return f"{self.importer} -> {self.imported}"


def edges() -> list[Edge]:
    found = []
    for module, path in source_modules().items():
        for imported in sorted(imports_of(path)):
            if imported != module and imported != "conductor" and module != "conductor":
                found.append(Edge(module, imported))
    return found


def test_every_module_has_a_layer() -> None:
    for module in source_modules():
        if module != "conductor":
            layer_of(module)


def test_no_module_imports_a_layer_above_its_own() -> None:
    upward = [
        str(e)
        for e in edges()
        if not e.importer.startswith(e.imported + ".")  # a package's part naming the package
        and layer_of(e.imported) > layer_of(e.importer)
    ]
    assert upward == []


def test_there_is_no_import_cycle() -> None:
    graph: dict[str, set[str]] = {}
    for e in edges():
        if e.importer.startswith(e.imported + ".") or e.imported.startswith(e.importer + "."):
            continue  # a package and its parts (an __init__ re-exporting them)
        graph.setdefault(e.importer, set()).add(e.imported)
    try:
        tuple(graphlib.TopologicalSorter(graph).static_order())
    except graphlib.CycleError as cycle:
        pytest.fail(f"import cycle: {' -> '.join(cycle.args[1])}")


def test_config_is_settings_only() -> None:
    """The settings module describes settings; it does not pull in what consumes them."""
    imported = imports_of(source_modules()["conductor.config"])
    assert not {i for i in imported if layer_of(i) > layer_of("conductor.config")}


def test_no_module_is_over_about_400_lines() -> None:
    long = {
        m: n
        for m, p in source_modules().items()
        if (n := len(p.read_text().splitlines())) > MODULE_LINES
    }
    assert long == {}


def test_no_class_is_over_about_250_lines() -> None:
    long = {}
    for module, path in source_modules().items():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ClassDef) or node.end_lineno is None:
                continue
            if (n := node.end_lineno - node.lineno + 1) > CLASS_LINES:
                long[f"{module}.{node.name}"] = n
    assert long == {}


def test_sql_is_only_in_the_store() -> None:
    """SQL statements live in the store layer; anything else goes through the bus."""
    words = ("SELECT ", "INSERT INTO", "UPDATE ", "DELETE FROM", "CREATE TABLE")
    outside = [
        module
        for module, path in source_modules().items()
        if not module.startswith("conductor.store")
        and any(f'"{w}' in path.read_text() or f"'{w}" in path.read_text() for w in words)
    ]
    assert outside == []


def test_only_the_bus_reaches_into_the_store() -> None:
    """Outside the store and the bus, a store is opened and handed on, never asked anything:
    every question goes through the Bus (the door a second backend implements behind)."""
    reached = []
    for module, path in source_modules().items():
        if module.startswith(("conductor.store", "conductor.bus")):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute):
                continue
            owner = node.value
            name = owner.id if isinstance(owner, ast.Name) else getattr(owner, "attr", None)
            if name in ("store", "_store", "Store") and node.attr not in ("open", "open_blocking"):
                reached.append(f"{module}:{node.lineno}: {ast.unparse(node)}")
    assert reached == []
