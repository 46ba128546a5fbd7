"""The folders are the architecture: data flows one way, no import circles, modules of a readable size.

Read from the source with `ast`, so that every import counts: at the top, inside functions and under
TYPE_CHECKING alike.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "tinypred"
UTILITIES = {"errors", "fileio", "geometry", "config", "lazy"}
# Each part of the package and the parts it may import; an import not listed here flows upward.
ALLOWED = {
    "errors": set(),
    "fileio": {"errors"},
    "geometry": set(),
    "config": {"errors"},
    "lazy": set(),
    "data": UTILITIES,
    "evaluation": UTILITIES | {"data"},
    "predictors": UTILITIES | {"data", "evaluation"},
    "training": UTILITIES | {"data", "evaluation", "predictors"},
    "report": UTILITIES | {"data", "evaluation"},
    # backprop imports nothing of the rest, so anything may use it: the profiler times its engine
    "experiments": UTILITIES | {"data", "evaluation", "predictors", "training", "report", "backprop"},
    "diagnostics": UTILITIES | {"data", "evaluation", "predictors", "training", "report"},
    "backprop": {"errors"},
    "cli": set(),  # filled below: the skin may use everything
    "__main__": {"cli"},  # `python -m tinypred` (and torchrun -m tinypred): the command line
}
ALLOWED["cli"] = set(ALLOWED) - {"cli", "__main__"}
MAX_LINES = 420  # "about 400": a longer module usually hides a second concept
ENGINE_MAX_LINES = 320  # the autodiff core, readable in one sitting (about 300)


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for p in sorted(SRC.rglob("*.py"))}


def imports(path: Path) -> set[str]:
    """Every tinypred module `path` imports (`from a.b import c` counts a.b.c when that is a module)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found |= {f"{node.module}.{a.name}" for a in node.names if f"{node.module}.{a.name}" in MODULES}
    return {name for name in found if name.split(".")[0] == "tinypred" and name != "tinypred"}


def part(module: str) -> str:
    """tinypred.data.scenes -> data; tinypred.cli -> cli."""
    return module.split(".")[1]


# `from package import submodule` inside the package names the package itself: not an edge.
GRAPH = {name: (imports(path) & set(MODULES)) - {name} for name, path in MODULES.items()}


def test_every_part_is_known_and_a_package_says_what_it_owns_and_may_import():
    for name, path in MODULES.items():
        if name == "tinypred":
            continue
        assert part(name) in ALLOWED, f"{name}: a new part of the package; add it to the layout"
        if path.name == "__init__.py":
            doc = ast.get_docstring(ast.parse(path.read_text())) or ""
            assert len(doc) > 200 and "import" in doc, f"{name}: say what it owns and what it may import"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_imports_flow_one_way(name):
    if name == "tinypred":
        return
    here = part(name)
    upward = sorted(m for m in GRAPH[name] if part(m) != here and part(m) not in ALLOWED[here])
    assert not upward, f"{name} imports {upward}; {here} may import only {sorted(ALLOWED[here])}"


def test_no_import_circles():
    state: dict[str, str] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(GRAPH[node]):
            if state.get(nxt) == "open":
                raise AssertionError("import circle: " + " -> ".join([*trail[trail.index(nxt) :], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_the_engine_does_not_know_the_hand_derived_blocks():
    engine = "tinypred.backprop.engine"
    assert engine in MODULES
    reachable, todo = set(), [engine]
    while todo:
        for nxt in GRAPH[todo.pop()] - reachable:
            reachable.add(nxt)
            todo.append(nxt)
    assert "tinypred.backprop.handgrad" not in reachable


def test_modules_are_a_readable_size():
    sizes = {name: len(path.read_text().splitlines()) for name, path in MODULES.items()}
    assert sizes["tinypred.backprop.engine"] <= ENGINE_MAX_LINES, sizes["tinypred.backprop.engine"]
    too_long = {name: n for name, n in sizes.items() if n > MAX_LINES}
    assert not too_long, too_long


def test_the_checker_sees_an_upward_import(tmp_path):
    """The rules above can fail: an upward import written into a module is reported."""
    bad = tmp_path / "m.py"
    bad.write_text("def f():\n    from tinypred.training.loop import train\n    return train\n")
    found = imports(bad)
    assert "tinypred.training.loop" in found
    assert not {part(m) for m in found} <= ALLOWED["data"]
