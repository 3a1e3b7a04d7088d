"""The shell acts on a task's typed reason, never on the wording of its ``detail``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from bot.adapters.github import LabelApplication
from bot.core.lifecycle import CancelCause, Cancelled, IllegalTransition, Restarted
from bot.core.model import IssueRef, Task, TaskState
from bot.dispatch import restarting
from bot.service import Bot
from tests.bot.fakegithub import RecordingGitHub

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "webhooks"


def _labeled(number: int) -> dict[str, object]:
    payload = json.loads((FIXTURES / "issues" / "labeled.json").read_text())
    payload["label"]["name"] = "agent-ready"
    payload["sender"]["login"] = "lead"
    payload["installation"] = {"id": 7}
    payload["issue"]["number"] = number
    return dict(payload)


async def test_a_relabeled_failed_task_restarts_from_the_base_by_its_typed_reason(
    bot: Bot,  # noqa: F811
    github: RecordingGitHub,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    repo = "Codertocat/Hello-World"
    ref = IssueRef(repo, 4)
    github.add_issue(repo, 4)
    bot.store.create_task(
        Task(repo, 4, "t", installation_id=7, state=TaskState.FAILED, created_at=1.0, attempt=3)
    )

    async def label_actor(inst: int, r: IssueRef, label: str) -> LabelApplication | None:
        return LabelApplication("lead", "User", 50.0, None)  # put back after it last ran

    monkeypatch.setattr(github, "label_actor", label_actor)
    await bot.handle("issues", _labeled(4))
    await bot.reporter.idle()
    task = bot.store.get_task(ref)
    assert task is not None
    assert (task.state, task.attempt, task.reason) == (TaskState.QUEUED, 0, Restarted("lead"))
    assert task.detail == "restart: relabeled"  # for people; the job reads the reason
    assert restarting(task) is True
    assert restarting(replace(task, reason=None)) is False, "the wording is not the state"


async def test_a_closed_issue_cancels_its_task_with_a_typed_cause(
    bot: Bot,  # noqa: F811
    github: RecordingGitHub,  # noqa: F811
) -> None:
    repo = "Codertocat/Hello-World"
    github.add_issue(repo, 5, state="closed")
    bot.store.create_task(Task(repo, 5, "t", installation_id=7))
    payload = _labeled(5)
    payload["action"] = "closed"
    await bot.handle("issues", payload)
    await bot.reporter.idle()
    task = bot.store.get_task(IssueRef(repo, 5))
    assert task is not None
    assert (task.state, task.reason) == (TaskState.CANCELLED, Cancelled(CancelCause.UNTRIGGERED))
    assert task.detail == "label removed or issue closed"


async def test_a_transition_the_lifecycle_does_not_allow_is_refused(
    bot: Bot,  # noqa: F811
) -> None:
    task = Task("o/r", 1, "t", installation_id=7, state=TaskState.MERGED)
    bot.store.create_task(task)
    with pytest.raises(IllegalTransition):
        await bot.views.transition(task, TaskState.QUEUED, Restarted("lead"))
    assert bot.store.get_task(task.ref) == task


async def test_a_state_change_without_a_reason_clears_the_last_one(
    bot: Bot,  # noqa: F811
) -> None:
    task = Task("o/r", 2, "t", installation_id=7, state=TaskState.FAILED, reason=Restarted("x"))
    bot.store.create_task(task)
    changed = await bot.set_state(task, TaskState.QUEUED, detail="handoff: stalled")
    assert changed.reason is None
    assert restarting(changed) is False
