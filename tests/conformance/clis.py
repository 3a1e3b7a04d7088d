"""The pinned agent CLIs (``clis/``), installed on first use for the test session.

``require(name)`` returns the binary's path. When the CLI could not be installed it skips the test
on a developer's machine and fails it under ``CI=true``: CI must run every CLI.
"""

from __future__ import annotations

import functools
import importlib.util
import json
import os
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


@functools.cache
def _installer() -> ModuleType:
    spec = importlib.util.spec_from_file_location("clis_install", ROOT / "clis" / "install.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@functools.cache
def _problems() -> dict[str, str]:
    """Install once per process (the installer's own lock serialises the pytest workers)."""
    try:
        return dict(_installer().install())
    except Exception as exc:  # noqa: BLE001 - any failure to install is a reason to skip/fail
        return {name: f"install failed: {exc}" for name in _installer().binaries()}


def require(name: str) -> Path:
    problem = _problems().get(name)
    if problem:
        message = f"agent CLI {name} unavailable: {problem}"
        if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
            pytest.fail(message)
        pytest.skip(message)
    return Path(_installer().binaries()[name])


def versions() -> dict[str, str]:
    """The pinned versions, as ``package.json`` and ``aider-requirements.txt`` give them."""
    deps = json.loads((ROOT / "clis" / "package.json").read_text())["dependencies"]
    names = {
        "claude": "@anthropic-ai/claude-code",
        "codex": "@openai/codex",
        "gemini": "@google/gemini-cli",
        "opencode": "opencode-ai",
        "copilot": "@github/copilot",
    }
    out = {cli: deps[pkg] for cli, pkg in names.items()}
    for line in (ROOT / "clis" / "aider-requirements.txt").read_text().splitlines():
        if line.startswith("aider-chat=="):
            out["aider"] = line.split("==", 1)[1]
    return out
