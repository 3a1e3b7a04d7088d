from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from bot.core.lifecycle import BranchHeld, ChecksFailed, Failed, Rebasing
from bot.core.model import IssueRef, Task, TaskState
from bot.core.steward import (
    STEWARD_CHECK,
    PullSnapshot,
    Review,
    StewardAction,
    WaitFor,
    check_verdict,
    check_words,
    failure_text,
    flaky_checks,
    plan_merges,
)

REPO = "octo/demo"
GREEN = ("completed", "success")


def ref(n: int) -> IssueRef:
    return IssueRef(REPO, n)


def review(n: int, *blockers: int, **fields: Any) -> Task:
    values: dict[str, Any] = {
        "state": TaskState.IN_REVIEW,
        "pr_number": 100 + n,
        "head_sha": f"sha{n}",
        "blocked_by": tuple(ref(b) for b in blockers),
    }
    values.update(fields)
    return Task(repo=REPO, number=n, title=f"task {n}", **values)


def pull(n: int, **fields: Any) -> PullSnapshot:
    values: dict[str, Any] = {
        "number": 100 + n,
        "state": "open",
        "merged": False,
        "head_sha": f"sha{n}",
        "head_ref": f"stoneforge/{n}-task",
        "base_ref": "main",
        "mergeable": True,
        "mergeable_state": "clean",
        "checks": {"ci": GREEN},
        "required": ("ci",),
    }
    values.update(fields)
    return PullSnapshot(**values)


def plan_one(task: Task, snapshot: PullSnapshot | None) -> StewardAction:
    pulls = {} if snapshot is None else {task.ref: snapshot}
    (action,) = plan_merges([task], pulls, now=1000.0)
    assert action.task == task.ref
    assert action.reason
    return action


def test_clean_and_green_merges_with_the_head_sha() -> None:
    action = plan_one(review(1), pull(1))
    assert (action.kind, action.pr, action.sha) == ("merge", 101, "sha1")


@pytest.mark.parametrize("state", ["unstable", "has_hooks"])
def test_unstable_or_has_hooks_merges_when_required_checks_are_green(state: str) -> None:
    checks = {"ci": GREEN, "optional-lint": ("completed", "failure")}
    assert plan_one(review(1), pull(1, mergeable_state=state, checks=checks)).kind == "merge"


def test_no_snapshot_waits() -> None:
    action = plan_one(review(1), None)
    assert (action.kind, action.pr) == ("wait", 101)


def test_merged_pull_marks_the_task_merged() -> None:
    action = plan_one(review(1), pull(1, state="closed", merged=True))
    assert action.kind == "mark_merged"


def test_closed_pull_fails_the_task() -> None:
    action = plan_one(review(1), pull(1, state="closed"))
    assert action.kind == "fail"
    assert action.reason == "pull request closed without merging"


@pytest.mark.parametrize(
    "conclusion", ["failure", "cancelled", "timed_out", "action_required", None]
)
@pytest.mark.parametrize("mergeable_state", ["clean", "unstable", "behind", "dirty"])
def test_never_merge_red(conclusion: str | None, mergeable_state: str) -> None:
    snapshot = pull(
        1,
        mergeable_state=mergeable_state,
        checks={"ci": ("completed", conclusion), "build": GREEN},
        required=("build", "ci"),
    )
    action = plan_one(review(1), snapshot)
    assert action.kind != "merge"
    # Red while behind is tested again on the current base first; otherwise its agent fixes it.
    assert action.kind == ("update_branch" if mergeable_state == "behind" else "fix_checks")
    assert "'ci'" in action.reason


@pytest.mark.parametrize("conclusion", ["success", "neutral", "skipped"])
def test_green_conclusions(conclusion: str) -> None:
    snapshot = pull(1, checks={"ci": ("completed", conclusion)})
    assert plan_one(review(1), snapshot).kind == "merge"


@pytest.mark.parametrize(
    "checks",
    [{}, {"ci": ("in_progress", None)}, {"ci": ("queued", None)}, {"other": GREEN}],
)
def test_missing_or_unfinished_required_checks_wait(checks: dict) -> None:
    action = plan_one(review(1), pull(1, checks=checks, mergeable_state="blocked"))
    assert action.kind == "wait"
    assert "'ci'" in action.reason


