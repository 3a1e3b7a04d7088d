"""Admission: which ready tasks a claim may take now, in dispatch order, and why the others wait.

``admit`` goes through the graph's ready set in dispatch order (priority, then the work waiting
behind a task, then age) and keeps a task unless a rule holds it back; the first rule that
matches is its reason:

0. it is paused: ``/stoneforge pause`` on the task (or its plan), or on its repository's control
   issue, or its plan's budget is spent -> ``Paused``
1. its repository uses the other backend (runners and GitHub Actions each take only their
   repositories' tasks) -> ``OtherBackend``
2. it asks for runner labels the claiming runner lacks -> ``MissingLabels`` (Actions routes by
   the workflow's ``runs-on`` and skips this rule)
3. it is held back until ``not_before`` (GitHub refused to start its workflow) -> ``NotBefore``
4. no agent may take it here and now: the one chosen for it and the fallback are each paused
   on this runner or held by a provider's rate limit -> ``NoAgentFree``
5. its repository runs ``concurrency.per_repo`` tasks already -> ``RepoFull``
6. its installation runs ``concurrency.per_installation`` tasks already -> ``InstallationFull``
7. its repository's daily budget is spent -> ``DayBudgetSpent``

File-aware scheduling: an admitted task whose expected ``files`` overlap those of a task in
flight in its repository (running, or in review: its pull request is open and not merged) would
likely conflict with it at merge, so it goes after every admitted task that does not overlap
(in dispatch order otherwise). Overlapping tasks then run together only when nothing else is
ready to keep the workers busy. An admitted task counts too for the ones after it: several
workers that wake together take from one list, so two tasks of that list that share a file are
not put side by side at its head. A repository turns it off with ``scheduling.file_aware:
false``; its tasks then keep plain dispatch order.

Pure: the caller passes the tasks, the ready set, each repository's configuration, what
each repository spent today (only those with a daily budget need it) and the paused
repositories.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bot.core.config import RepoConfig
from bot.core.lifecycle import Reviewing
from bot.core.model import IssueRef, Task, TaskState, limited_agents


@dataclass(frozen=True)
class Claimant:
    """Who asks: ``backend`` ``runner`` or ``actions``; the runner's ``labels`` (casefolded;
    ``None``: routed elsewhere) and the agents it has paused."""

    backend: str = "runner"
    labels: frozenset[str] | None = frozenset()
    unavailable: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Paused:
    scope: Literal["task", "repository"]
    kind: Literal["paused"] = "paused"


@dataclass(frozen=True)
class OtherBackend:
    backend: str
    kind: Literal["other_backend"] = "other_backend"


@dataclass(frozen=True)
class MissingLabels:
    labels: tuple[str, ...]
    kind: Literal["missing_labels"] = "missing_labels"


@dataclass(frozen=True)
class NotBefore:
    until: float
    kind: Literal["not_before"] = "not_before"


@dataclass(frozen=True)
class NoAgentFree:
    blocked: tuple[str, ...]  # the agents it cannot have here and now
    kind: Literal["no_agent_free"] = "no_agent_free"


@dataclass(frozen=True)
class RepoFull:
    limit: int
    kind: Literal["repo_full"] = "repo_full"


@dataclass(frozen=True)
class InstallationFull:
    limit: int
    kind: Literal["installation_full"] = "installation_full"


@dataclass(frozen=True)
class DayBudgetSpent:
    spent: float
    budget: float
    kind: Literal["day_budget_spent"] = "day_budget_spent"


Hold = (
    Paused
    | OtherBackend
    | MissingLabels
    | NotBefore
    | NoAgentFree
    | RepoFull
    | InstallationFull
    | DayBudgetSpent
)


@dataclass(frozen=True)
class Admission:
    admitted: tuple[IssueRef, ...]  # in dispatch order
    held: Mapping[IssueRef, Hold] = field(default_factory=dict)


def blocked_agents(task: Task, unavailable: frozenset[str], now: float) -> set[str]:
    """Agents that cannot take ``task`` now: those the runner lacks or has paused, and those a
    provider's rate limit holds the task from."""
    return set(unavailable) | limited_agents(task, now)


