from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest

from bot.core.graph import ReadySet, analyse
from bot.core.model import IssueRef, Task, TaskState

REPO = "octo/demo"


def ref(n: int, repo: str = REPO) -> IssueRef:
    return IssueRef(repo, n)


def task(n: int, *blockers: int | IssueRef, **fields: Any) -> Task:
    blocked_by = tuple(b if isinstance(b, IssueRef) else ref(b) for b in blockers)
    return Task(repo=REPO, number=n, title=f"task {n}", blocked_by=blocked_by, **fields)


def test_independent_tasks_are_ready_in_created_order() -> None:
    report = analyse(
        [task(2, created_at=5.0), task(1, created_at=9.0), task(3, created_at=5.0)], {}
    )
    assert report.ready == (ref(2), ref(3), ref(1))
    assert report.waiting == {}
    assert report.cycles == ()
    assert report.missing == {}


def test_blocked_task_waits_until_its_blocker_merges() -> None:
    queued = analyse([task(1), task(2, 1)], {})
    assert queued.ready == (ref(1),)
    assert queued.waiting == {ref(2): (ref(1),)}

    in_review = analyse([task(1, state=TaskState.IN_REVIEW), task(2, 1)], {})
    assert in_review.ready == ()
    assert in_review.waiting == {ref(2): (ref(1),)}

    merged = analyse([task(1, state=TaskState.MERGED), task(2, 1)], {})
    assert merged.ready == (ref(2),)
    assert merged.waiting == {}


@pytest.mark.parametrize("state", [TaskState.FAILED, TaskState.CANCELLED])
def test_failed_or_cancelled_blocker_is_not_done(state: TaskState) -> None:
    report = analyse([task(1, state=state), task(2, 1)], {})
    assert report.ready == ()
    assert report.waiting == {ref(2): (ref(1),)}


def test_only_queued_tasks_are_ready_or_waiting() -> None:
    tasks = [
        task(1, state=TaskState.RUNNING),
        task(2, state=TaskState.IN_REVIEW),
        task(3, 9, state=TaskState.FAILED),
        task(4, state=TaskState.MERGED),
    ]
    report = analyse(tasks, {ref(9): False})
    assert report.ready == ()
    assert report.waiting == {}


def test_external_blockers_done_not_done_and_missing() -> None:
    other = IssueRef("octo/lib", 7)
    tasks = [task(1, 50), task(2, 51), task(3, other), task(4, 50, 99)]
    report = analyse(tasks, {ref(50): True, ref(51): False, other: True})
    assert report.ready == (ref(1), ref(3))
    assert report.waiting == {ref(2): (ref(51),), ref(4): (ref(99),)}
    assert report.missing == {ref(4): (ref(99),)}


def test_missing_blocker_keeps_the_task_waiting() -> None:
    report = analyse([task(1, ref(3, "octo/elsewhere"))], {})
    assert report.ready == ()
    assert report.missing == {ref(1): (ref(3, "octo/elsewhere"),)}
    assert report.waiting == {ref(1): (ref(3, "octo/elsewhere"),)}


def test_cycles_of_two_and_three_and_a_self_loop() -> None:
    tasks = [
        task(1, 2),
        task(2, 1),  # 1 <-> 2
        task(3, 5),
        task(4, 3),
        task(5, 4),  # 3 -> 5 -> 4 -> 3
        task(6, 6),  # self-loop
        task(7, 1),  # behind a cycle: waits, but is not part of one
        task(8),
    ]
    report = analyse(tasks, {})
    assert report.cycles == ((ref(1), ref(2)), (ref(3), ref(4), ref(5)), (ref(6),))
    assert report.ready == (ref(8),)
    assert set(report.waiting) == {ref(n) for n in range(1, 8)}
    assert report.waiting[ref(6)] == (ref(6),)


def test_cycle_through_a_merged_task_is_not_a_deadlock() -> None:
    report = analyse([task(1, 2, state=TaskState.MERGED), task(2, 1)], {})
    assert report.cycles == ()
    assert report.ready == (ref(2),)


def test_priority_is_inherited_from_tasks_waiting_behind() -> None:
    # 1 (prio 4) blocks 2 (prio 3) blocks 3 (prio 0): 1 inherits 0 and goes before 4 (prio 1).
    tasks = [
        task(1, priority=4),
        task(2, 1, priority=3),
        task(3, 2, priority=0),
        task(4, priority=1),
    ]
    report = analyse(tasks, {})
    assert report.ready == (ref(1), ref(4))
    assert report.priority[ref(1)] == 0
    assert report.priority[ref(4)] == 1


def test_priority_does_not_flow_through_a_failed_task() -> None:
    tasks = [
        task(1, priority=4),
        task(2, 1, priority=4, state=TaskState.FAILED),
        task(3, 2, priority=0),
        task(4, priority=3),
    ]
    assert analyse(tasks, {}).ready == (ref(4), ref(1))