def test_the_stewards_own_check_is_never_waited_on_even_when_required() -> None:
    checks = {"ci": GREEN, STEWARD_CHECK: ("in_progress", None)}
    snapshot = pull(1, checks=checks, required=("ci", STEWARD_CHECK))
    assert check_verdict(snapshot) == ("green", "")
    assert plan_one(review(1), snapshot).kind == "merge"


def test_the_stewards_check_tells_its_state_and_reason() -> None:
    waiting = plan_one(review(1), pull(1, checks={}))
    merged = plan_one(review(1), pull(1, merged=True))
    red = pull(1, checks={"ci": ("completed", "failure")})
    fixing, failed = plan_one(review(1), red), plan_one(review(1, fix_rounds=2), red)
    assert check_words(waiting) == (None, "waiting for required check 'ci'")
    assert check_words(merged) == ("success", "pull request #101 was merged")
    assert check_words(fixing) == (
        None,
        "required check 'ci' concluded failure; fix round 1 of 2; back to an agent",
    )
    assert check_words(failed) == (
        "failure",
        "required check 'ci' concluded failure, after 2 fix round(s)",
    )
    merging = plan_one(review(1), pull(1))
    assert check_words(merging)[0] is None
    assert check_words(merging)[1].startswith("merging: ")


def test_a_rule_requiring_approvals_waits_for_enough_people_to_approve() -> None:
    bot = Review(1, "helper[bot]", "APPROVED", author_type="Bot")
    changed_mind = [Review(2, "ann", "APPROVED"), Review(3, "ann", "CHANGES_REQUESTED")]
    ann_again = Review(4, "ann", "APPROVED")
    for reviews, kind in (
        ((bot,), "wait"),  # an App's approval never counts
        ((bot, *changed_mind, Review(5, "bob", "APPROVED")), "await_review"),
        ((bot, *changed_mind, ann_again, Review(5, "ann", "COMMENTED")), "wait"),
        ((*changed_mind, ann_again, Review(6, "bob", "APPROVED")), "merge"),
    ):
        task = review(1, review_id=3)
        action = plan_one(task, pull(1, required_approvals=2, reviews=reviews))
        assert action.kind == kind, reviews
        if kind == "wait":
            assert action.reason.startswith("waiting for approving reviews: ")


def test_red_wins_over_pending() -> None:
    snapshot = pull(
        1, checks={"a": ("in_progress", None), "b": ("completed", "failure")}, required=("a", "b")
    )
    assert check_verdict(snapshot) == ("red", "b")
    assert plan_one(review(1), snapshot).kind == "fix_checks"


def test_dirty_sends_a_rebase_against_the_head_it_saw() -> None:
    action = plan_one(review(1), pull(1, mergeable=False, mergeable_state="dirty"))
    assert (action.kind, action.sha) == ("rebase", "sha1")
    assert action.why == Rebasing(101, "main", "sha1")
    assert check_words(action) == (
        None,
        "pull request #101 conflicts with main; rebasing onto main",
    )


def test_a_branch_held_on_this_head_waits_and_a_new_head_is_rebased_again() -> None:
    held = review(1, reason=BranchHeld(101, "sha1", "a commit by @sam"))
    dirty = pull(1, mergeable=False, mergeable_state="dirty")
    action = plan_one(held, dirty)
    assert (action.kind, action.wait) == ("wait", WaitFor.HELD)
    assert "not rewritten" in action.reason
    moved = plan_one(held, replace(dirty, head_sha="sha2"))
    assert moved.kind == "rebase"
    assert moved.why == Rebasing(101, "main", "sha2")


def test_behind_updates_the_branch_guarded_by_head_sha() -> None:
    action = plan_one(review(1), pull(1, mergeable_state="behind", head_sha="abc"))
    assert (action.kind, action.sha, action.pr) == ("update_branch", "abc", 101)


@pytest.mark.parametrize(
    ("mergeable", "state"), [(None, "unknown"), (True, "unknown"), (None, "clean")]
)
def test_unknown_mergeability_waits(mergeable: bool | None, state: str) -> None:
    assert plan_one(review(1), pull(1, mergeable=mergeable, mergeable_state=state)).kind == "wait"


def test_blocked_by_branch_protection_waits() -> None:
    action = plan_one(review(1), pull(1, mergeable_state="blocked"))
    assert action.kind == "wait"
    assert "blocked" in action.reason


def test_no_required_checks_relies_on_mergeable_state() -> None:
    assert plan_one(review(1), pull(1, checks={}, required=())).kind == "merge"


