"""Admission: the ready tasks a claim may take, in order, and a typed reason for each held one.
Each rule of ``bot.core.admission``'s docstring, in its order."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bot.core.admission import (
    Admission,
    Claimant,
    DayBudgetSpent,
    InstallationFull,
    MissingLabels,
    NoAgentFree,
    NotBefore,
    OtherBackend,
    Paused,
    RepoFull,
    admit,
)
from bot.core.config import AgentChoice, RepoConfig
from bot.core.config_keys import Budget, Concurrency, Scheduling
from bot.core.model import IssueRef, Task, TaskState

NOW = 1_000.0
DEFAULT = RepoConfig(agent=AgentChoice(name="claude"))


def task(repo: str, n: int, **fields: Any) -> Task:
    return replace(Task(repo=repo, number=n, title=f"task {n}", installation_id=1), **fields)


def run(
    tasks: list[Task],
    configs: dict[str, RepoConfig] | None = None,
    claimant: Claimant = Claimant(),
    spent: dict[str, float] | None = None,
    paused: frozenset[str] = frozenset(),
) -> Admission:
    ready = [t.ref for t in tasks if t.state is TaskState.QUEUED]
    known = configs or {}
    return admit(
        tasks,
        ready,
        lambda repo: known.get(repo, DEFAULT),
        claimant,
        now=NOW,
        spent_today=spent,
        paused_repos=paused,
    )


def test_every_ready_task_is_admitted_in_the_order_given() -> None:
    tasks = [task("o/a", 3), task("o/a", 1), task("o/b", 2)]
    assert run(tasks) == Admission((IssueRef("o/a", 3), IssueRef("o/a", 1), IssueRef("o/b", 2)))


def test_1_the_other_backend_takes_its_own_repositories() -> None:
    actions = DEFAULT.model_copy(update={"backend": "actions"})
    result = run([task("o/a", 1), task("o/b", 2)], {"o/b": actions})
    assert result.admitted == (IssueRef("o/a", 1),)
    assert result.held == {IssueRef("o/b", 2): OtherBackend("actions")}
    on_actions = run([task("o/a", 1)], claimant=Claimant(backend="actions", labels=None))
    assert on_actions.held == {IssueRef("o/a", 1): OtherBackend("runner")}


def test_2_runner_labels_must_cover_runs_on_unless_routed_elsewhere() -> None:
    gpu = task("o/a", 1, runs_on=("gpu", "linux"))
    assert run([gpu], claimant=Claimant(labels=frozenset({"linux"}))).held == {
        gpu.ref: MissingLabels(("gpu",))
    }
    assert run([gpu], claimant=Claimant(labels=frozenset({"gpu", "linux", "x"}))).admitted
    assert run([gpu], claimant=Claimant(labels=None)).admitted == (gpu.ref,)


def test_3_not_before_holds_until_then() -> None:
    later, past = task("o/a", 1, not_before=NOW + 5), task("o/a", 2, not_before=NOW - 5)
    result = run([later, past])
    assert result.admitted == (past.ref,)
    assert result.held == {later.ref: NotBefore(NOW + 5)}


def test_4_rate_limits_and_paused_agents_hold_it_unless_the_fallback_is_free() -> None:
    limited = task("o/a", 1, rate_limits=(("claude", NOW + 60),))
    assert run([limited]).held == {limited.ref: NoAgentFree(("claude",))}
    paused = Claimant(unavailable=frozenset({"claude"}))
    assert run([task("o/a", 2)], claimant=paused).held == {
        IssueRef("o/a", 2): NoAgentFree(("claude",))
    }
    expired = task("o/a", 3, rate_limits=(("claude", NOW - 1),))
    assert run([expired]).admitted == (expired.ref,)
    fallback = DEFAULT.model_copy(update={"fallback_agent": AgentChoice(name="codex")})
    assert run([limited], {"o/a": fallback}).admitted == (limited.ref,)


def test_5_a_repository_running_its_limit_takes_no_more() -> None:
    one = DEFAULT.model_copy(update={"concurrency": Concurrency(per_repo=1)})
    busy = task("o/a", 1, state=TaskState.RUNNING)
    result = run([busy, task("o/a", 2), task("o/b", 3)], {"o/a": one})
    assert result.admitted == (IssueRef("o/b", 3),)
    assert result.held == {IssueRef("o/a", 2): RepoFull(1)}


def test_6_an_installation_running_its_limit_takes_no_more() -> None:
    two = DEFAULT.model_copy(update={"concurrency": Concurrency(per_installation=2)})
    tasks = [
        task("o/a", 1, state=TaskState.RUNNING),
        task("o/b", 2, state=TaskState.RUNNING),
        task("o/b", 3),
        task("p/c", 4, installation_id=9),
    ]
    result = run(tasks, {"o/b": two, "p/c": two})
    assert result.admitted == (IssueRef("p/c", 4),)
    assert result.held == {IssueRef("o/b", 3): InstallationFull(2)}


def test_7_a_spent_daily_budget_holds_the_repository() -> None:
    five = DEFAULT.model_copy(update={"budget": Budget(per_day_usd=5.0)})
    tasks = [task("o/a", 1), task("o/b", 2)]
    result = run(tasks, {"o/a": five, "o/b": five}, spent={"o/a": 5.0, "o/b": 4.99})
    assert result.admitted == (IssueRef("o/b", 2),)
    assert result.held == {IssueRef("o/a", 1): DayBudgetSpent(5.0, 5.0)}


def test_the_first_rule_that_matches_is_the_reason() -> None:
    held = task("o/a", 1, not_before=NOW + 5, rate_limits=(("claude", NOW + 60),))
    assert run([held]).held == {held.ref: NotBefore(NOW + 5)}


def test_0_a_paused_task_or_any_task_of_a_paused_repository_is_held() -> None:
    tasks = [task("o/a", 1, paused=True), task("o/a", 2), task("o/b", 3), task("o/b", 4)]
    result = run(tasks, paused=frozenset({"o/b"}))
    assert result.admitted == (IssueRef("o/a", 2),)
    assert result.held == {
        IssueRef("o/a", 1): Paused("task"),
        IssueRef("o/b", 3): Paused("repository"),
        IssueRef("o/b", 4): Paused("repository"),
    }


def test_0_pause_comes_before_every_other_rule() -> None:
    actions = DEFAULT.model_copy(update={"backend": "actions"})
    result = run([task("o/a", 1, paused=True)], {"o/a": actions})
    assert result.held == {IssueRef("o/a", 1): Paused("task")}


# --- file-aware scheduling ---------------------------------------------------------------


def _running(repo: str, n: int, *files: str) -> Task:
    return task(repo, n, state=TaskState.RUNNING, files=files)


def test_a_task_touching_a_running_tasks_files_goes_after_every_other_admitted_task() -> None:
    busy = _running("o/a", 1, "src/app.py", "README.md")
    tasks = [
        busy,
        task("o/a", 2, files=("src/app.py",)),  # overlaps
        task("o/a", 3, files=("src/other.py",)),
        task("o/a", 4, files=("docs/",)),
        task("o/a", 5, files=("README.md", "x")),  # overlaps
        task("o/a", 6),  # says nothing: no overlap
    ]
    result = run(tasks)
    assert result.admitted == tuple(IssueRef("o/a", n) for n in (3, 4, 6, 2, 5)), (
        "clear ones first, each group in dispatch order"
    )
    assert result.held == {}


def test_an_overlapping_task_still_runs_when_nothing_else_is_ready() -> None:
    result = run([_running("o/a", 1, "src/app.py"), task("o/a", 2, files=("src/app.py",))])
    assert result.admitted == (IssueRef("o/a", 2),)


def test_a_directory_overlaps_the_files_under_it_but_not_a_sibling_with_its_prefix() -> None:
    busy = _running("o/a", 1, "src/core")
    tasks = [
        busy,
        task("o/a", 2, files=("src/core/plan.py",)),
        task("o/a", 3, files=("src/core_extra.py",)),
    ]
    assert run(tasks).admitted == (IssueRef("o/a", 3), IssueRef("o/a", 2))


def test_files_running_in_another_repository_do_not_count() -> None:
    tasks = [
        _running("o/b", 1, "src/app.py"),
        task("o/a", 2, files=("src/app.py",)),
        task("o/a", 3, files=("lib.py",)),
    ]
    assert run(tasks).admitted == (IssueRef("o/a", 2), IssueRef("o/a", 3))


def test_a_repository_that_turns_file_aware_scheduling_off_keeps_dispatch_order() -> None:
    off = DEFAULT.model_copy(update={"scheduling": Scheduling(file_aware=False)})
    tasks = [
        _running("o/a", 1, "src/app.py"),
        task("o/a", 2, files=("src/app.py",)),
        task("o/a", 3, files=("lib.py",)),
        _running("o/b", 4, "src/app.py"),
        task("o/b", 5, files=("src/app.py",)),
        task("o/b", 6, files=("lib.py",)),
    ]
    assert run(tasks, {"o/a": off}).admitted == tuple(
        IssueRef(repo, n) for repo, n in (("o/a", 2), ("o/a", 3), ("o/b", 6), ("o/b", 5))
    ), "o/a keeps its order; o/b, on by default, still moves its overlapping task last"


def test_a_task_in_review_counts_as_in_flight_until_its_pull_request_merges() -> None:
    tasks = [
        task("o/a", 1, state=TaskState.IN_REVIEW, files=("src/app.py",)),
        task("o/a", 2, files=("src/app.py",)),
        task("o/a", 3, files=("lib.py",)),
        task("o/a", 4, state=TaskState.MERGED, files=("lib.py",)),
    ]
    assert run(tasks).admitted == (IssueRef("o/a", 3), IssueRef("o/a", 2))


def test_admitted_tasks_that_share_a_file_are_spread_apart_when_nothing_runs() -> None:
    # Workers that wake together take the head of one list: two of a group must not be there.
    tasks = [
        task("o/a", 1, files=("areas/a.txt",)),
        task("o/a", 2, files=("areas/a.txt",)),
        task("o/a", 3, files=("areas/",)),  # a directory over a.txt
        task("o/a", 4, files=("areas/b.txt",)),
        task("o/a", 5, files=("solo.txt",)),
    ]
    assert run(tasks).admitted == tuple(IssueRef("o/a", n) for n in (1, 4, 5, 2, 3))
