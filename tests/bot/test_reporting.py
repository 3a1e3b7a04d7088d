"""The reporter's label writes: read the issue's labels once, then change only what moved."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.core.model import IssueRef, Task, TaskState
from bot.core.render import StatusView
from bot.reporting import WRITE_CONCURRENCY, Reporter
from bot.store import Store
from tests.bot.fakegithub import FakeGitHub

REF = IssueRef("octo/demo", 4)


def _view(state: TaskState) -> StatusView:
    task = Task(repo=REF.repo, number=REF.number, title="t", installation_id=1, state=state)
    return StatusView(task=task, html_base="http://hub")


async def _shown(github: FakeGitHub, reporter: Reporter, state: TaskState) -> list[tuple]:
    """Show ``state``, wait for the write, and return the label calls it made."""
    github.calls.clear()
    reporter.show(_view(state))
    await reporter.idle()
    return [c for c in github.calls if c[0] != "comment"]


def _issue_with(*labels: str) -> tuple[FakeGitHub, Reporter]:
    github = FakeGitHub()
    github.add_issue(REF.repo, REF.number, labels=("agent-ready", *labels))
    return github, Reporter(github, settle_s=0)


async def test_first_update_reads_the_labels_once_and_removes_only_stale_state_labels() -> None:
    github, reporter = _issue_with("stoneforge:needs-human")
    assert await _shown(github, reporter, TaskState.QUEUED) == [
        ("issue_labels", (REF,)),
        ("add_labels", (REF, ("stoneforge:queued",))),
        ("remove_label", (REF, "stoneforge:needs-human")),
    ]
    assert await _shown(github, reporter, TaskState.RUNNING) == [
        ("add_labels", (REF, ("stoneforge:running",))),
        ("remove_label", (REF, "stoneforge:queued")),
    ]
    assert github.labels[REF] == {"agent-ready", "stoneforge:running"}


async def test_a_label_already_right_after_a_restart_is_left_alone() -> None:
    github, reporter = _issue_with("stoneforge:running")
    assert await _shown(github, reporter, TaskState.RUNNING) == [("issue_labels", (REF,))]


async def test_a_change_that_settles_at_once_writes_only_the_newest_state() -> None:
    github = FakeGitHub()
    github.add_issue(REF.repo, REF.number)
    reporter = Reporter(github, settle_s=0.05)
    reporter.show(_view(TaskState.QUEUED))
    reporter.show(_view(TaskState.RUNNING))  # dispatched right away
    await reporter.idle()
    assert [c for c in github.calls if c[0] == "add_labels"] == [
        ("add_labels", (REF, ("stoneforge:running",)))
    ]
    assert len([c for c in github.calls if c[0] == "comment"]) == 1


async def test_labels_noted_with_the_issue_spare_the_first_read() -> None:
    github, reporter = _issue_with("stoneforge:needs-human")
    reporter.note_labels(REF, ("agent-ready", "stoneforge:needs-human"))
    assert await _shown(github, reporter, TaskState.QUEUED) == [
        ("add_labels", (REF, ("stoneforge:queued",))),
        ("remove_label", (REF, "stoneforge:needs-human")),
    ]


async def test_a_view_older_than_the_stored_task_is_not_written(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        github = FakeGitHub()
        github.add_issue(REF.repo, REF.number)
        store.create_task(_view(TaskState.IN_REVIEW).task)  # another replica moved it on
        reporter = Reporter(github, store, settle_s=0)
        reporter.show(_view(TaskState.RUNNING))
        await reporter.idle()
        assert github.calls == []
        reporter.show(_view(TaskState.IN_REVIEW))
        await reporter.idle()
        assert ("add_labels", (REF, ("stoneforge:in-review",))) in github.calls
    finally:
        store.close()


async def test_a_restarted_bot_does_not_write_what_is_already_shown(tmp_path: Path) -> None:
    """What was last written is remembered in the store: a new process (a restart, or
    another replica) showing the same status makes no GitHub call, not even a read."""
    store = Store(f"sqlite:///{tmp_path / 'bot.db'}")
    try:
        github = FakeGitHub()
        github.add_issue(REF.repo, REF.number)
        store.create_task(_view(TaskState.MERGED).task)
        first = Reporter(github, store, settle_s=0)
        first.show(_view(TaskState.MERGED))
        await first.idle()
        assert [c[0] for c in github.calls] == ["issue_labels", "comment"]
        github.calls.clear()
        restarted = Reporter(github, store, settle_s=0)
        restarted.show(_view(TaskState.MERGED))
        await restarted.idle()
        assert github.calls == []
        store.update_task(REF, state=TaskState.FAILED)  # relabeled and failed, say
        restarted.show(_view(TaskState.FAILED))
        await restarted.idle()
        assert ("add_labels", (REF, ("stoneforge:needs-human",))) in github.calls
    finally:
        store.close()


async def test_a_burst_of_issues_is_written_a_few_at_a_time(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """GitHub asks for serial writes (secondary rate limits); a burst must not flood it."""
    github = FakeGitHub()
    refs = [IssueRef(REF.repo, n) for n in range(1, 9)]
    for ref in refs:
        github.add_issue(ref.repo, ref.number)
    running, most = 0, 0

    async def slow_comment(inst: int, ref: IssueRef, marker: str, body: str) -> None:
        nonlocal running, most
        running += 1
        most = max(most, running)
        await asyncio.sleep(0.02)
        running -= 1

    monkeypatch.setattr(github, "upsert_comment", slow_comment)
    reporter = Reporter(github, settle_s=0)
    for ref in refs:
        task = Task(repo=ref.repo, number=ref.number, title="t", installation_id=1)
        reporter.show(StatusView(task=task, html_base="http://hub"))
    await reporter.idle()
    assert most == WRITE_CONCURRENCY
    assert {r for r in refs if "stoneforge:queued" in github.labels[r]} == set(refs)
