"""The package's layers (docs/architecture.md): no import runs from a lower layer up.

core (the flat modules of ``cgd``)  <  builders (``datasets_builders``)  <  programs (``cgd.eval``, ``cgd.analysis``, ``cgd.tools``,
``cgd.testing``, lighteval task files in ``eval_tasks``)  <  the demo (``cgd.demo``), which runs all of them.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORE = "core"
#: Layer rank of each top-level part; an import may only reach the same rank or lower.
RANKS = {
    CORE: 0,
    "datasets_builders": 1,
    "cgd.eval": 2,
    "cgd.analysis": 2,
    "cgd.testing": 2,
    "cgd.tools": 2,
    "eval_tasks": 2,
}
RANKS["cgd.demo"] = 3


def layer_of(module: str) -> str | None:
    """The layer a dotted module name belongs to (None for third-party modules)."""
    for prefix in (
        "cgd.eval",
        "cgd.analysis",
        "cgd.testing",
        "cgd.tools",
        "cgd.demo",
        "datasets_builders",
        "eval_tasks",
    ):
        if module == prefix or module.startswith(prefix + "."):
            return prefix
    if module == "cgd" or module.startswith("cgd."):
        return CORE
    return None


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path) -> list[str]:
    """Every module ``path`` imports, at any depth of the file (lazy imports count too)."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
            names += [f"{node.module}.{alias.name}" for alias in node.names]
    return names


SOURCES = sorted(p for top in ("cgd", "datasets_builders", "eval_tasks") for p in (ROOT / top).rglob("*.py"))


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_import_runs_from_a_lower_layer_up(path):
    own = layer_of(module_name(path))
    upward = [name for name in imported_modules(path) if (target := layer_of(name)) and RANKS[target] > RANKS[own]]
    assert not upward, f"{path.relative_to(ROOT)} ({own}) imports a higher layer: {upward}"


def test_the_check_sees_an_upward_import(tmp_path):
    """Negative control: a core module importing the demo is caught."""
    bad = ROOT / "cgd" / "_layer_probe.py"
    assert layer_of(module_name(bad)) == CORE
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from cgd.demo import run\n")
    assert [n for n in imported_modules(probe) if RANKS[layer_of(n) or CORE] > RANKS[CORE]]
