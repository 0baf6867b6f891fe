"""The package's layers (README, "How the code is organised"): a module imports only from its own layer or
the layers below it, and no two modules import each other, directly or through others."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "otlib"

LAYERS = {"core": 0, "ot": 1, "nn": 1, "data": 1, "w2bench": 2, "amos2023": 3, "enot2024": 3, "vegan2017": 3,
          "bench": 4, "report": 5, "reproduce": 6, "sweep": 6}
"""Lowest first. The three papers share a layer but never import one another."""
PAPERS = {"amos2023", "enot2024", "vegan2017"}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path) -> set[str]:
    """Every ``otlib.*`` module ``path`` imports, at any depth (lazy imports in functions included)."""
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("otlib.")}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("otlib"):
            out |= {f"{node.module}.{a.name}" for a in node.names}  # a submodule, or a name of the module
    return out


_RAW = {_module(p): _imports(p) for p in sorted(PACKAGE.rglob("*.py"))}
GRAPH = {m: {t if t in _RAW else t.rpartition(".")[0] for t in targets} - {m} for m, targets in _RAW.items()}
"""Module -> the otlib modules it imports (``from a.b import c`` names ``a.b.c`` when that is a module)."""


def _layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_every_top_level_part_has_a_layer():
    parts = {_layer(m) for m in GRAPH} - {""}
    assert parts <= set(LAYERS), f"give these a layer in LAYERS and in the README: {sorted(parts - set(LAYERS))}"
    top_modules = [p.name for p in PACKAGE.glob("*.py")]
    assert len(top_modules) <= 5, top_modules


@pytest.mark.parametrize("module", sorted(GRAPH))
def test_no_import_from_a_layer_above_or_another_paper(module):
    here = _layer(module)
    if not here:
        return
    for target in GRAPH[module]:
        there = _layer(target)
        assert LAYERS[there] <= LAYERS[here], f"{module} (layer {here}) imports {target} (layer {there}, above)"
        if here in PAPERS and there in PAPERS:
            assert here == there, f"{module} imports {target}: the papers' folders stand on their own"


def test_no_import_cycle():
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                pytest.fail("import cycle: " + " -> ".join(path[path.index(target):] + [target]))
            if target not in state:
                visit(target, path + [target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
