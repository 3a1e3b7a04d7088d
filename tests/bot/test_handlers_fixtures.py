"""Every recorded real webhook payload goes through the bot's handler.

GitHub's published examples (``tests/fixtures/webhooks``) predate current fields; the handler
must take each one without error and do what the event means: wake the steward for pull request
and check events, reconcile on installation events, and make a task only from a trigger label.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from bot.core.model import IssueRef
from bot.director.filing import DRAFT_LABEL
from bot.reporting import STATE_LABELS
from bot.service import Bot
from tests.bot.fakegithub import RecordingGitHub

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"
ALL = sorted(FIXTURES.glob("*/*.json"))


def _event(path: Path) -> str:
    return path.parent.name


@pytest.mark.parametrize("path", ALL, ids=lambda p: f"{p.parent.name}/{p.stem}")
def test_every_recorded_payload_is_handled(bot: Bot, github: RecordingGitHub, path: Path) -> None:
    payload: dict[str, Any] = json.loads(path.read_text())
    event = _event(path)

    async def run() -> None:
        bot.steward_wake.clear()
        await bot.handle(event, payload)
        await bot.reporter.idle()

    asyncio.run(run())
    calls = [name for name, _ in github.calls]
    if event in ("pull_request", "pull_request_review", "check_run", "check_suite", "status"):
        assert bot.steward_wake.is_set()
    if event == "installation" and payload.get("action") != "deleted":
        assert "installation_repos" in calls
    if event == "installation_repositories" and payload.get("repositories_added"):
        assert "installation_repos" in calls
    labeled = event == "issues" and (payload.get("label") or {}).get("name") == "agent-ready"
    if not labeled:
        assert bot.store.list_tasks() == [], "only the trigger label makes a task"


def test_a_recorded_labeled_payload_with_the_trigger_label_makes_a_task(
    bot: Bot, github: RecordingGitHub
) -> None:
    payload = json.loads((FIXTURES / "issues" / "labeled.json").read_text())
    payload["label"]["name"] = "agent-ready"
    payload["sender"]["login"] = "lead"
    payload["installation"] = {"id": 7, "node_id": "x"}  # App deliveries always carry it
    repo = payload["repository"]["full_name"]
    number = payload["issue"]["number"]
    github.add_issue(repo, number)

    async def run() -> None:
        await bot.handle("issues", payload)
        await bot.reporter.idle()

    asyncio.run(run())
    task = bot.store.get_task(IssueRef(repo, number))
    assert task is not None
    assert task.labeled_by == "lead"


def test_an_event_before_reconciliation_reads_the_repository_config_first(
    bot: Bot, github: RecordingGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deliveries are handled concurrently: a label can beat the installation's set-up.

    The repository's own trigger label (and agents, routing) must apply to it all the same,
    and concurrent first events read the configuration once.
    """
    payload = json.loads((FIXTURES / "issues" / "labeled.json").read_text())
    payload["label"]["name"] = "go-agents"
    payload["sender"]["login"] = "lead"
    payload["installation"] = {"id": 7, "node_id": "x"}
    repo = payload["repository"]["full_name"]
    number = payload["issue"]["number"]
    github.add_issue(repo, number, labels=("go-agents",))
    reads: list[str] = []

    async def file(inst: int, name: str, path: str, ref: str | None = None) -> tuple[str, str]:
        reads.append(path)
        await asyncio.sleep(0.05)  # a slow read: the second event arrives meanwhile
        return "version: 1\ntrigger_label: go-agents\nruns_on: [gpu]\n", "abc"

    monkeypatch.setattr(github, "file", file)

    async def run() -> None:
        await asyncio.gather(bot.handle("issues", payload), bot.repos.ensure(7, repo))
        await bot.reporter.idle()

    asyncio.run(run())
    task = bot.store.get_task(IssueRef(repo, number))
    assert task is not None, "the repository's trigger label made the task"
    assert task.runs_on == ("gpu",)
    assert reads == [".github/stoneforge.yml"]
    labels = tuple(sorted([*STATE_LABELS, "go-agents", DRAFT_LABEL]))
    assert ("ensure_labels", (repo, labels)) in github.calls


def test_an_event_about_an_issue_that_is_no_task_reads_no_blockers(
    bot: Bot, github: RecordingGitHub, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most issue events are about issues nobody labeled: one read, not three."""
    payload = json.loads((FIXTURES / "issues" / "opened.json").read_text())
    payload["installation"] = {"id": 7, "node_id": "x"}
    repo, number = payload["repository"]["full_name"], payload["issue"]["number"]
    github.add_issue(repo, number, labels=("bug",))
    reads: list[str] = []

    async def blocked_by(inst: int, ref: IssueRef) -> list[IssueRef]:
        reads.append("blocked_by")
        return []

    monkeypatch.setattr(github, "blocked_by", blocked_by)

    async def run() -> None:
        await bot.handle("issues", payload)
        await bot.reporter.idle()

    asyncio.run(run())
    assert ("issue", (IssueRef(repo, number),)) in github.calls
    assert reads == []
    assert bot.store.list_tasks() == []