def test_tasks_not_in_review_get_no_action() -> None:
    tasks = [replace(review(1), state=TaskState.QUEUED), replace(review(2), state=TaskState.MERGED)]
    assert plan_merges(tasks, {ref(1): pull(1), ref(2): pull(2)}, now=0.0) == ()


def test_dependency_order_waits_for_an_unmerged_blocker() -> None:
    tasks = [review(1), review(2, 1)]
    pulls = {ref(1): pull(1, mergeable_state="blocked"), ref(2): pull(2, base_ref="dev")}
    actions = {a.task: a for a in plan_merges(tasks, pulls, now=0.0)}
    assert actions[ref(1)].kind == "wait"
    assert actions[ref(2)].kind == "wait"
    assert "octo/demo#1" in actions[ref(2)].reason


@pytest.mark.parametrize("blocker_state", [TaskState.QUEUED, TaskState.RUNNING, TaskState.FAILED])
def test_blocker_in_other_states_also_blocks_the_merge(blocker_state: TaskState) -> None:
    blocker = Task(repo=REPO, number=1, title="", state=blocker_state)
    actions = plan_merges([blocker, review(2, 1)], {ref(2): pull(2)}, now=0.0)
    assert [a.kind for a in actions] == ["wait"]


def test_merged_blocker_and_external_blockers_do_not_block() -> None:
    blocker = Task(repo=REPO, number=1, title="", state=TaskState.MERGED)
    task = review(2, 1, 77)  # 77 is not a task: the graph already let the task run
    actions = plan_merges([blocker, task], {ref(2): pull(2)}, now=0.0)
    assert [a.kind for a in actions] == ["merge"]


def test_at_most_one_merge_per_base_branch() -> None:
    tasks = [review(3), review(1), review(2), review(4)]
    pulls = {
        ref(1): pull(1),
        ref(2): pull(2),
        ref(3): pull(3),
        ref(4): pull(4, base_ref="release"),
    }
    actions = plan_merges(tasks, pulls, now=0.0)
    by_task = {a.task: a for a in actions}
    assert [a.task for a in actions] == [ref(1), ref(2), ref(3), ref(4)]
    assert by_task[ref(1)].kind == "merge"
    assert by_task[ref(4)].kind == "merge"  # another base branch
    for n in (2, 3):
        assert by_task[ref(n)].kind == "wait"
        assert "queued behind pull request #101" in by_task[ref(n)].reason


def test_same_base_name_in_other_repositories_is_independent() -> None:
    other = Task(repo="octo/lib", number=1, title="", state=TaskState.IN_REVIEW, pr_number=5)
    pulls = {ref(1): pull(1), other.ref: pull(1, number=5)}
    kinds = [a.kind for a in plan_merges([review(1), other], pulls, now=0.0)]
    assert kinds == ["merge", "merge"]


def test_merge_pick_follows_priority_then_number() -> None:
    tasks = [review(1, priority=3), review(2, priority=1), review(3, priority=1)]
    pulls = {ref(n): pull(n) for n in (1, 2, 3)}
    merges = [a.task for a in plan_merges(tasks, pulls, now=0.0) if a.kind == "merge"]
    assert merges == [ref(2)]


def test_merge_pick_uses_inherited_priority() -> None:
    # 1 is urgent only because the urgent queued task 9 waits behind it.
    tasks = [
        review(1, priority=4),
        review(2, priority=2),
        Task(repo=REPO, number=9, title="", priority=0, blocked_by=(ref(1),)),
    ]
    pulls = {ref(1): pull(1), ref(2): pull(2)}
    merges = [a.task for a in plan_merges(tasks, pulls, now=0.0) if a.kind == "merge"]
    assert merges == [ref(1)]


def test_a_non_mergeable_first_task_does_not_hold_back_the_next() -> None:
    tasks = [review(1), review(2)]
    pulls = {ref(1): pull(1, mergeable_state="behind"), ref(2): pull(2)}
    first, second = plan_merges(tasks, pulls, now=0.0)
    assert second.kind == "merge"
    # Updating #1 now would be stale as soon as #2 lands: it waits for the next pass.
    assert first.kind == "wait"
    assert "front of the queue" in first.reason
    # After the merge the base moved; #1 is now the front and is brought up to date.
    merged = [review(1), review(2, state=TaskState.MERGED)]
    (again,) = plan_merges(merged, {ref(1): pull(1, mergeable_state="behind")}, now=1.0)
    assert again.kind == "update_branch"


def test_only_the_front_of_the_queue_is_brought_up_to_date() -> None:
    tasks = [review(n) for n in (1, 2, 3)]
    pulls = {ref(n): pull(n, mergeable_state="behind") for n in (1, 2, 3)}
    kinds = [a.kind for a in plan_merges(tasks, pulls, now=0.0)]
    assert kinds == ["update_branch", "wait", "wait"]


def test_behind_pull_requests_wait_while_the_front_runs_its_checks() -> None:
    tasks = [review(n) for n in (1, 2)]
    pulls = {
        ref(1): pull(1, checks={"ci": ("in_progress", None)}),  # up to date, CI running
        ref(2): pull(2, mergeable_state="behind"),
    }
    first, second = plan_merges(tasks, pulls, now=0.0)
    assert first.kind == "wait"
    assert "required check" in first.reason
    assert second.kind == "wait"
    assert "#101" in second.reason


def test_a_pull_request_that_cannot_merge_yet_does_not_hold_the_front() -> None:
    # #1 waits for its blocker (#3, not merged) and #2 for a re-review: #4 is the front.
    blocker = Task(repo=REPO, number=3, title="", state=TaskState.RUNNING)
    tasks = [review(1, 3), review(2, review_id=None), blocker, review(4)]
    changes = Review(id=5, author="lead", state="CHANGES_REQUESTED")
    pulls = {
        ref(1): pull(1, mergeable_state="behind"),
        ref(2): pull(2, mergeable_state="behind", reviews=(changes,)),
        ref(4): pull(4, mergeable_state="behind"),
    }
    kinds = {a.task.number: a.kind for a in plan_merges(tasks, pulls, now=0.0)}
    assert kinds == {1: "wait", 2: "revise", 4: "update_branch"}


def test_each_base_branch_has_its_own_front() -> None:
    tasks = [review(n) for n in (1, 2, 3)]
    pulls = {
        ref(1): pull(1, mergeable_state="behind"),
        ref(2): pull(2, mergeable_state="behind"),
        ref(3): pull(3, mergeable_state="behind", base_ref="release"),
    }
    kinds = [a.kind for a in plan_merges(tasks, pulls, now=0.0)]
    assert kinds == ["update_branch", "wait", "update_branch"]


def test_plan_is_deterministic() -> None:
    tasks = [review(n) for n in range(1, 6)]
    pulls = {ref(n): pull(n) for n in range(1, 6)}
    assert plan_merges(tasks, pulls, now=0.0) == plan_merges(list(reversed(tasks)), pulls, now=5.0)


def test_red_on_an_outdated_base_is_tested_again_before_failing() -> None:
    from bot.core.model import Task, TaskState
    from bot.core.steward import PullSnapshot, plan_merges

    task = Task(repo="o/r", number=1, title="t", state=TaskState.IN_REVIEW, pr_number=7)
    red = {"ci": ("completed", "failure")}

    def pull(state: str) -> PullSnapshot:
        return PullSnapshot(7, "open", False, "abc", "b", "main", True, state, red, ("ci",))

    (behind,) = plan_merges([task], {task.ref: pull("behind")}, now=0.0)
    assert behind.kind == "update_branch"
    assert "outdated base" in behind.reason
    (current,) = plan_merges([task], {task.ref: pull("blocked")}, now=0.0)
    assert current.kind == "fix_checks", "red while up to date is a real failure"


def test_a_front_whose_checks_never_come_stops_holding_the_queue() -> None:
    from bot.core.steward import FRONT_PATIENCE_S

    tasks = [review(1), review(2)]
    pulls = {
        ref(1): pull(1, checks={"ci": ("queued", None)}),  # up to date, CI never reports
        ref(2): pull(2, mergeable_state="behind"),
    }
    soon = plan_merges(tasks, pulls, now=100.0, pending_since={ref(1): 0.0})
    assert [a.kind for a in soon] == ["wait", "wait"]
    late = plan_merges(tasks, pulls, now=FRONT_PATIENCE_S + 1.0, pending_since={ref(1): 0.0})
    assert [a.kind for a in late] == ["wait", "update_branch"]
    assert "required check" in late[0].reason  # #1 itself still never merges without it


RED = ("completed", "failure")