def test_longer_chain_breaks_priority_ties() -> None:
    # 1 has two tasks waiting in a chain behind it, 2 has one; 3 has none. Same priority.
    tasks = [
        task(3, created_at=0.0),
        task(2, created_at=1.0),
        task(1, created_at=2.0),
        task(10, 1),
        task(11, 10),
        task(20, 2),
    ]
    report = analyse(tasks, {})
    assert report.ready == (ref(1), ref(2), ref(3))
    assert report.chain[ref(1)] == 2
    assert report.chain[ref(2)] == 1
    assert report.chain[ref(3)] == 0


def test_ties_fall_back_to_repo_and_number() -> None:
    tasks = [
        Task(repo="octo/b", number=1, title=""),
        Task(repo="octo/a", number=2, title=""),
        Task(repo="octo/a", number=1, title=""),
    ]
    assert analyse(tasks, {}).ready == (ref(1, "octo/a"), ref(2, "octo/a"), ref(1, "octo/b"))


def test_duplicate_blockers_count_once() -> None:
    report = analyse([task(1, state=TaskState.MERGED), task(2, 1, 1, 3, 3), task(3)], {})
    assert report.waiting == {ref(2): (ref(3),)}
    assert report.ready == (ref(3),)


def _reference(tasks: list[Task], external: dict[IssueRef, bool]):
    """A slow, obviously correct version of analyse for comparison."""
    by_ref = {t.ref: t for t in tasks}

    def done(b: IssueRef) -> bool:
        if b in by_ref:
            return by_ref[b].state is TaskState.MERGED
        return external.get(b) is True

    pending = {TaskState.QUEUED, TaskState.RUNNING, TaskState.IN_REVIEW}
    behind: dict[IssueRef, set[IssueRef]] = {r: set() for r in by_ref}
    for t in by_ref.values():
        if t.state is TaskState.MERGED:
            continue
        for b in t.blocked_by:
            if b in by_ref and not done(b):
                behind[b].add(t.ref)

    def longest(r: IssueRef, seen: frozenset[IssueRef]) -> int:
        best = 0
        for d in behind[r]:
            if by_ref[d].state in pending and d not in seen:
                best = max(best, 1 + longest(d, seen | {d}))
        return best

    def reach(r: IssueRef) -> set[IssueRef]:
        out, todo = set(), [r]
        while todo:
            for d in behind[todo.pop()]:
                if by_ref[d].state in pending and d not in out:
                    out.add(d)
                    todo.append(d)
        return out

    ready = [
        t
        for t in by_ref.values()
        if t.state is TaskState.QUEUED and all(done(b) for b in t.blocked_by)
    ]
    prio = {t.ref: min([t.priority] + [by_ref[d].priority for d in reach(t.ref)]) for t in ready}
    ready.sort(
        key=lambda t: (
            prio[t.ref],
            -longest(t.ref, frozenset({t.ref})),
            t.created_at,
            t.repo,
            t.number,
        )
    )
    waiting = {
        t.ref: tuple(b for b in t.blocked_by if not done(b))
        for t in by_ref.values()
        if t.state is TaskState.QUEUED and not all(done(b) for b in t.blocked_by)
    }
    return tuple(t.ref for t in ready), waiting, prio


@pytest.mark.parametrize("seed", range(30))
def test_matches_a_naive_reference_on_random_dags(seed: int) -> None:
    rng = random.Random(seed)
    n = rng.randrange(2, 25)
    states = [TaskState.QUEUED] * 6 + [
        TaskState.RUNNING,
        TaskState.IN_REVIEW,
        TaskState.MERGED,
        TaskState.MERGED,
        TaskState.FAILED,
    ]
    tasks = []
    for i in range(1, n + 1):
        blockers = {ref(rng.randrange(1, i)) for _ in range(rng.randrange(0, 4)) if i > 1}
        if rng.random() < 0.15:
            blockers.add(ref(100 + rng.randrange(3)))  # external
        tasks.append(
            task(
                i,
                *sorted(blockers),
                priority=rng.randrange(5),
                created_at=float(rng.randrange(4)),
                state=rng.choice(states),
            )
        )
    external = {ref(100): True, ref(101): False}
    ready, waiting, prio = _reference(tasks, external)
    report = analyse(tasks, external)
    assert report.ready == ready
    assert report.waiting == waiting
    assert report.cycles == ()
    assert {r: report.priority[r] for r in ready} == prio
    assert set(report.missing) == {
        t.ref for t in tasks if ref(102) in t.blocked_by and t.state is not TaskState.MERGED
    }


