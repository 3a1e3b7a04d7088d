"""The layout is the architecture: app.yml's events (the import rules: test_import_contracts.py)."""

from __future__ import annotations

from pathlib import Path

import yaml

from bot.service import HANDLED_EVENTS

ROOT = Path(__file__).resolve().parents[1]


# The import rules between the packages (bot, runner and action never import fakehub; fakehub
# never imports the product; githubkit only in the GitHub adapter; the runner uses only the
# protocol and pure helpers of the bot) are import-linter contracts in pyproject.toml, checked
# on the whole import graph by `lint-imports` and tests/test_import_contracts.py.


def test_app_manifest_subscribes_to_exactly_the_handled_events() -> None:
    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    assert set(manifest["default_events"]) == set(HANDLED_EVENTS)


def test_demo_app_subscribes_to_what_the_manifest_asks_for() -> None:
    from demo.pipeline import APP_EVENTS, APP_PERMISSIONS

    manifest = yaml.safe_load((ROOT / "app.yml").read_text())
    assert set(APP_EVENTS) == set(manifest["default_events"])
    assert APP_PERMISSIONS == manifest["default_permissions"]
