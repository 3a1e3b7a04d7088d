"""bot/core is pure: no I/O, clock, environment or service modules (see bot/core/README.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

CORE = Path(__file__).resolve().parents[2] / "bot" / "core"
FORBIDDEN = {
    "subprocess", "socket", "os", "time", "datetime", "httpx", "githubkit", "sqlalchemy",
    "fastapi", "git", "requests", "asyncio", "logging", "random", "threading", "pathlib",
    "shutil", "urllib", "http", "sys",
}  # fmt: skip


def imported_modules(tree: ast.AST) -> list[str]:
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: stays inside bot.core
                names.append("bot.core." + (node.module or "") if node.level == 1 else "bot")
            else:
                names.append(node.module or "")
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id == "__import__"
        ):
            names.append("__import__")
    return names


def violations(source: str) -> list[str]:
    bad = []
    for name in imported_modules(ast.parse(source)):
        top = name.split(".")[0]
        if name == "__import__" or name == "importlib" or top in FORBIDDEN:
            bad.append(name)
        elif top == "bot" and not (name == "bot.core" or name.startswith("bot.core.")):
            bad.append(name)
    return bad


CORE_FILES = sorted(CORE.glob("*.py"))


def test_core_has_modules() -> None:
    assert {p.name for p in CORE_FILES} >= {"model.py", "refs.py", "graph.py", "steward.py"}


@pytest.mark.parametrize("path", CORE_FILES, ids=lambda p: p.name)
def test_core_module_is_pure(path: Path) -> None:
    assert violations(path.read_text()) == []


@pytest.mark.parametrize(
    "source",
    [
        "import os",
        "import os.path",
        "from time import time",
        "from datetime import datetime",
        "import subprocess as sp",
        "from bot import store",
        "from bot.store import Store",
        "from .. import store",
        "import sqlalchemy.orm",
        "def f():\n    import socket",
        "__import__('os')",
    ],
)
def test_checker_catches(source: str) -> None:
    assert violations(source) != []


def test_checker_allows_core_and_stdlib() -> None:
    source = (
        "import re\nfrom bot.core.model import Task\nfrom .graph import analyse\nimport graphlib"
    )
    assert violations(source) == []
