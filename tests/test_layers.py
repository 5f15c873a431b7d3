"""The package's layers (docs/architecture.md) hold: no import runs up a layer, no
import cycle, every module placed, and function-level imports only where the table
allows them.

The rule is the table in docs/architecture.md; the imports are read from the
source with ``ast`` (module level, inside functions and under ``TYPE_CHECKING``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "benchmark"
DOC = ROOT / "docs" / "architecture.md"
# where a function-level import of the package is allowed (docs/architecture.md says why)
LAZY_IMPORTERS = {"cli", "pytest_plugin", "suites"}


def layer_table(text: str) -> dict[str, int]:
    """{unit: layer} from the doc's table rows ``| 7 | `metrics`, ... | ... |``."""
    table = {}
    for row in re.finditer(r"^\|\s*(\d+)\s*\|([^|]*)\|", text, re.M):
        for unit in re.findall(r"`([\w.]+)`", row.group(2)):
            if unit in table:
                raise AssertionError(f"docs/architecture.md places {unit!r} twice")
            table[unit] = int(row.group(1))
    return table


@dataclass(frozen=True)
class Import:
    source: str  # the importing module, dotted
    target: str  # the imported module, dotted
    line: int
    local: bool  # inside a function


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(name: str) -> str:
    """The deepest module of the package that ``name`` names (``a.b.c`` where ``c`` is a
    function of module ``a.b``: ``a.b``)."""
    parts = name.split(".")
    while parts:
        base = ROOT.joinpath(*parts)
        if base.with_suffix(".py").exists() or (base / "__init__.py").exists():
            return ".".join(parts)
        parts.pop()
    raise AssertionError(f"{name!r} is not a module of the package")


def imports_of(path: Path) -> list[Import]:
    tree = ast.parse(path.read_text(), str(path))
    source = module_name(path)
    found = []

    def visit(node: ast.AST, local: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = local or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets = []
            if isinstance(child, ast.Import):
                targets = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                targets = [f"{child.module}.{a.name}" for a in child.names]
            elif isinstance(child, ast.ImportFrom) and child.level:
                raise AssertionError(f"{path}: relative import; write the absolute one")
            for target in targets:
                if target.split(".")[0] == "benchmark":
                    found.append(Import(source, resolve(target), child.lineno, inner))
            visit(child, inner)

    visit(tree, False)
    return found


def unit_of(module: str, table: dict[str, int]) -> str | None:
    """The table's name for ``module``: itself, or the subpackage holding it."""
    parts = module.split(".")[1:]
    for n in range(len(parts), 0, -1):
        if ".".join(parts[:n]) in table:
            return ".".join(parts[:n])
    return "benchmark" if not parts and "benchmark" in table else None


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def strong(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in edges.get(v, ()):
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            strong(v)
    return out


@pytest.fixture(scope="module")
def table() -> dict[str, int]:
    return layer_table(DOC.read_text())


@pytest.fixture(scope="module")
def imports() -> list[Import]:
    return [imp for path in sorted(PACKAGE.rglob("*.py")) for imp in imports_of(path)]


def test_every_module_has_a_layer(table):
    modules = [module_name(p) for p in sorted(PACKAGE.rglob("*.py"))]
    unplaced = [m for m in modules if unit_of(m, table) is None]
    assert not unplaced, (
        f"modules docs/architecture.md does not place: {unplaced}; add each to the layer "
        f"table there (a subpackage's name places all of its modules)"
    )
    stale = [u for u in table if u != "benchmark" and unit_of(f"benchmark.{u}", table) and not (
        (PACKAGE / f"{u.replace('.', '/')}.py").exists() or (PACKAGE / u.replace(".", "/")).is_dir()
    )]  # fmt: skip
    assert not stale, f"docs/architecture.md places modules that do not exist: {stale}"


def test_every_package_folder_is_a_regular_package():
    """A folder of modules without ``__init__.py`` imports from a clone (a namespace
    package) but is left out of the built wheel (setuptools' ``find`` skips it)."""
    folders = {p.parent for p in PACKAGE.rglob("*.py")}
    missing = sorted(str(f.relative_to(ROOT)) for f in folders if not (f / "__init__.py").exists())
    assert not missing, f"package folders without __init__.py: {missing}"


def test_no_import_runs_up_a_layer(table, imports):
    upward = []
    for imp in imports:
        src, dst = unit_of(imp.source, table), unit_of(imp.target, table)
        if table[dst] > table[src]:
            where = f"{imp.source.replace('.', '/')}.py:{imp.line}"
            upward.append(f"{where}: {src} (layer {table[src]}) imports {imp.target} "
                          f"(layer {table[dst]})")  # fmt: skip
    assert not upward, "imports that run up a layer (docs/architecture.md):\n" + "\n".join(upward)


def test_no_import_cycle(imports):
    edges: dict[str, set[str]] = {}
    for imp in imports:
        if imp.target != imp.source:
            edges.setdefault(imp.source, set()).add(imp.target)
    found = cycles(edges)
    assert not found, f"import cycles (counting imports inside functions): {found}"


def test_function_level_imports_only_where_the_table_allows(table, imports):
    local = sorted(
        {f"{i.source}:{i.line} imports {i.target}" for i in imports if i.local}
        - {
            f"{i.source}:{i.line} imports {i.target}"
            for i in imports
            if i.local and unit_of(i.source, table) in LAZY_IMPORTERS
        }
    )
    assert not local, (
        "imports inside functions outside the entry points; import at module level (the "
        "layers make that safe) or say in docs/architecture.md why not:\n" + "\n".join(local)
    )


def test_the_checks_catch_what_they_are_for():
    """The reader and the cycle finder on made-up input: an upward import and a cycle."""
    table = layer_table("| 2 | `top` | x |\n| 1 | `low`, `pkg` | y |\n")
    assert table == {"top": 2, "low": 1, "pkg": 1}
    assert unit_of("benchmark.pkg.inner", table) == "pkg"
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []
