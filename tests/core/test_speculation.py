"""The speculative merge queue's decisions (``bot.core.speculation``): which pull requests are
tested together, what lands, what is re-run, taken out, dropped and built again."""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import replace

import pytest

from bot.core.model import IssueRef, Task, TaskState
from bot.core.speculation import (
    Candidate,
    CandidateCI,
    Entry,
    SpecDecision,
    candidate_ci,
    plan_speculation,
    ready_queue,
)
from bot.core.steward import PullSnapshot

REPO = "octo/app"
BASE = "b0" * 20
GREEN = CandidateCI("green")
RED_STATUS = CandidateCI("red", "ci")  # a commit status: cannot be re-run


def entry(n: int, *after: int, head: str | None = None) -> Entry:
    return Entry(
        IssueRef(REPO, n), 100 + n, head or f"h{n}", tuple(IssueRef(REPO, a) for a in after)
    )


class Builder:
    """Carries out decisions as ``bot.speculation`` does: each candidate a fresh commit id."""

    def __init__(self) -> None:
        self.count = 0
        self.contents: dict[str, frozenset[int]] = {BASE: frozenset()}  # commit -> tasks in it

    def build(self, decision: SpecDecision) -> list[Candidate]:
        out = list(decision.keep)
        parent = decision.build_on
        for e in decision.build:
            self.count += 1
            sha = f"c{self.count}"
            self.contents[sha] = self.contents[parent] | {e.task.number}
            out.append(Candidate(e, parent, sha, f"stoneforge/queue/main/{self.count}"))
            parent = sha
        return out


def test_a_first_batch_takes_the_first_k_in_queue_order_each_on_the_one_ahead() -> None:
    queue = [entry(n) for n in (1, 2, 3, 4, 5, 6)]
    decision = plan_speculation([], BASE, queue, {}, k=4)
    assert [e.task.number for e in decision.build] == [1, 2, 3, 4]
    assert decision.build_on == BASE
    assert (decision.land, decision.keep, decision.drop, decision.eject) == ((), (), (), None)
    batch = Builder().build(decision)
    assert [c.parent for c in batch] == [BASE, "c1", "c2", "c3"]


def test_green_candidates_land_in_order_and_the_batch_is_refilled_behind_them() -> None:
    queue = [entry(n) for n in range(1, 8)]
    builder = Builder()
    batch = builder.build(plan_speculation([], BASE, queue, {}, k=3))
    verdicts = {"c1": GREEN, "c2": GREEN}  # c3 still running
    decision = plan_speculation(batch, BASE, queue, verdicts, k=3)
    assert [c.sha for c in decision.land] == ["c1", "c2"]
    assert [c.sha for c in decision.keep] == ["c3"]
    assert [e.task.number for e in decision.build] == [4, 5]
    assert decision.build_on == "c3"
    assert decision.drop == ()


def test_nothing_happens_while_the_front_is_pending_even_with_a_red_one_behind() -> None:
    queue = [entry(n) for n in (1, 2, 3)]
    batch = Builder().build(plan_speculation([], BASE, queue, {}, k=3))
    decision = plan_speculation(batch, BASE, queue, {"c2": RED_STATUS}, k=3)
    assert decision.land == decision.drop == decision.build == ()
    assert decision.eject is None
    assert decision.rerun is None
    assert decision.keep == tuple(batch)


def test_a_red_candidate_lands_the_ones_ahead_takes_its_pr_out_and_retests_the_rest() -> None:
    queue = [entry(n) for n in (1, 2, 3, 4)]
    batch = Builder().build(plan_speculation([], BASE, queue, {}, k=4))
    verdicts = {"c1": GREEN, "c2": RED_STATUS, "c3": RED_STATUS, "c4": GREEN}
    decision = plan_speculation(batch, BASE, queue, verdicts, k=4)
    assert [c.sha for c in decision.land] == ["c1"]
    assert decision.eject is not None
    assert decision.eject.entry.task.number == 2
    assert decision.eject_check == "ci"
    assert [c.sha for c in decision.drop] == ["c2", "c3", "c4"], "c3, c4 contain #2"
    assert decision.keep == ()
    assert [e.task.number for e in decision.build] == [3, 4], "tested again without #2"
    assert decision.build_on == "c1"


def test_a_red_check_run_is_re_run_once_before_its_pr_is_taken_out() -> None:
    queue = [entry(n) for n in (1, 2)]
    batch = Builder().build(plan_speculation([], BASE, queue, {}, k=2))
    red_run = CandidateCI("red", "ci", check_id=77)
    first = plan_speculation(batch, BASE, queue, {"c1": red_run}, k=2)
    assert first.rerun is not None
    assert (first.rerun.sha, first.rerun_check_id) == ("c1", 77)
    assert first.eject is None
    assert first.drop == ()
    assert [c.rerun for c in first.keep] == [True, False]
    # its re-run is red too: out it goes
    second = plan_speculation(first.keep, BASE, queue, {"c1": red_run}, k=2)
    assert second.rerun is None
    assert second.eject is not None
    assert second.eject.entry.task.number == 1
    assert [e.task.number for e in second.build] == [2]
    assert second.build_on == BASE


