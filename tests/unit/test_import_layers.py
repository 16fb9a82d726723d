"""The import direction of DESIGN.md, enforced: a package imports only from its own
layer or below; the layer-2 siblings (cgroups, images, network) never import each
other; the runtime's start path imports nothing above cgroups."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "tomato"

LAYER = {
    "__init__": 0,
    "errors": 0, "_sys": 0, "records": 0, "fastjson": 0, "hashing": 0, "explain": 0, "sqlitedb": 0, "files": 0,
    "oci": 1,
    "cgroups": 2, "images": 2, "network": 2,
    "runtime": 3,
    "engine": 4, "lab": 4, "build": 4,
    "api": 5, "cli": 5,
}
SIBLINGS = {"cgroups", "images", "network"}


def _package(module: str) -> str:
    return module.split(".")[1] if module.startswith("tomato.") else ""


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, a.name) for a in node.names if a.name.startswith("tomato.")]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: stays inside the package
                continue
            if node.module == "tomato":
                found += [(node.lineno, f"tomato.{a.name}") for a in node.names]
            elif node.module and node.module.startswith("tomato."):
                found.append((node.lineno, node.module))
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
        elif own in SIBLINGS and target in SIBLINGS:
            bad.append(f"{rel}:{line} imports sibling {module}")
    assert not bad, "\n".join(bad)


def test_layer_map_covers_every_package() -> None:
    packages = {p.name for p in SRC.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in SRC.glob("*.py") if p.stem != "__init__"}
    assert packages | modules <= set(LAYER), sorted((packages | modules) - set(LAYER))
