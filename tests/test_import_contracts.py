"""The import contracts in pyproject.toml ([tool.importlinter]) hold, and each one catches a
planted violation.

`lint-imports` checks the real tree (as .ci/run does). The same contracts are then run on a
small tree laid out like ours (bot/core, bot/store, bot/adapters/github, runner, action,
fakehub, demo, stoneforge) that keeps every contract, and on copies of it with one bad import
planted: each must break the contract it names, and every contract must have a planted case, so
a contract that stopped matching anything would fail here rather than pass in silence.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")
CONFIG: dict[str, Any] = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"][
    "importlinter"
]
CONTRACT_IDS = [c["id"] for c in CONFIG["contracts"]]

# A tree that keeps every contract: the shapes our packages really have.
CLEAN_TREE = {
    "bot/__init__.py": "",
    "bot/core/__init__.py": "",
    "bot/core/protocol.py": "from pydantic import BaseModel\nfrom bot.core.model import Task\n",
    "bot/core/redact.py": "import re\n",
    "bot/core/model.py": "from dataclasses import dataclass\nfrom .graph import analyse\n",
    "bot/core/graph.py": "import graphlib\n",
    "bot/store/__init__.py": "import sqlalchemy\nfrom bot.core.model import Task\n",
    "bot/migrations/__init__.py": "import alembic\nfrom sqlalchemy import text\n",
    "bot/adapters/__init__.py": "",
    "bot/adapters/github/__init__.py": "import githubkit\nimport httpx\n",
    "bot/service.py": (
        "import os\nimport asyncio\nfrom bot.store import Store\n"
        "from bot.adapters.github import Client\nfrom bot.core import protocol\n"
    ),
    "runner/__init__.py": "",
    "runner/loop.py": (
        "import subprocess\nimport httpx\nfrom bot.core.protocol import Job\n"
        "from bot.core.redact import redact\nfrom runner import helper\n"
    ),
    "runner/helper.py": "import os\n",
    "action/__init__.py": "",
    "action/__main__.py": "import runner.loop\nfrom bot.core.protocol import Job\n",
    "fakehub/__init__.py": "",
    "fakehub/server.py": "import os\nimport socket\nfrom fakehub import state\n",
    "fakehub/state.py": "import threading\n",
    "demo/__init__.py": "",
    "demo/pipeline.py": "import subprocess\nfrom fakehub.server import FakeHub\n",
    "stoneforge/__init__.py": "",
    "stoneforge/cli.py": (
        "import bot.service\nimport runner.loop\nimport fakehub.server\nimport demo.pipeline\n"
    ),
}

# (contract id, file, planted source, the importer lint-imports must name)
PLANTED = [
    ("core-pure", "bot/core/model.py", "import os", "bot.core.model"),
    ("core-pure", "bot/core/model.py", "import os.path", "bot.core.model"),
    ("core-pure", "bot/core/model.py", "from time import monotonic", "bot.core.model"),
    ("core-pure", "bot/core/model.py", "from datetime import datetime", "bot.core.model"),
    ("core-pure", "bot/core/graph.py", "def f():\n    import subprocess", "bot.core.graph"),
    ("core-pure", "bot/core/redact.py", "import logging", "bot.core.redact"),
    ("core-pure", "bot/core/model.py", "from bot.store import Store", "bot.core.model"),
    ("core-pure", "bot/core/model.py", "from .. import service", "bot.core.model"),
    ("core-pure", "bot/core/model.py", "import sqlalchemy.orm", "bot.core.model"),
    ("core-pure", "bot/core/model.py", "import runner.helper", "bot.core.model"),
    ("no-fakehub", "bot/service.py", "from fakehub.server import FakeHub", "bot.service"),
    ("no-fakehub", "bot/core/model.py", "import fakehub", "bot.core.model"),
    ("no-fakehub", "runner/helper.py", "import fakehub.state", "runner.helper"),
    ("no-fakehub", "action/__main__.py", "from fakehub import server", "action.__main__"),
    ("no-fakehub", "bot/service.py", "import demo.view", "bot.service"),
    ("no-fakehub", "runner/loop.py", "from stoneforge import cli", "runner.loop"),
    ("runner-uses-protocol", "runner/loop.py", "from bot.service import x", "runner.loop"),
    ("runner-uses-protocol", "runner/helper.py", "from bot.store import Store", "runner.helper"),
    ("runner-uses-protocol", "runner/helper.py", "import bot.adapters.github", "runner.helper"),
    ("runner-uses-protocol", "runner/helper.py", "from bot.core.graph import a", "runner.helper"),
    ("runner-uses-protocol", "action/__main__.py", "from bot import service", "action.__main__"),
    ("fakehub-standalone", "fakehub/state.py", "from bot.core.model import Task", "fakehub.state"),
    ("fakehub-standalone", "fakehub/server.py", "import runner.loop", "fakehub.server"),
    ("fakehub-standalone", "fakehub/server.py", "from action import inputs", "fakehub.server"),
    ("fakehub-standalone", "fakehub/state.py", "from demo import pipeline", "fakehub.state"),
    ("github-adapter", "bot/service.py", "import githubkit", "bot.service"),
    ("github-adapter", "runner/helper.py", "from githubkit import GitHub", "runner.helper"),
    ("store-adapter", "bot/service.py", "from sqlalchemy import select", "bot.service"),
    ("store-adapter", "runner/loop.py", "import alembic.command", "runner.loop"),
    # For the contract on demo/ (id "demo-outside"), active once it is in pyproject.toml.
    ("demo-outside", "demo/pipeline.py", "import bot.service", "demo.pipeline"),
    ("demo-outside", "demo/pipeline.py", "from runner import loop", "demo.pipeline"),
]
PLANTED_NOW = [case for case in PLANTED if case[0] in CONTRACT_IDS]


def _toml_value(value: Any) -> str:
    # The contracts hold only strings, booleans and lists of strings: JSON spells them as TOML does.
    return json.dumps(value)


def _config_text() -> str:
    """The real [tool.importlinter] section, with allowed edges that a small tree does not use
    (for example an exemption of a file it does not have) not reported as unmatched."""
    lines = ["[tool.importlinter]"]
    lines += [f"{k} = {_toml_value(v)}" for k, v in CONFIG.items() if k != "contracts"]
    for contract in CONFIG["contracts"]:
        lines += ["", "[[tool.importlinter.contracts]]"]
        settings = {**contract, "unmatched_ignore_imports_alerting": "none"}
        if "ignore_imports" not in contract:
            del settings["unmatched_ignore_imports_alerting"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in settings.items()]
    return "\n".join(lines) + "\n"


def _lay_tree(root: Path, planted: tuple[str, str] | None = None) -> None:
    for name, source in CLEAN_TREE.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
    if planted is not None:
        name, source = planted
        with (root / name).open("a") as f:
            f.write(source + "\n")
    (root / "pyproject.toml").write_text(_config_text())


def _lint_imports(cwd: Path, *contracts: str) -> subprocess.CompletedProcess[str]:
    args = [str(LINT_IMPORTS), "--no-cache", "--no-logo"]
    for contract in contracts:
        args += ["--contract", contract]
    env = {**os.environ, "PYTHONPATH": str(cwd)}  # the tree's packages, not the installed ones
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_the_project_keeps_its_import_contracts() -> None:
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CONTRACT_IDS)} kept, 0 broken" in result.stdout


def test_a_tree_shaped_like_ours_keeps_every_contract(tmp_path: Path) -> None:
    _lay_tree(tmp_path)
    result = _lint_imports(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"{len(CONTRACT_IDS)} kept, 0 broken" in result.stdout


def test_every_contract_has_a_planted_violation() -> None:
    assert sorted({contract for contract, *_ in PLANTED_NOW}) == sorted(CONTRACT_IDS)


@pytest.mark.parametrize(
    ("contract", "path", "source", "importer"),
    PLANTED_NOW,
    ids=[f"{c}:{p}:{s.splitlines()[-1].strip()}" for c, p, s, _ in PLANTED_NOW],
)
def test_a_planted_import_breaks_its_contract(
    tmp_path: Path, contract: str, path: str, source: str, importer: str
) -> None:
    _lay_tree(tmp_path, planted=(path, source))
    result = _lint_imports(tmp_path, contract)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "0 kept, 1 broken" in result.stdout
    assert importer in result.stdout
