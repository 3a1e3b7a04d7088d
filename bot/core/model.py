"""Core values: issue references, task states and the task record.

Everything here is frozen and free of I/O. The task life cycle is

    queued -> running -> in_review -> merged
    (failed and cancelled are terminal until the issue is relabeled)

as described in ``docs/architecture.md`` ("Task states").
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from bot.core.lifecycle import Reason

_REF_RE = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9_.-]*)/([A-Za-z0-9_.-]+)#(\d+)\s*$")
_SLUG_MAX = 40


class IssueRef(NamedTuple):
    """An issue in a repository: ``IssueRef("octo/demo", 5)`` prints as ``octo/demo#5``."""

    repo: str
    number: int

    def __str__(self) -> str:
        return f"{self.repo}#{self.number}"

    @classmethod
    def parse(cls, text: str) -> IssueRef:
        """Parse ``"owner/name#N"``; raises ``ValueError`` for anything else."""
        match = _REF_RE.match(text)
        if match is None:
            raise ValueError(f"not an issue reference (want 'owner/name#N'): {text!r}")
        owner, name, number = match.groups()
        return cls(f"{owner}/{name}", int(number))


class TaskState(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    IN_REVIEW = "in_review"
    MERGED = "merged"
    FAILED = "failed"
    CANCELLED = "cancelled"


#: States in which a task still represents work that will happen.
PENDING_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING, TaskState.IN_REVIEW})
#: States from which a task does not move on by itself.
TERMINAL_STATES = frozenset({TaskState.MERGED, TaskState.FAILED, TaskState.CANCELLED})


@dataclass(frozen=True)
class Task:
    """One labeled issue the bot works on. Times are epoch seconds."""

    repo: str
    number: int
    title: str
    body: str = ""
    issue_id: int = 0  # GitHub database id (the dependency REST endpoints take this)
    installation_id: int | None = None
    state: TaskState = TaskState.QUEUED
    # Union of native dependencies, parent/sub-issue links and "blocked by" text.
    blocked_by: tuple[IssueRef, ...] = ()
    priority: int = 2  # 0 most urgent .. 4
    attempt: int = 0
    worker: str | None = None
    branch: str | None = None
    pr_number: int | None = None
    head_sha: str | None = None
    created_at: float = 0.0
    dispatched_at: float | None = None
    agent_seconds: float | None = None
    merged_at: float | None = None
    merge_sha: str | None = None
    lease_until: float | None = None
    detail: str | None = None  # the last change's reason in words (for people)
    cost_usd: float | None = None  # agent spend reported by the runner
    # What it had spent when a maintainer last restarted it: its budget counts from there.
    cost_at_restart_usd: float | None = None
    # Agents whose provider's rate limit holds the task, and until when (epoch seconds).
    rate_limits: tuple[tuple[str, float], ...] = ()
    # A digest of the state label and status comment last written to GitHub.
    status_digest: str | None = None
    ready_at: float | None = None  # when the task last became ready (dispatch latency)
    comment_id: int | None = None  # the bot's status comment on the issue
    labeled_by: str | None = None  # who applied the trigger label (mentioned on failure)
    not_before: float | None = None  # not dispatched before this time (a failed dispatch)
    agent: str | None = None  # agent adapter chosen from the repository configuration and labels
    # Runner labels a runner must carry to take this task (configuration plus issue labels).
    runs_on: tuple[str, ...] = ()
    # The newest "changes requested" review already handed to an agent (GitHub review id).
    review_id: int | None = None
    # Rounds an agent was sent back to fix red required checks (``steward.fix_attempts``).
    fix_rounds: int = 0
    # Why it last changed state, typed (``bot.core.lifecycle``): what the shell acts on.
    reason: Reason | None = None
    # The director's plan the task belongs to (``bot.core.plan``), and its index there.
    plan_id: str | None = None
    planned_index: int | None = None
    # Repository paths the task expects to touch (from its plan): file-aware scheduling.
    files: tuple[str, ...] = ()
    # Held by ``/stoneforge pause`` (on the task, or on its plan): never dispatched while set.
    paused: bool = False
    # Resolutions of conflicts (resolve_conflicts jobs) that failed: after two, a fresh agent
    # run; after four, a person.
    resolve_failures: int = 0
    # The head a review job was last sent for (``review`` in the configuration): never reviewed
    # twice; and how many of the review agent's requests for changes went back to the agent.
    agent_review_head: str | None = None
    agent_review_rounds: int = 0

    def __post_init__(self) -> None:
        # Normalise once here so every reader can rely on it: a tuple of IssueRef without
        # duplicates (strings "owner/name#N" and plain (repo, number) pairs are accepted).
        blockers = self.blocked_by
        if type(blockers) is not tuple or any(type(b) is not IssueRef for b in blockers):
            blockers = tuple(_as_ref(b) for b in blockers)
        if len(blockers) > 1 and len(set(blockers)) < len(blockers):
            blockers = tuple(dict.fromkeys(blockers))
        if blockers is not self.blocked_by:
            object.__setattr__(self, "blocked_by", blockers)
        if type(self.runs_on) is not tuple:
            object.__setattr__(self, "runs_on", tuple(self.runs_on))
        if type(self.files) is not tuple:
            object.__setattr__(self, "files", tuple(self.files))
        if type(self.rate_limits) is not tuple:
            limits = tuple((str(agent), float(until)) for agent, until in self.rate_limits)
            object.__setattr__(self, "rate_limits", limits)
        if type(self.state) is not TaskState:
            object.__setattr__(self, "state", TaskState(self.state))

    @property
    def ref(self) -> IssueRef:
        return IssueRef(self.repo, self.number)


def _as_ref(value: IssueRef | tuple[str, int] | str) -> IssueRef:
    if isinstance(value, str):
        return IssueRef.parse(value)
    return IssueRef(str(value[0]), int(value[1]))


def branch_name(number: int, title: str) -> str:
    """The branch a task's agent pushes to: ``stoneforge/<n>-<slug>``.

    The slug is the title's ASCII words, lowercased and joined by ``-``, cut at a word
    boundary to at most 40 characters. A title without usable words gives ``task``.
    """
    ascii_title = unicodedata.normalize("NFKD", title).encode("ascii", "ignore").decode()
    words = re.findall(r"[a-z0-9]+", ascii_title.lower())
    slug = ""
    for word in words:
        candidate = f"{slug}-{word}" if slug else word
        if len(candidate) > _SLUG_MAX:
            if not slug:  # a single over-long word: cut it
                slug = word[:_SLUG_MAX]
            break
        slug = candidate
    return f"stoneforge/{number}-{slug or 'task'}"


def budget_left(
    per_task_usd: float | None, spent_usd: float | None, restart_usd: float | None = None
) -> float | None:
    """What a task may still spend on agents (never below 0); None when it has no budget.

    The budget is the task's, over all its attempts and tries since a maintainer last
    restarted it (``restart_usd``: what it had spent by then): each job is sent what is left.
    """
    if per_task_usd is None:
        return None
    return max(0.0, round(per_task_usd - (spent_usd or 0.0) + (restart_usd or 0.0), 6))


def limited_agents(task: Task, now: float) -> set[str]:
    """The agents a provider's rate limit still holds ``task`` from at ``now``."""
    return {agent for agent, until in task.rate_limits if until > now}
