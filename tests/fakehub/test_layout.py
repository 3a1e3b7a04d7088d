"""fakehub's own layout: its modules import each other without a circle, and nothing above it.

The graph counts every import statement, wherever it is (top level, inside a function, under
``TYPE_CHECKING``): a lazy import that closes a circle is still a circle. The checker is tested
on small packages written for the purpose, so a graph builder that saw nothing cannot pass.
"""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def import_graph(package: Path) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (``from pkg import mod`` included)."""
    root = package.parent
    modules = {module_name(p, root): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = name.split(".")
                    anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                    base = ".".join([*anchor, *([base] if base else [])])
                targets = [f"{base}.{alias.name}" for alias in node.names]
            for target in targets:
                # `from pkg import mod` names a module; `from pkg.mod import f` names a module's
                # attribute: the edge goes to the longest prefix that is one of our modules.
                parts = target.split(".")
                for end in range(len(parts), 0, -1):
                    candidate = ".".join(parts[:end])
                    if candidate in modules:
                        if candidate != name:
                            graph[name].add(candidate)
                        break
    return graph


def cycles(graph: dict[str, set[str]]) -> list[str]:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as err:
        return list(err.args[1])
    return []


def foreign_imports(package: Path, forbidden: set[str]) -> list[str]:
    out = []
    for path in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            out += [
                f"{path.relative_to(package.parent)}: {n}"
                for n in names
                if n.split(".")[0] in forbidden
            ]
    return out


def write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root / "pkg"


# --------------------------------------------------------------------------- the checker itself


def test_a_lazy_import_that_closes_a_circle_is_found(tmp_path: Path) -> None:
    pkg = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/api.py": "def routes():\n    from pkg import issues\n",
            "pkg/issues.py": "from typing import TYPE_CHECKING\n"
            "if TYPE_CHECKING:\n    from pkg.api import Ctx\n",
        },
    )
    graph = import_graph(pkg)
    assert graph["pkg.api"] == {"pkg.issues"}
    assert graph["pkg.issues"] == {"pkg.api"}
    assert set(cycles(graph)) == {"pkg.api", "pkg.issues"}


def test_relative_imports_and_attribute_imports_resolve_to_modules(tmp_path: Path) -> None:
    pkg = write(
        tmp_path,
        {
            "pkg/__init__.py": "",
            "pkg/rest/__init__.py": "from . import routes\n",
            "pkg/rest/routes.py": "from .issues import TABLE\nfrom ..hub import Hub\n",
            "pkg/rest/issues.py": "from pkg.rest.context import Ctx\nimport json\n",
            "pkg/rest/context.py": "from pkg import hub\n",
            "pkg/hub.py": "",
        },
    )
    graph = import_graph(pkg)
    assert graph["pkg.rest"] == {"pkg.rest.routes"}
    assert graph["pkg.rest.routes"] == {"pkg.rest.issues", "pkg.hub"}
    assert graph["pkg.rest.issues"] == {"pkg.rest.context"}
    assert graph["pkg.rest.context"] == {"pkg.hub"}
    assert cycles(graph) == []


# --------------------------------------------------------------------------- fakehub


def test_fakehub_has_no_import_circle() -> None:
    graph = import_graph(ROOT / "fakehub")
    assert "fakehub.rest.routes" in graph, "the REST package moved: update this test"
    assert sum(len(edges) for edges in graph.values()) > 50, "the graph builder saw nothing"
    assert cycles(graph) == []


def test_rest_route_modules_never_import_the_route_table() -> None:
    graph = import_graph(ROOT / "fakehub")
    table_users = sorted(name for name, edges in graph.items() if "fakehub.rest.routes" in edges)
    assert table_users == ["fakehub.server"]
    route_modules = graph["fakehub.rest.routes"] - {
        "fakehub.hub",
        "fakehub.rest.context",
        "fakehub.rest.endpoint",
    }
    assert len(route_modules) >= 10  # every route module (at least those there were)
    for module in route_modules:
        assert module.startswith("fakehub.rest.")
        assert "fakehub.rest.endpoint" not in graph[module]


def test_fakehub_imports_nothing_built_on_it() -> None:
    above = {"bot", "runner", "action", "demo", "stoneforge"}
    assert foreign_imports(ROOT / "fakehub", above) == []


def test_the_demo_view_does_not_import_the_demo() -> None:
    graph = import_graph(ROOT / "demo")
    assert graph["demo.view"] <= {"demo.sample"}
    assert cycles(graph) == []


@pytest.mark.parametrize("package", ["bot", "runner"])
def test_the_product_imports_neither_fakehub_nor_the_demo(package: str) -> None:
    assert foreign_imports(ROOT / package, {"fakehub", "demo", "stoneforge"}) == []