def test_a_moved_base_drops_the_whole_batch_and_builds_it_again() -> None:
    queue = [entry(n) for n in (1, 2)]
    batch = Builder().build(plan_speculation([], BASE, queue, {}, k=2))
    decision = plan_speculation(batch, "moved" * 8, queue, {"c1": GREEN, "c2": GREEN}, k=2)
    assert decision.land == ()
    assert decision.drop == tuple(batch)
    assert [e.task.number for e in decision.build] == [1, 2]
    assert decision.build_on == "moved" * 8
    assert "not on" in decision.reasons[0]


def test_a_pr_whose_head_moved_or_that_left_the_queue_drops_itself_and_those_behind() -> None:
    queue = [entry(n) for n in (1, 2, 3)]
    batch = Builder().build(plan_speculation([], BASE, queue, {}, k=3))
    moved = [entry(1), entry(2, head="h2-new"), entry(3)]
    decision = plan_speculation(batch, BASE, moved, {}, k=3)
    assert [c.sha for c in decision.keep] == ["c1"]
    assert [c.sha for c in decision.drop] == ["c2", "c3"]
    assert [(e.task.number, e.head_sha) for e in decision.build] == [(2, "h2-new"), (3, "h3")]
    gone = plan_speculation(batch, BASE, [entry(2), entry(3)], {}, k=3)
    assert gone.drop == tuple(batch)
    assert [e.task.number for e in gone.build] == [2, 3]


def test_a_pr_follows_its_blockers_into_the_batch_and_never_lands_without_them() -> None:
    # 3 is blocked by 1 (in review, in line) and 4 by 9 (in review, not in line yet)
    queue = [entry(1), entry(3, 1), entry(4, 9), entry(5)]
    decision = plan_speculation([], BASE, queue, {}, k=4)
    assert [e.task.number for e in decision.build] == [1, 3, 5]
    # the blocker taken out: its dependent goes with it and is not built again without it
    batch = Builder().build(decision)
    out = plan_speculation(batch, BASE, queue, {"c1": RED_STATUS}, k=4)
    assert out.eject is not None
    assert out.eject.entry.task.number == 1
    assert [e.task.number for e in out.build] == [5]
    # the blocker's dependent waits when the blocker is not ahead of it
    alone = plan_speculation([], BASE, [entry(3, 1)], {}, k=4)
    assert alone.build == ()


def test_pull_requests_that_conflicted_with_the_batch_are_skipped_for_now() -> None:
    queue = [entry(n) for n in (1, 2, 3)]
    decision = plan_speculation([], BASE, queue, {}, k=3, exclude=frozenset({IssueRef(REPO, 2)}))
    assert [e.task.number for e in decision.build] == [1, 3]


def _run_queue(n: int, bad: set[int], k: int, seed: int) -> tuple[list[int], list[int], int]:
    """Drive ``plan_speculation`` to the end with CI that fails every candidate containing a
    bad pull request, finishing candidates in a random order; (landed, ejected, CI runs)."""
    rng = random.Random(seed)
    queue = [entry(i) for i in range(1, n + 1)]
    builder = Builder()
    base, batch = BASE, []
    verdicts: dict[str, CandidateCI] = {}
    landed: list[int] = []
    ejected: list[int] = []
    runs = 0
    for _ in range(10 * n):
        decision = plan_speculation(batch, base, queue, verdicts, k=k)
        assert len(decision.keep) + len(decision.build) <= k
        if decision.land:
            tip = decision.land[-1].sha
            assert verdicts[tip].verdict == "green", "only a tested, green commit lands"
            assert not builder.contents[tip] & bad
            landed += [c.entry.task.number for c in decision.land]
            base = tip
        if decision.eject is not None:
            ejected.append(decision.eject.entry.task.number)
        gone = {c.entry.task for c in decision.land} | _out(decision)
        queue = [e for e in queue if e.task not in gone]
        batch = builder.build(decision)
        runs += len(decision.build)
        if not batch and not queue:
            break
        running = [c for c in batch if c.sha not in verdicts]
        if running:  # one candidate's CI finishes
            done = rng.choice(running)
            verdicts[done.sha] = RED_STATUS if builder.contents[done.sha] & bad else GREEN
    return landed, ejected, runs


def _out(decision: SpecDecision) -> set[IssueRef]:
    return set() if decision.eject is None else {decision.eject.entry.task}


