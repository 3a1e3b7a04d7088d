"""Stacked dispatch (``scheduling.dispatch: stacked``): each rule of ``bot.core.stacking``'s
docstring, the steward's base rule (``plan_merges`` with ``bases``) and ``scheduling.order``."""

from __future__ import annotations

from typing import Any

from bot.core.admission import Claimant, admit
from bot.core.config import RepoConfig
from bot.core.config_keys import Scheduling
from bot.core.graph import analyse
from bot.core.lifecycle import Unstacked
from bot.core.model import IssueRef, Task, TaskState
from bot.core.stacking import (
    StackBase,
    stack_base,
    stacked_ready,
    to_compare,
    unstack,
    wanted_base,
)
from bot.core.steward import PullSnapshot, plan_merges

REPO = "octo/demo"
Q, R, V, M, F = (
    TaskState.QUEUED,
    TaskState.RUNNING,
    TaskState.IN_REVIEW,
    TaskState.MERGED,
    TaskState.FAILED,
)


def ref(n: int, repo: str = REPO) -> IssueRef:
    return IssueRef(repo, n)


def task(n: int, state: TaskState, *blockers: int, **fields: Any) -> Task:
    values: dict[str, Any] = {"blocked_by": tuple(ref(b) for b in blockers), "created_at": n}
    if state in (V, M):
        values |= {"branch": f"stoneforge/{n}-t", "head_sha": f"sha{n}", "pr_number": 100 + n}
    values.update(fields)
    return Task(repo=REPO, number=n, title=f"task {n}", state=state, **values)


def by_ref(*tasks: Task) -> dict[IssueRef, Task]:
    return {t.ref: t for t in tasks}


def ready(*tasks: Task, stacked: bool = True) -> tuple[IssueRef, ...]:
    return stacked_ready(list(tasks), analyse(list(tasks), {}), lambda _: stacked)


# -- 1. which tasks may start on a blocker's branch ------------------------------------------


def test_a_task_whose_one_blocker_is_in_review_with_a_pull_request_is_ready() -> None:
    a, b = task(1, V), task(2, Q, 1)
    assert ready(a, b) == (ref(2),)
    assert ready(a, b, stacked=False) == ()
    assert stack_base(b, by_ref(a, b)) == StackBase(1, "stoneforge/1-t", "sha1")


def test_merged_blockers_do_not_count_against_the_one_it_stacks_on() -> None:
    a, m, b = task(1, V), task(3, M), task(2, Q, 1, 3)
    assert ready(a, m, b) == (ref(2),)


def test_a_blocker_still_running_or_without_its_pull_request_holds_it_back() -> None:
    assert ready(task(1, R), task(2, Q, 1)) == ()
    assert ready(task(1, V, pr_number=None), task(2, Q, 1)) == ()


def test_two_unmerged_blockers_hold_it_back() -> None:
    assert ready(task(1, V), task(3, V), task(2, Q, 1, 3)) == ()


def test_a_blocker_in_another_repository_holds_it_back() -> None:
    other = Task(repo="octo/lib", number=1, title="lib", state=V, branch="b", head_sha="s",
                 pr_number=9)  # fmt: skip
    b = Task(repo=REPO, number=2, title="b", blocked_by=(ref(1, "octo/lib"),))
    assert ready(other, b) == ()


def test_a_failed_blocker_holds_it_back() -> None:
    assert ready(task(1, F), task(2, Q, 1)) == ()


def test_a_chain_stacks_link_by_link_in_dispatch_order() -> None:
    # C on B (in review, itself stacked on A in review); D ready after a merge; E waits on C
    tasks = [task(1, V), task(2, V, 1, stacked_on=1), task(3, Q, 2), task(4, Q), task(5, Q, 3)]
    assert ready(*tasks) == (ref(3), ref(4))  # 3 has work behind it: first


# -- 3. the base each pull request wants ----------------------------------------------------


def test_a_stacked_pull_request_wants_its_blockers_branch_until_that_merged() -> None:
    a, b = task(1, V), task(2, V, 1, stacked_on=1, stacked_sha="sha1")
    assert wanted_base(b, by_ref(a, b), "main") == "stoneforge/1-t"
    merged = task(1, M)
    assert wanted_base(b, by_ref(merged, b), "main") == "main"
    assert wanted_base(task(2, V, 1), by_ref(a), "main") == "main"  # not stacked


