"""The house's floors: each package imports only the floors below it, and no module circles.

Every import counts, function-level ones included (they used to hide a circle).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
OURS = ("core", "tools", "agents", "graph", "finetune", "eval", "configs")
# what each package may import besides itself; eval measures everything, so nothing imports it
ALLOWED = {
    "core": set(),
    "configs": set(),
    "tools": {"core"},
    "agents": {"core", "tools"},
    "graph": {"core", "tools", "agents"},
    "finetune": {"core", "tools"},
    "eval": {"core", "tools", "agents", "graph", "finetune"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Our modules a file imports, at any depth of the file."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in OURS}


def project_modules() -> dict[str, set[str]]:
    files = [p for pkg in OURS for p in (ROOT / pkg).rglob("*.py")]
    graph = {module_name(p): imports_of(p) for p in files}
    # keep only names that are modules (from x import y may name a function)
    return {m: {i for i in deps if i in graph} for m, deps in graph.items()}


def test_every_package_imports_only_the_floors_below_it():
    upward = [
        f"{module} imports {dep}"
        for module, deps in project_modules().items()
        for dep in deps
        if dep.split(".")[0] != module.split(".")[0]
        and dep.split(".")[0] not in ALLOWED[module.split(".")[0]]
    ]
    assert upward == []


def test_no_import_circles():
    deps = project_modules()
    # a package's __init__ importing its own submodules is not a circle of the house
    deps = {m: {d for d in ds if not m.startswith(d + ".") and d != m} for m, ds in deps.items()}
    state: dict[str, int] = {}
    circles: list[list[str]] = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for dep in sorted(deps.get(module, ())):
            if state.get(dep) == 1:
                circles.append([*path[path.index(dep):], dep] if dep in path else [module, dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[module] = 2

    for module in sorted(deps):
        if module not in state:
            visit(module, [module])
    assert circles == []


@pytest.mark.parametrize("package", ["tools", "agents", "finetune", "configs"])
def test_nothing_below_the_wiring_imports_graph(package):
    offenders = [m for m, ds in project_modules().items()
                 if m.split(".")[0] == package and any(d.split(".")[0] == "graph" for d in ds)]
    assert offenders == []
