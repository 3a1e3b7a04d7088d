"""The layout is the architecture: import rules between the packages, and app.yml's events."""

from __future__ import annotations

import ast
from pathlib import Path

import yaml

from bot.service import HANDLED_EVENTS

ROOT = Path(__file__).resolve().parents[1]


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def _modules(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def test_bot_and_runner_never_import_fakehub() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for pkg in ("bot", "runner", "action")
        for p in _modules(pkg)
        if any(n.split(".")[0] == "fakehub" for n in _imports(p))
    ]
    assert offenders == []


def test_fakehub_never_imports_the_product() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _modules("fakehub")
        if any(n.split(".")[0] in {"bot", "runner", "action"} for n in _imports(p))
    ]
    assert offenders == []


def test_githubkit_only_in_the_github_adapter() -> None:
    adapter = ROOT / "bot" / "adapters" / "github"
    users = [
        p
        for pkg in ("bot", "runner", "action")
        for p in _modules(pkg)
        if any(n.split(".")[0] == "githubkit" for n in _imports(p))
    ]
    assert users, "the GitHub adapter no longer imports githubkit: update this test"
    assert [str(p.relative_to(ROOT)) for p in users if adapter not in p.parents] == []


def test_runner_uses_only_the_pure_core_of_the_bot() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _modules("runner")
        if any(n.startswith("bot") and not n.startswith("bot.core") for n in _imports(p))
    ]
    assert offenders == []


def test_app_manifest_subscribes_to_exactly_the_handled_events() -> None:
    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    assert set(manifest["default_events"]) == set(HANDLED_EVENTS)


def test_demo_app_subscribes_to_what_the_manifest_asks_for() -> None:
    from demo.pipeline import APP_EVENTS, APP_PERMISSIONS

    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    assert set(APP_EVENTS) == set(manifest["default_events"])
    assert APP_PERMISSIONS == manifest["default_permissions"]