def snapshot(n: int, base: str, **fields: Any) -> PullSnapshot:
    values: dict[str, Any] = {
        "number": 100 + n,
        "state": "open",
        "merged": False,
        "head_sha": f"sha{n}",
        "head_ref": f"stoneforge/{n}-t",
        "base_ref": base,
        "mergeable": True,
        "mergeable_state": "clean",
        "checks": {"ci": ("completed", "success")},
        "required": ("ci",),
    }
    return PullSnapshot(**(values | fields))


def plan(tasks: list[Task], pulls: dict[int, PullSnapshot]) -> dict[int, Any]:
    actions = plan_merges(
        tasks, {ref(n): p for n, p in pulls.items()}, now=0.0, bases={REPO: "main"}
    )
    return {a.task.number: a for a in actions}


def test_the_steward_waits_for_the_blocker_while_stacked_on_its_branch() -> None:
    a, b = task(1, V), task(2, V, 1, stacked_on=1, stacked_sha="sha1")
    actions = plan([a, b], {1: snapshot(1, "main"), 2: snapshot(2, "stoneforge/1-t")})
    assert actions[1].kind == "merge"
    assert actions[2].kind == "wait"
    assert actions[2].blockers == (ref(1),)


def test_once_the_blocker_merged_the_steward_retargets_to_the_base() -> None:
    a, b = task(1, M), task(2, V, 1, stacked_on=1, stacked_sha="sha1")
    action = plan([a, b], {2: snapshot(2, "stoneforge/1-t")})[2]
    assert (action.kind, action.base, action.sha) == ("retarget", "main", "sha2")


def test_retargeted_by_github_it_goes_the_normal_way() -> None:
    a, b = task(1, M), task(2, V, 1, stacked_on=1, stacked_sha="sha1")
    assert plan([a, b], {2: snapshot(2, "main")})[2].kind == "merge"
    behind = snapshot(2, "main", mergeable_state="behind")
    assert plan([a, b], {2: behind})[2].kind == "update_branch"


def test_never_merged_into_a_branch_that_is_not_the_base() -> None:
    # someone based an ordinary task's pull request on another branch: moved back, not merged
    lone = task(2, V)
    action = plan([lone], {2: snapshot(2, "feature")})[2]
    assert (action.kind, action.base) == ("retarget", "main")


def test_a_stacked_task_that_is_no_longer_stacked_is_moved_to_the_base() -> None:
    # sent back and redone from the base while its old pull request stays on the blocker
    a, b = task(1, V), task(2, V, 1)
    assert plan([a, b], {2: snapshot(2, "stoneforge/1-t")})[2].base == "main"


# -- 4. sent back ---------------------------------------------------------------------------


def test_a_moved_blocker_head_is_compared_with_where_the_task_started() -> None:
    a = task(1, V, head_sha="sha1-new")
    b = task(2, V, 1, stacked_on=1, stacked_sha="sha1")
    same = task(3, V, 1, stacked_on=1, stacked_sha="sha1-new")
    queued = task(4, Q, 1, stacked_on=1, stacked_sha="sha1")
    assert to_compare([a, b, same, queued]) == ((ref(2), "sha1", "sha1-new"),)
    assert to_compare([task(1, M), b]) == ()  # merged: nothing to send back


def test_a_rewritten_blocker_sends_its_stacked_tasks_back() -> None:
    a, b = task(1, V), task(2, V, 1, stacked_on=1, stacked_sha="sha1")
    assert unstack([a, b], set()) == ()
    assert unstack([a, b], {ref(2)}) == ((ref(2), Unstacked(102, 1, "rewritten")),)


def test_a_rejected_blocker_sends_its_stacked_tasks_back() -> None:
    b = task(2, V, 1, stacked_on=1, stacked_sha="sha1")
    for state in (TaskState.FAILED, TaskState.CANCELLED):
        assert unstack([task(1, state), b], set()) == ((ref(2), Unstacked(102, 1, "rejected")),)
    assert unstack([task(1, M), b], {ref(2)}) == ()  # merged: it only moves to the base


# -- scheduling.order -----------------------------------------------------------------------


def test_fifo_order_hands_tasks_out_in_the_order_they_were_labeled() -> None:
    # 3 has a chain of two behind it, so critical-path order puts it first
    tasks = [task(1, Q, created_at=1), task(3, Q, created_at=3), task(4, Q, 3), task(5, Q, 4)]
    order = analyse(tasks, {}).ready
    assert order == (ref(3), ref(1))
    fifo = RepoConfig(scheduling=Scheduling(order="fifo"))
    admitted = admit(tasks, order, lambda _: fifo, Claimant(), now=0.0).admitted
    assert admitted == (ref(1), ref(3))
    assert admit(tasks, order, lambda _: RepoConfig(), Claimant(), now=0.0).admitted == order
