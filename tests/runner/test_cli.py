"""`stoneforge runner`: its options reach the runner."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import runner.loop
from stoneforge.cli import app


class _Runner:
    made: list[dict[str, Any]] = []

    def __init__(self, bot_url: str, token: str, **kwargs: Any) -> None:
        self.made.append({"bot_url": bot_url, "token": token, **kwargs})

    async def run(self, stop: asyncio.Event) -> None:
        return None


@pytest.fixture
def made(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    monkeypatch.setattr(runner.loop, "Runner", _Runner)
    monkeypatch.delenv("STONEFORGE_RUNNER_DISK_BUDGET_MB", raising=False)
    _Runner.made = []
    return _Runner.made


def test_the_disk_budget_is_an_option_and_an_environment_variable(
    made: list[dict[str, Any]], tmp_path: Path
) -> None:
    base = ["runner", "--bot-url", "http://bot", "--token", "t", "--work-dir", str(tmp_path)]
    cli = CliRunner()
    assert cli.invoke(app, base).exit_code == 0
    assert cli.invoke(app, [*base, "--disk-budget-mb", "500"]).exit_code == 0
    env = {"STONEFORGE_RUNNER_DISK_BUDGET_MB": "750"}
    assert cli.invoke(app, base, env=env).exit_code == 0
    assert [m["disk_budget_mb"] for m in made] == [None, 500, 750]
    refused = cli.invoke(app, [*base, "--disk-budget-mb", "0"])
    assert refused.exit_code == 2
    assert "disk-budget-mb" in refused.output


def test_the_shutdown_grace_is_an_option(made: list[dict[str, Any]], tmp_path: Path) -> None:
    base = ["runner", "--bot-url", "http://bot", "--token", "t", "--work-dir", str(tmp_path)]
    cli = CliRunner()
    assert cli.invoke(app, base).exit_code == 0
    assert cli.invoke(app, [*base, "--shutdown-grace-s", "75"]).exit_code == 0
    assert [m["shutdown_grace_s"] for m in made] == [20.0, 75.0]