def test_a_red_check_run_is_re_run_once_before_the_task_fails() -> None:
    task = review(1)
    red = pull(1, checks={"ci": RED}, check_ids={"ci": 7})
    (first,) = plan_merges([task], {task.ref: red}, now=0.0)
    assert (first.kind, first.check, first.check_id, first.sha) == ("rerun", "ci", 7, "sha1")

    reruns = {(REPO, "sha1", "ci"): 7}
    (asked,) = plan_merges([task], {task.ref: red}, now=0.0, reruns=reruns)
    assert (asked.kind, asked.wait) == ("wait", WaitFor.RERUN), "its new run has not reported"

    again = replace(red, check_ids={"ci": 8})
    (second,) = plan_merges([task], {task.ref: again}, now=0.0, reruns=reruns)
    assert second.kind == "fix_checks"
    assert "twice" in second.reason
    assert flaky_checks(REPO, again, reruns) == ()
    spent = replace(task, fix_rounds=2)
    (failed,) = plan_merges([spent], {task.ref: again}, now=0.0, reruns=reruns)
    assert (failed.kind, failed.check) == ("fail", "ci")
    assert "twice" in failed.reason


def test_a_re_run_is_per_head_and_a_commit_status_is_never_re_run() -> None:
    task = review(1)
    red = pull(1, checks={"ci": RED}, check_ids={"ci": 9})
    other_head = {(REPO, "sha0", "ci"): 7, ("octo/other", "sha1", "ci"): 7}
    (action,) = plan_merges([task], {task.ref: red}, now=0.0, reruns=other_head)
    assert (action.kind, action.check_id) == ("rerun", 9)

    status = pull(1, checks={"ci": RED})  # a commit status: no check run to re-run
    (fixing,) = plan_merges([task], {task.ref: status}, now=0.0)
    assert fixing.kind == "fix_checks"
    (failed,) = plan_merges([task], {task.ref: status}, now=0.0, fix_attempts={REPO: 0})
    assert failed.kind == "fail"
    assert "twice" not in failed.reason


def test_a_re_run_check_that_passes_is_a_flake_and_merges() -> None:
    task = review(1)
    green = pull(1, checks={"ci": GREEN, "lint": RED}, check_ids={"ci": 8, "lint": 3})
    reruns = {(REPO, "sha1", "ci"): 7, (REPO, "sha1", "lint"): 3, (REPO, "sha0", "x"): 1}
    assert flaky_checks(REPO, green, reruns) == ("ci",)
    assert plan_merges([task], {task.ref: green}, now=0.0, reruns=reruns)[0].kind == "merge"


def test_a_check_red_after_its_re_run_goes_back_to_the_agent_for_fix_attempts_rounds() -> None:
    snapshot = pull(
        1,
        checks={"ci": RED, "lint": ("completed", "timed_out"), "docs": GREEN},
        check_ids={"ci": 8, "lint": 4},
        required=("lint", "docs", "ci"),
    )
    reruns = {(REPO, "sha1", "lint"): 3}  # lint was re-run (now run 4) and is red again
    rounds = []
    for done in range(4):
        task = review(1, fix_rounds=done)
        (action,) = plan_merges(
            [task], {task.ref: snapshot}, now=0.0, reruns=reruns, fix_attempts={REPO: 3}
        )
        rounds.append(action.kind)
        if action.kind == "fix_checks":
            # every red required check goes to the agent, the round counted from the task's
            assert action.why == ChecksFailed(101, "sha1", done + 1, ("lint", "ci"))
            assert f"fix round {done + 1} of 3" in action.reason
        else:
            assert isinstance(action.why, Failed)
            assert action.why.reason.endswith("after 3 fix round(s)")
    assert rounds == ["fix_checks", "fix_checks", "fix_checks", "fail"]
    # the steward.fix_attempts of the task's own repository
    (other,) = plan_merges(
        [review(1, fix_rounds=2)],
        {ref(1): snapshot},
        now=0.0,
        reruns=reruns,
        fix_attempts={"octo/other": 5},
    )
    assert other.kind == "fail"


def test_failure_text_keeps_the_end_of_a_long_output() -> None:
    short = failure_text("ci", "failure", "ci failed", "1 failed in 0.2s", "FAILED test_x")
    assert short == "ci: failure\nci failed\n1 failed in 0.2s\nFAILED test_x"
    assert failure_text("ci", None, "ci") == "ci: no conclusion"
    long = failure_text("ci", "failure", "", "", "x" * 10_000 + "THE END")
    assert len(long) <= 4000
    assert long.endswith("THE END")
    assert "\n..." in long
