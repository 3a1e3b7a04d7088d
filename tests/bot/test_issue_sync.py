"""When a relabel restarts a failed task: GitHub's issue event times have whole seconds."""

from __future__ import annotations

import asyncio

import pytest

from bot.adapters.github import LabelApplication
from bot.core.model import IssueRef, Task, TaskState
from bot.core.plan import DRAFT_LABEL
from bot.service import Bot
from tests.bot.fakegithub import RecordingGitHub

REF = IssueRef("octo/app", 1)
TASK = Task("octo/app", 1, "t", state=TaskState.FAILED, created_at=100.0, dispatched_at=105.4)


@pytest.mark.parametrize(
    ("at", "removed_at", "restarts"),
    [
        (106.0, None, True),  # labeled after the last run
        (105.0, 105.0, True),  # same second as the run, but removed and put back
        (105.0, None, False),  # same second, never removed: the original labeling replayed
        (105.0, 104.0, False),  # removed before the run's second: the original labeling
        (104.0, 104.0, False),  # before the run
    ],
)
async def test_labeled_since_counts_a_put_back_label_in_the_same_second(
    bot: Bot,  # noqa: F811
    github: RecordingGitHub,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
    at: float,
    removed_at: float | None,
    restarts: bool,
) -> None:
    async def label_actor(inst: int, ref: IssueRef, label: str) -> LabelApplication | None:
        return LabelApplication("lead", "User", at, removed_at)

    monkeypatch.setattr(github, "label_actor", label_actor)
    assert await bot.sync._labeled_since(7, REF, "agent-ready", TASK) is restarts


async def test_labeled_since_without_a_labeling_is_false(
    bot: Bot,  # noqa: F811
    github: RecordingGitHub,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def label_actor(inst: int, ref: IssueRef, label: str) -> LabelApplication | None:
        return None

    monkeypatch.setattr(github, "label_actor", label_actor)
    assert await bot.sync._labeled_since(7, REF, "agent-ready", TASK) is False


async def test_syncs_of_one_issue_run_one_at_a_time_and_leave_no_lock_behind(
    bot: Bot,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    running: dict[IssueRef, int] = {}
    most: dict[IssueRef, int] = {}

    async def sync_issue(
        inst: int, ref: IssueRef, relabeled: bool, labeled_by: str | None, planned: object
    ) -> None:
        running[ref] = running.get(ref, 0) + 1
        most[ref] = max(most.get(ref, 0), running[ref])
        await asyncio.sleep(0.01)
        if ref.number == 3:
            raise RuntimeError("a failed sync releases its lock too")
        running[ref] -= 1

    sync = bot.sync
    monkeypatch.setattr(sync, "_sync_issue", sync_issue)
    other, failing = IssueRef("octo/app", 2), IssueRef("octo/app", 3)
    await asyncio.gather(*(sync.sync_issue(1, REF) for _ in range(4)), sync.sync_issue(1, other))
    assert most == {REF: 1, other: 1}
    assert running == {REF: 0, other: 0}
    with pytest.raises(RuntimeError):
        await sync.sync_issue(1, failing)
    assert sync._sync_locks == {}, "no lock kept for an issue nobody is syncing"


async def test_a_draft_of_a_plan_labeled_by_a_maintainer_is_no_task(
    bot: Bot,  # noqa: F811
    github: RecordingGitHub,  # noqa: F811
) -> None:
    github.add_issue("octo/app", 5, labels=("agent-ready", DRAFT_LABEL))
    await bot.sync.sync_issue(7, IssueRef("octo/app", 5), labeled_by="lead")
    assert await asyncio.to_thread(bot.store.get_task, IssueRef("octo/app", 5)) is None
    github.add_issue("octo/app", 6, labels=("agent-ready",))
    await bot.sync.sync_issue(7, IssueRef("octo/app", 6), labeled_by="lead")
    assert await asyncio.to_thread(bot.store.get_task, IssueRef("octo/app", 6)) is not None
