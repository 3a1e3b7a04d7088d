"""When a relabel restarts a failed task: GitHub's issue event times have whole seconds."""

from __future__ import annotations

import asyncio

import pytest

from bot.adapters.github import LabelApplication
from bot.core.model import IssueRef, Task, TaskState
from bot.issue_sync import IssueSync

REF = IssueRef("octo/app", 1)
TASK = Task("octo/app", 1, "t", state=TaskState.FAILED, created_at=100.0, dispatched_at=105.4)


class _Labels:
    def __init__(self, found: LabelApplication | None) -> None:
        self.found = found

    async def label_actor(self, inst: int, ref: IssueRef, label: str) -> LabelApplication | None:
        return self.found


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
    at: float, removed_at: float | None, restarts: bool
) -> None:
    sync = IssueSync()
    sync.github = _Labels(LabelApplication("lead", "User", at, removed_at))  # type: ignore[assignment]
    assert await sync._labeled_since(7, REF, "agent-ready", TASK) is restarts


async def test_labeled_since_without_a_labeling_is_false() -> None:
    sync = IssueSync()
    sync.github = _Labels(None)  # type: ignore[assignment]
    assert await sync._labeled_since(7, REF, "agent-ready", TASK) is False


async def test_syncs_of_one_issue_run_one_at_a_time_and_leave_no_lock_behind() -> None:
    class Sync(IssueSync):
        def __init__(self) -> None:
            self._sync_locks = {}
            self.running: dict[IssueRef, int] = {}
            self.most: dict[IssueRef, int] = {}

        async def _sync_issue(
            self, inst: int, ref: IssueRef, relabeled: bool, labeled_by: str | None
        ) -> None:
            self.running[ref] = self.running.get(ref, 0) + 1
            self.most[ref] = max(self.most.get(ref, 0), self.running[ref])
            await asyncio.sleep(0.01)
            if ref.number == 3:
                raise RuntimeError("a failed sync releases its lock too")
            self.running[ref] -= 1

    sync = Sync()
    other, failing = IssueRef("octo/app", 2), IssueRef("octo/app", 3)
    await asyncio.gather(*(sync.sync_issue(1, REF) for _ in range(4)), sync.sync_issue(1, other))
    assert sync.most == {REF: 1, other: 1}
    assert sync.running == {REF: 0, other: 0}
    with pytest.raises(RuntimeError):
        await sync.sync_issue(1, failing)
    assert sync._sync_locks == {}, "no lock kept for an issue nobody is syncing"
