"""Stacked dispatch (``scheduling.dispatch: stacked``): which tasks start on a blocker's branch,
which base each pull request wants, and which stacked tasks go back.

The rules, stated once:

1. A queued task whose blockers are all done except one is *stackable* when that one is a task
   of the same repository in review with its work pushed (a branch, a head and a pull request):
   it is ready at once, in dispatch order among the others (``stacked_ready``). Two or more
   unmerged blockers, a blocker in another repository, or one still running: it waits, as after
   a merge. A chain stacks link by link (C on B on A).
2. Its job starts from the blocker's branch at the blocker's head (``stack_base``), and the task
   keeps which blocker and which head (``Task.stacked_on``, ``Task.stacked_sha``).
3. Its pull request is based on the blocker's branch while that blocker has not merged, and on
   the repository's base branch after (``wanted_base``): the steward retargets it (GitHub
   also does so by itself when the merged blocker's branch is deleted), and never merges a
   pull request whose base is not the repository's base branch.
4. A stacked task in review goes back to the queue, to start again from a fresh base, when its
   blocker is rejected (failed or cancelled) or its blocker's branch was rewritten: the head
   it started on is no longer in that branch (``unstack``; the caller asks GitHub which heads
   are no longer ancestors, ``to_compare`` says which to ask about). A rewritten blocker's
   dependents are redone rather than rebased: the rebase job replays every commit the branch
   has over its base, and the blocker's old commits would be replayed with them (it has no
   ``--onto`` from the old blocker head); a stacked task is young, so little work is redone.

Pure: the callers pass the tasks, the graph report and each repository's configuration.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass

from bot.core.graph import GraphReport
from bot.core.lifecycle import Unstacked
from bot.core.model import IssueRef, Task, TaskState


@dataclass(frozen=True)
class StackBase:
    """Where a stacked task starts: its blocker's issue number, branch and head."""

    blocker: int
    branch: str
    head: str


def stack_base(task: Task, by_ref: Mapping[IssueRef, Task]) -> StackBase | None:
    """The blocker ``task`` can start on top of (rule 1), or None."""
    live = [b for b in task.blocked_by if not _done(by_ref.get(b))]
    if len(live) != 1:
        return None
    blocker = by_ref.get(live[0])
    if (
        blocker is None
        or blocker.repo != task.repo
        or blocker.state is not TaskState.IN_REVIEW
        or not (blocker.branch and blocker.head_sha and blocker.pr_number)
    ):
        return None
    return StackBase(blocker.number, blocker.branch, blocker.head_sha)


def _done(task: Task | None) -> bool:
    # A blocker that is not a task was counted done (or missing) by the graph already: only
    # task blockers are looked at here.
    return task is None or task.state is TaskState.MERGED


def stacked_ready(
    tasks: Sequence[Task], report: GraphReport, stacked: Callable[[str], bool]
) -> tuple[IssueRef, ...]:
    """``report.ready`` with the stackable tasks of repositories where ``stacked(repo)`` holds,
    all in dispatch order."""
    by_ref = {t.ref: t for t in tasks}
    extra = [
        ref
        for ref, blockers in report.waiting.items()
        if stacked(ref.repo)
        and all(b in by_ref for b in blockers)
        and (task := by_ref.get(ref)) is not None
        and stack_base(task, by_ref) is not None
    ]
    if not extra:
        return report.ready
    ready = [*report.ready, *extra]
    ready.sort(key=lambda ref: report.dispatch_key(by_ref[ref]))
    return tuple(ready)


def stacked_blocker(task: Task, by_ref: Mapping[IssueRef, Task]) -> Task | None:
    """The blocker task ``task`` is stacked on, while that blocker has not merged."""
    if task.stacked_on is None:
        return None
    blocker = by_ref.get(IssueRef(task.repo, task.stacked_on))
    if blocker is None or blocker.state is TaskState.MERGED:
        return None
    return blocker


def wanted_base(task: Task, by_ref: Mapping[IssueRef, Task], default: str) -> str:
    """The base ``task``'s pull request should have (rule 3): its blocker's branch while it is
    stacked on an unmerged blocker, else the repository's base branch ``default``."""
    blocker = stacked_blocker(task, by_ref)
    if blocker is not None and blocker.branch:
        return blocker.branch
    return default


def to_compare(tasks: Sequence[Task]) -> tuple[tuple[IssueRef, str, str], ...]:
    """(stacked task in review, the head it started on, its blocker's head now) for each whose
    blocker's head moved since: is the first still in the second? (rule 4)."""
    by_ref = {t.ref: t for t in tasks}
    out = []
    for task in tasks:
        if task.state is not TaskState.IN_REVIEW or not task.stacked_sha:
            continue
        blocker = stacked_blocker(task, by_ref)
        if blocker is None or not blocker.head_sha or blocker.head_sha == task.stacked_sha:
            continue
        out.append((task.ref, task.stacked_sha, blocker.head_sha))
    return tuple(out)


def unstack(
    tasks: Sequence[Task], rewritten: Collection[IssueRef]
) -> tuple[tuple[IssueRef, Unstacked], ...]:
    """The stacked tasks in review that go back to the queue (rule 4), with their reason:
    the blocker failed or was cancelled, or the task is in ``rewritten`` (its start head is no
    longer in its blocker's branch, as GitHub said)."""
    by_ref = {t.ref: t for t in tasks}
    out = []
    for task in tasks:
        if task.state is not TaskState.IN_REVIEW:
            continue
        blocker = stacked_blocker(task, by_ref)
        if blocker is None:
            continue
        if blocker.state in (TaskState.FAILED, TaskState.CANCELLED):
            out.append((task.ref, Unstacked(task.pr_number, blocker.number, "rejected")))
        elif task.ref in rewritten:
            out.append((task.ref, Unstacked(task.pr_number, blocker.number, "rewritten")))
    return tuple(out)