def agent_for(
    task: Task, config: RepoConfig, unavailable: frozenset[str], now: float
) -> str | None:
    """The agent to run ``task`` with on a runner that cannot run ``unavailable`` now
    (None: none may take it here and now)."""
    blocked = blocked_agents(task, unavailable, now)
    if isinstance(task.reason, Reviewing) and config.review is not None:  # a review job's
        return None if config.review.agent in blocked else config.review.agent
    return config.agent_to_run(task.agent or config.agent.name, blocked)


def admit(
    tasks: Sequence[Task],
    ready: Sequence[IssueRef],
    config: Callable[[str], RepoConfig],
    claimant: Claimant,
    *,
    now: float,
    spent_today: Mapping[str, float] | None = None,
    paused_repos: frozenset[str] = frozenset(),
) -> Admission:
    """The ready tasks ``claimant`` may take now, in order, and a reason for each held one."""
    spent = spent_today or {}
    running = [t for t in tasks if t.state == TaskState.RUNNING]
    per_repo = Counter(t.repo for t in running)
    per_inst = Counter(t.installation_id for t in running)
    by_ref = {t.ref: t for t in tasks}
    admitted: list[IssueRef] = []
    held: dict[IssueRef, Hold] = {}
    for ref in ready:
        task = by_ref[ref]
        hold: Hold | None
        if task.paused or task.repo in paused_repos:
            hold = Paused("task" if task.paused else "repository")
        else:
            hold = _hold(task, config(task.repo), claimant, now, per_repo, per_inst, spent)
        if hold is None:
            admitted.append(ref)
        else:
            held[ref] = hold
    in_flight = [t for t in tasks if t.state in (TaskState.RUNNING, TaskState.IN_REVIEW)]
    return Admission(_files_apart(admitted, by_ref, in_flight, config), held)


def _files_apart(
    admitted: list[IssueRef],
    by_ref: Mapping[IssueRef, Task],
    in_flight: Sequence[Task],
    config: Callable[[str], RepoConfig],
) -> tuple[IssueRef, ...]:
    """``admitted`` with each task whose files overlap those of a task in flight, or of a task
    kept before it, moved after all the others (per repository, for those with
    ``scheduling.file_aware`` on); each group in its own order."""
    taken: dict[str, set[str]] = {}
    for task in in_flight:
        taken.setdefault(task.repo, set()).update(task.files)
    clear: list[IssueRef] = []
    overlapping: list[IssueRef] = []
    for ref in admitted:
        files = by_ref[ref].files
        if not files or not config(ref.repo).scheduling.file_aware:
            clear.append(ref)
            continue
        busy = taken.setdefault(ref.repo, set())
        if any(_same_path(mine, theirs) for mine in files for theirs in busy):
            overlapping.append(ref)
        else:
            clear.append(ref)
            busy.update(files)
    return (*clear, *overlapping)


def _same_path(a: str, b: str) -> bool:
    """Whether two expected paths touch the same files: equal, or one a directory of the other
    (``src/`` and ``src/app.py``)."""
    a, b = a.strip("/"), b.strip("/")
    if not a or not b:
        return False
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


def _hold(
    task: Task,
    config: RepoConfig,
    claimant: Claimant,
    now: float,
    per_repo: Counter[str],
    per_inst: Counter[int | None],
    spent: Mapping[str, float],
) -> Hold | None:
    """The first rule that holds ``task`` back (see the module's docstring), or None."""
    if config.backend != claimant.backend:
        return OtherBackend(config.backend)
    if claimant.labels is not None and not set(task.runs_on) <= claimant.labels:
        return MissingLabels(tuple(sorted(set(task.runs_on) - claimant.labels)))
    if task.not_before and task.not_before > now:
        return NotBefore(task.not_before)
    if agent_for(task, config, claimant.unavailable, now) is None:
        return NoAgentFree(tuple(sorted(blocked_agents(task, claimant.unavailable, now))))
    if per_repo[task.repo] >= config.concurrency.per_repo:
        return RepoFull(config.concurrency.per_repo)
    limit = config.concurrency.per_installation
    if limit is not None and per_inst[task.installation_id] >= limit:
        return InstallationFull(limit)
    budget = config.budget.per_day_usd
    if budget is not None and spent.get(task.repo, 0.0) >= budget:
        return DayBudgetSpent(spent.get(task.repo, 0.0), budget)
    return None
