"""The import direction of DESIGN.md, enforced: a package imports only from its own
layer or below; the layer-2 siblings (cgroups, images, network) never import each
other, nor do the two edges (api, cli); the runtime's start path imports nothing
above cgroups; and no module imports itself back through others (a cycle), whether
the imports sit at the top of a module or inside a function."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tomato"

LAYER = {
    "__init__": 0,
    "errors": 0, "_sys": 0, "records": 0, "fastjson": 0, "hashing": 0, "explain": 0,
    "sqlitedb": 0, "files": 0,
    "oci": 1,
    "cgroups": 2, "images": 2, "network": 2,
    "runtime": 3,
    "engine": 4, "lab": 4, "build": 4,
    "api": 5, "cli": 5,
}
SIBLINGS = ({"cgroups", "images", "network"}, {"api", "cli"})

#: cycles known when this check began, each left to the issue whose files they are in:
#: the test fails on any other cycle, and once one of these is gone, on its entry here
KNOWN_CYCLES: dict[frozenset[str], str] = {}


def _package(module: str) -> str:
    return module.split(".")[1] if module.startswith("tomato.") else ""


def _module_name(path: Path) -> str:
    parts = path.relative_to(SRC.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _runtime_nodes(tree: ast.AST) -> list[ast.AST]:
    """Every node but those under ``if TYPE_CHECKING:`` (annotations only: never run,
    so they order no import and close no cycle)."""
    out: list[ast.AST] = []
    todo = [tree]
    while todo:
        node = todo.pop()
        out.append(node)
        if isinstance(node, ast.If) and isinstance(node.test, ast.Name) and \
                node.test.id == "TYPE_CHECKING":
            todo.extend(node.orelse)
            continue
        todo.extend(ast.iter_child_nodes(node))
    return out


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every ``tomato.`` module a file imports (relative imports resolved), with its line;
    ``from pkg import mod`` names the submodule when there is one."""
    tree = ast.parse(path.read_text(), str(path))
    package = _module_name(path).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("tomato.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[:len(package) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            if module != "tomato" and not module.startswith("tomato."):
                continue
            for alias in node.names:
                sub = f"{module}.{alias.name}"
                if (SRC.parent / sub.replace(".", "/")).with_suffix(".py").exists() or \
                        (SRC.parent / sub.replace(".", "/") / "__init__.py").exists():
                    found.append((node.lineno, sub))
                elif module != "tomato":
                    found.append((node.lineno, module))
    return found


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if "__pycache__" not in p.parts)


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_down(path: Path) -> None:
    rel = path.relative_to(SRC)
    own = rel.parts[0].removesuffix(".py") if len(rel.parts) > 1 else rel.stem
    if own not in LAYER:
        pytest.skip(f"{own} is not a layered package")
    bad = []
    for line, module in _imports(path):
        target = _package(module)
        if target not in LAYER or target == own:
            continue
        if LAYER[target] > LAYER[own]:
            bad.append(f"{rel}:{line} imports {module} (layer {LAYER[target]} > {LAYER[own]})")
        elif any(own in group and target in group for group in SIBLINGS):
            bad.append(f"{rel}:{line} imports sibling {module}")
    assert not bad, "\n".join(bad)


def _cycles() -> list[frozenset[str]]:
    """The strongly connected components (more than one module) of the import graph
    inside each package (Tarjan's algorithm, iteratively)."""
    graph: dict[str, set[str]] = {}
    for path in _modules():
        name = _module_name(path)
        graph[name] = {m for _, m in _imports(path) if m != name}
    for name in graph:
        graph[name] = {m for m in graph[name]
                       if m in graph and m.split(".")[:2] == name.split(".")[:2]}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, edges = work[-1]
            for nxt in edges:
                if nxt not in index:
                    index[nxt] = low[nxt] = len(index)
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, iter(sorted(graph[nxt]))))
                    break
                if nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = set()
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.add(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        found.append(frozenset(component))
    return found


def test_no_import_cycles_inside_a_package() -> None:
    cycles = _cycles()
    new = [sorted(c) for c in cycles if c not in KNOWN_CYCLES]
    assert not new, f"import cycles: {new}"
    gone = [owner for c, owner in KNOWN_CYCLES.items() if c not in cycles]
    assert not gone, f"a known cycle is gone: remove it from KNOWN_CYCLES ({gone})"


def test_the_cycle_check_finds_a_cycle(tmp_path: Path) -> None:
    """The check itself can fail: two modules importing each other inside functions."""
    global SRC
    pkg = tmp_path / "tomato" / "demo"
    pkg.mkdir(parents=True)
    (tmp_path / "tomato" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from tomato.demo import b\n")
    (pkg / "b.py").write_text("from . import a\n")
    saved, SRC = SRC, tmp_path / "tomato"
    try:
        assert _cycles() == [frozenset({"tomato.demo.a", "tomato.demo.b"})]
    finally:
        SRC = saved


def test_layer_map_covers_every_package() -> None:
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(LAYER), sorted((packages | modules) - set(LAYER))