def test_deep_chain_and_big_cycle_need_no_recursion() -> None:
    n = 20_000
    chain = [task(1)] + [task(i, i - 1) for i in range(2, n + 1)]
    report = analyse(chain, {})
    assert report.ready == (ref(1),)
    assert report.chain[ref(1)] == n - 1

    ring = [task(i, i % n + 1) for i in range(1, n + 1)]
    report = analyse(ring, {})
    assert report.ready == ()
    assert len(report.cycles) == 1
    assert len(report.cycles[0]) == n


def test_task_normalises_blocked_by() -> None:
    t = Task(repo=REPO, number=1, title="", blocked_by=["octo/demo#3", ("octo/x", 4), ref(3)])  # type: ignore[arg-type]
    assert t.blocked_by == (ref(3), ref(4, "octo/x"))
    assert all(type(b) is IssueRef for b in t.blocked_by)
    assert Task(repo=REPO, number=1, title="", state="queued").state is TaskState.QUEUED  # type: ignore[arg-type]


def test_priority_and_chain_cover_pending_tasks_only() -> None:
    tasks = [
        task(1, priority=3),
        task(2, 1, priority=1, state=TaskState.RUNNING),
        task(3, state=TaskState.MERGED),
        task(4, state=TaskState.FAILED),
    ]
    report = analyse(tasks, {})
    assert dict(report.priority) == {ref(1): 1, ref(2): 1}
    assert dict(report.chain) == {ref(1): 1, ref(2): 0}
    assert len(report.priority) == 2
    with pytest.raises(KeyError):
        report.priority[ref(3)]
    with pytest.raises(KeyError):
        report.chain[ref(99)]


def test_ready_set_updates_one_completion_at_a_time() -> None:
    ext = ref(50)
    tasks = [
        task(1, priority=3),
        task(2, 1, priority=2),
        task(3, 1, 2, ext),
        task(4, priority=2),
        task(5, 1, priority=0),
    ]
    ready_set = ReadySet(tasks, {ext: False})
    assert ready_set.ready == analyse(tasks, {ext: False}).ready == (ref(1), ref(4))
    assert ready_set.take(ref(1)) is True
    assert ready_set.take(ref(1)) is False
    assert ready_set.ready == (ref(4),)

    assert ready_set.mark_done(ref(1)) == (ref(5), ref(2))  # priority 0 first
    assert ready_set.mark_done(ref(1)) == ()  # idempotent
    assert ready_set.waiting_on(ref(3)) == {ref(2), ext}
    assert ready_set.mark_done(ref(2)) == ()
    assert ready_set.mark_done(ext) == (ref(3),)
    assert ready_set.ready == (ref(5), ref(3), ref(4))


@pytest.mark.parametrize("seed", range(10))
def test_ready_set_agrees_with_full_recompute(seed: int) -> None:
    rng = random.Random(seed)
    n = 40
    tasks = [
        task(i, *{rng.randrange(1, i) for _ in range(rng.randrange(3)) if i > 1})
        for i in range(1, n + 1)
    ]
    tasks = [dataclasses.replace(t, priority=rng.randrange(5)) for t in tasks]
    ready_set = ReadySet(tasks, {})
    for _ in range(25):
        if not ready_set.ready:
            break
        done = rng.choice(ready_set.ready)
        ready_set.mark_done(done)
        tasks = [
            dataclasses.replace(t, state=TaskState.MERGED) if t.ref == done else t for t in tasks
        ]
        assert set(ready_set.ready) == set(analyse(tasks, {}).ready)


def test_blockers_in_done_count_as_done_never_missing() -> None:
    """``done`` holds merged tasks the caller left out (the shell's working set)."""
    gone, other_repo, unknown = ref(90), ref(7, "octo/lib"), ref(91)
    tasks = [task(1, gone), task(2, gone, other_repo), task(3, gone, unknown), task(4, 1)]
    report = analyse(tasks, {}, done={gone, other_repo})
    assert report.ready == (ref(1), ref(2))
    assert report.waiting == {ref(3): (unknown,), ref(4): (ref(1),)}
    assert report.missing == {ref(3): (unknown,)}
    # Without it the same blockers are missing: the argument is what makes them done.
    without = analyse(tasks, {})
    assert without.ready == ()
    assert without.missing[ref(1)] == (gone,)


def test_a_task_present_wins_over_done() -> None:
    """A reference in ``done`` that is also a task here is judged by that task's state."""
    report = analyse([task(1, 2), task(2)], {}, done={ref(2)})
    assert report.ready == (ref(2),)
    assert report.waiting == {ref(1): (ref(2),)}


def test_ready_set_takes_done() -> None:
    ready_set = ReadySet([task(1, 90), task(2, 91)], {}, done={ref(90)})
    assert ready_set.ready == (ref(1),)
    assert ready_set.waiting_on(ref(2)) == {ref(91)}