@pytest.mark.parametrize("seed", range(12))
def test_failures_are_bisected_out_every_good_pr_lands_in_order_and_no_bad_one_lands(
    seed: int,
) -> None:
    rng = random.Random(seed)
    n, k = 20, rng.choice([2, 3, 4, 6])
    bad = set(rng.sample(range(1, n + 1), rng.randint(0, 5)))
    landed, ejected, runs = _run_queue(n, bad, k, seed)
    good = [i for i in range(1, n + 1) if i not in bad]
    assert landed == good, "every good pull request lands, in queue order"
    assert sorted(ejected) == sorted(bad), "every bad one is taken out, once"
    # each failure costs at most the k - 1 runs behind it again
    assert runs <= n + len(bad) * (k - 1)


def test_without_failures_every_run_lands() -> None:
    landed, ejected, runs = _run_queue(12, set(), 4, seed=1)
    assert landed == list(range(1, 13))
    assert ejected == []
    assert runs == 12


# -- candidate_ci -------------------------------------------------------------------------------


def test_candidate_ci_by_the_required_checks() -> None:
    checks: Mapping[str, tuple[str, str | None]] = {
        "ci": ("completed", "success"),
        "lint": ("in_progress", None),
        "other": ("completed", "failure"),
    }
    assert candidate_ci(checks, {}, ["ci"]) == CandidateCI("green")
    assert candidate_ci(checks, {}, ["ci", "lint"]) == CandidateCI("pending", "lint")
    assert candidate_ci({}, {}, ["ci"]) == CandidateCI("pending", "ci")
    red = {"ci": ("completed", "failure"), "lint": ("queued", None)}
    assert candidate_ci(red, {"ci": 5}, ["lint", "ci"]) == CandidateCI("red", "ci", 5)


def test_candidate_ci_without_required_checks_waits_for_some_ci_and_then_all_of_it() -> None:
    assert candidate_ci({}, {}, []).verdict == "pending"
    assert candidate_ci({"stoneforge": ("completed", "success")}, {}, []).verdict == "pending"
    assert candidate_ci({"ci": ("completed", "success")}, {}, []).verdict == "green"
    assert candidate_ci({"ci": ("completed", "failure")}, {}, []).verdict == "red"


# -- ready_queue --------------------------------------------------------------------------------


def _task(n: int, *blockers: int, state: TaskState = TaskState.IN_REVIEW) -> Task:
    return Task(
        REPO,
        n,
        f"task {n}",
        state=state,
        pr_number=100 + n,
        head_sha=f"h{n}",
        blocked_by=tuple(IssueRef(REPO, b) for b in blockers),
    )


def _pull(n: int, **changes: object) -> PullSnapshot:
    pull = PullSnapshot(
        number=100 + n,
        state="open",
        merged=False,
        head_sha=f"h{n}",
        head_ref=f"b{n}",
        base_ref="main",
        mergeable=True,
        mergeable_state="clean",
        checks={"ci": ("completed", "success")},
        required=("ci",),
    )
    return replace(pull, **changes)  # type: ignore[arg-type]


def test_ready_queue_is_the_green_prs_in_dispatch_order_behind_or_not() -> None:
    tasks = [_task(1), _task(2), _task(3), _task(4), _task(5)]
    pulls = {
        IssueRef(REPO, 1): _pull(1),
        IssueRef(REPO, 2): _pull(2, mergeable_state="behind"),
        IssueRef(REPO, 3): _pull(3, checks={"ci": ("in_progress", None)}),
        IssueRef(REPO, 4): _pull(4, checks={"ci": ("completed", "failure")}),
        IssueRef(REPO, 5): _pull(5, mergeable=False, mergeable_state="dirty"),
    }
    queue = ready_queue(tasks, pulls, now=0.0)
    assert list(queue) == [(REPO, "main")]
    assert [e.task.number for e in queue[(REPO, "main")]] == [1, 2]


def test_ready_queue_lets_a_blocker_in_review_be_ahead_in_the_batch() -> None:
    tasks = [
        _task(1),
        _task(2, 1),  # blocked by a task in review: in line, after it
        _task(3, 9),  # blocked by a task still running: not in line
        _task(9, state=TaskState.RUNNING),
    ]
    pulls = {IssueRef(REPO, n): _pull(n) for n in (1, 2, 3)}
    (line,) = ready_queue(tasks, pulls, now=0.0).values()
    assert [(e.task.number, e.after) for e in line] == [(1, ()), (2, (IssueRef(REPO, 1),))]


def test_ready_queue_waits_for_required_approvals() -> None:
    tasks = [_task(1)]
    pulls = {IssueRef(REPO, 1): _pull(1, required_approvals=1, mergeable_state="blocked")}
    assert ready_queue(tasks, pulls, now=0.0) == {}
