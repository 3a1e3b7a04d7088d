"""The outside systems the bot's logic uses, as narrow Protocols in domain verbs.

Each part of the bot takes only the ports it uses (``bot.service`` composes them once): the
issue sync reads issues and writes the permission comment, the reporter writes labels and status
comments, the steward reads and merges pull requests. ``bot.adapters.github.GitHubAdapter``
implements every GitHub port, ``bot.store.Store`` every store port; tests pass typed fakes that
mypy checks against the same Protocols. No URL, header or githubkit type crosses a port.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Literal, Protocol

from bot.adapters.github.gate import EnqueueOutcome
from bot.adapters.github.records import (
    Comment,
    IssueInfo,
    LabelApplication,
    MergeOutcome,
    RepoInfo,
)
from bot.core.config import RepoConfig
from bot.core.graph import GraphReport
from bot.core.lifecycle import Reason
from bot.core.liveness import Waiting
from bot.core.model import IssueRef, Task, TaskState
from bot.core.steward import PullSnapshot, Review, ReviewComment
from bot.store.records import ClaimedJob, Delivery, JobOwner, NewDelivery, TranscriptRecord
from bot.store.working_set import WorkingSet

__all__ = [
    "AppPort",
    "CheckPort",
    "Clock",
    "CommandStore",
    "Configs",
    "DeliveryLog",
    "DispatchPort",
    "GitHubPort",
    "IssuePort",
    "JobStore",
    "LabelPort",
    "PlanPort",
    "PullPort",
    "RepoPort",
    "ResultPort",
    "ResultStore",
    "TaskStore",
    "TokenPort",
    "Transitions",
    "TranscriptReader",
    "WorkflowPort",
]


# --- GitHub ----------------------------------------------------------------------------------


class RepoPort(Protocol):
    """Repositories: their facts, their configuration file, their labels and checks."""

    async def repo(self, installation_id: int, repo: str) -> RepoInfo: ...

    async def file(
        self, installation_id: int, repo: str, path: str, ref: str | None = None
    ) -> tuple[str, str] | None: ...

    async def branch_sha(self, installation_id: int, repo: str, branch: str) -> str: ...

    async def ensure_labels(
        self, installation_id: int, repo: str, labels: Mapping[str, tuple[str, str]]
    ) -> None: ...

    async def report_check(
        self,
        installation_id: int,
        repo: str,
        head_sha: str,
        *,
        name: str,
        conclusion: str,
        title: str,
        summary: str,
    ) -> None: ...


class LabelPort(Protocol):
    """What the status reporter writes: an issue's labels and the bot's own comments."""

    async def add_labels(self, installation_id: int, ref: IssueRef, labels: list[str]) -> None: ...

    async def remove_label(self, installation_id: int, ref: IssueRef, label: str) -> None: ...

    async def issue_labels(self, installation_id: int, ref: IssueRef) -> set[str]: ...

    async def upsert_comment(
        self, installation_id: int, ref: IssueRef, marker: str, body: str
    ) -> None: ...


class IssuePort(Protocol):
    """What the issue sync reads and writes: issues, their links, who labeled them."""

    async def issue(self, installation_id: int, ref: IssueRef) -> IssueInfo | None: ...

    async def blocked_by(self, installation_id: int, ref: IssueRef) -> list[IssueRef]: ...

    async def sub_issues(self, installation_id: int, ref: IssueRef) -> list[IssueInfo]: ...

    async def label_actor(
        self, installation_id: int, ref: IssueRef, label: str
    ) -> LabelApplication | None: ...

    async def permission(self, installation_id: int, repo: str, login: str) -> str: ...

    async def remove_label(self, installation_id: int, ref: IssueRef, label: str) -> None: ...

    async def upsert_comment(
        self, installation_id: int, ref: IssueRef, marker: str, body: str
    ) -> None: ...


class AppPort(Protocol):
    """The App's own view: its installations, their repositories, failed deliveries."""

    async def installations(self) -> list[int]: ...

    async def installation_repos(self, installation_id: int) -> list[RepoInfo]: ...

    async def labeled_issues(
        self, installation_id: int, repo: str, label: str
    ) -> list[IssueInfo]: ...

    async def failed_deliveries(self, since: float) -> list[tuple[int, str]]: ...

    async def redeliver(self, delivery_id: int) -> None: ...


class CheckPort(Protocol):
    """The steward's own check run on a pull request's head (``bot/steward_check.py``)."""

    async def write_check(
        self,
        installation_id: int,
        repo: str,
        head_sha: str,
        *,
        name: str,
        conclusion: str | None,
        title: str,
        summary: str,
        run_id: int | None = None,
    ) -> int:
        """Create a check run on ``head_sha`` (or update run ``run_id``); its id. In progress
        while ``conclusion`` is None."""
        ...


class PullPort(CheckPort, Protocol):
    """What the steward reads and does: pull requests, reviews, merges, branch updates."""

    async def repo(self, installation_id: int, repo: str) -> RepoInfo: ...

    async def permission(self, installation_id: int, repo: str, login: str) -> str: ...

    async def pull(
        self, installation_id: int, repo: str, number: int, extra_required: tuple[str, ...] = ()
    ) -> PullSnapshot: ...

    async def reviews(self, installation_id: int, repo: str, number: int) -> list[Review]: ...

    async def review_comments(
        self, installation_id: int, repo: str, number: int
    ) -> list[ReviewComment]: ...

    async def merge(
        self,
        installation_id: int,
        repo: str,
        number: int,
        *,
        sha: str,
        method: Literal["merge", "squash", "rebase"],
        title: str,
    ) -> MergeOutcome: ...

    async def update_branch(
        self, installation_id: int, repo: str, number: int, sha: str
    ) -> bool: ...

    async def enqueue(
        self, installation_id: int, repo: str, number: int, sha: str
    ) -> EnqueueOutcome: ...

    async def checks_on(
        self, installation_id: int, repo: str, sha: str
    ) -> Mapping[str, tuple[str, str | None]]: ...

    async def delete_branch(self, installation_id: int, repo: str, branch: str) -> None: ...

    async def retarget_pull(
        self, installation_id: int, repo: str, number: int, base: str
    ) -> bool: ...

    async def contains(self, installation_id: int, repo: str, commit: str, head: str) -> bool: ...

    async def rerun_check(self, installation_id: int, repo: str, check_run_id: int) -> bool: ...

    async def check_failures(
        self, installation_id: int, repo: str, sha: str, names: tuple[str, ...]
    ) -> tuple[str, ...]: ...

    async def reply(self, installation_id: int, ref: IssueRef, body: str) -> int: ...


class QueuePort(PullPort, Protocol):
    """What the speculative merge queue adds (``bot.speculation``): a branch's tip, the checks
    on a commit, branches set, fast-forwarded and merged into (``bot.adapters.github.gitdata``)."""

    async def branch_sha(self, installation_id: int, repo: str, branch: str) -> str: ...

    async def commit_checks(
        self, installation_id: int, repo: str, sha: str
    ) -> tuple[dict[str, tuple[str, str | None]], dict[str, int]]: ...

    async def set_branch(self, installation_id: int, repo: str, branch: str, sha: str) -> None: ...

    async def fast_forward(
        self, installation_id: int, repo: str, branch: str, sha: str
    ) -> bool: ...

    async def merge_into(
        self, installation_id: int, repo: str, branch: str, head: str, message: str
    ) -> tuple[str, str] | None: ...


class TokenPort(Protocol):
    """Installation tokens for one repository (the prefetcher's read-only ones, the jobs')."""

    async def repo(self, installation_id: int, repo: str) -> RepoInfo: ...

    async def repo_token(self, installation_id: int, repo: str, *, write: bool = True) -> str: ...

    async def revoke_token(self, token: str) -> None: ...


class DispatchPort(TokenPort, PullPort, Protocol):
    """What the dispatcher reads to build a job: the issue, its conversation, the base's tip,
    the review that sent it back (``PullPort``), and the reaction it leaves."""

    async def issue(self, installation_id: int, ref: IssueRef) -> IssueInfo | None: ...

    async def branch_sha(self, installation_id: int, repo: str, branch: str) -> str: ...

    async def comments(self, installation_id: int, ref: IssueRef) -> list[Comment]: ...

    async def add_reaction(self, installation_id: int, ref: IssueRef, content: str) -> None: ...


class ResultPort(Protocol):
    """What a job's result writes: the pull request, the handoff and needs-human comments."""

    async def repo(self, installation_id: int, repo: str) -> RepoInfo: ...

    async def upsert_comment(
        self, installation_id: int, ref: IssueRef, marker: str, body: str
    ) -> None: ...

    async def open_pull(
        self, installation_id: int, repo: str, *, head: str, base: str, title: str, body: str
    ) -> int: ...

    async def pull_for_head(
        self, installation_id: int, repo: str, head: str
    ) -> tuple[int, str] | None: ...

    async def update_pull(
        self, installation_id: int, repo: str, number: int, *, body: str
    ) -> None: ...

    async def submit_review(
        self,
        installation_id: int,
        repo: str,
        number: int,
        *,
        commit_id: str,
        event: Literal["APPROVE", "REQUEST_CHANGES", "COMMENT"],
        body: str,
        comments: Sequence[tuple[str, int, str]] = (),
    ) -> int: ...


class WorkflowPort(Protocol):
    """What the Actions backend does: start a workflow run, give its job a fresh token."""

    async def repo_token(self, installation_id: int, repo: str, *, write: bool = True) -> str: ...

    async def dispatch_workflow(
        self, installation_id: int, repo: str, workflow: str, ref: str, inputs: dict[str, str]
    ) -> None: ...


class CommandPort(Protocol):
    """What comment commands use on GitHub: who may command, the eyes reaction, the reply."""

    async def permission(self, installation_id: int, repo: str, login: str) -> str: ...

    async def issue(self, installation_id: int, ref: IssueRef) -> IssueInfo | None: ...

    async def react_to_comment(
        self, installation_id: int, repo: str, comment_id: int, content: str
    ) -> None: ...

    async def reply(self, installation_id: int, ref: IssueRef, body: str) -> int:
        """Post a new comment on the issue (its id)."""
        ...


class FilingPort(Protocol):
    """What filing a plan writes: issues, sub-issue and "blocked by" links. Every write is a
    content-creating request that GitHub's secondary rate limits count."""

    async def create_issue(
        self, installation_id: int, repo: str, *, title: str, body: str, labels: Sequence[str]
    ) -> IssueInfo: ...

    async def labeled_issues(
        self, installation_id: int, repo: str, label: str
    ) -> list[IssueInfo]: ...

    async def sub_issues(self, installation_id: int, ref: IssueRef) -> list[IssueInfo]: ...

    async def add_sub_issue(
        self, installation_id: int, parent: IssueRef, child_id: int
    ) -> None: ...

    async def blocked_by(self, installation_id: int, ref: IssueRef) -> list[IssueRef]: ...

    async def add_blocked_by(
        self, installation_id: int, ref: IssueRef, blocker_id: int
    ) -> None: ...


class PlanPort(Protocol):
    """What the director adds (``bot.director``): closing an epic or a dropped task, and what
    a merged pull request changed (the plan context of the tasks it unblocks)."""

    async def close_issue(
        self, installation_id: int, ref: IssueRef, reason: Literal["completed", "not_planned"]
    ) -> None: ...

    async def pull_files(
        self, installation_id: int, repo: str, number: int, limit: int = 50
    ) -> tuple[str, list[str]]: ...


class GitHubPort(
    RepoPort,
    LabelPort,
    IssuePort,
    AppPort,
    DispatchPort,
    ResultPort,
    WorkflowPort,
    CommandPort,
    FilingPort,
    PlanPort,
    QueuePort,
    Protocol,
):
    """Every GitHub verb the bot uses (``bot.adapters.github.GitHubAdapter``)."""

    async def app_slug(self) -> str: ...


# --- the store -------------------------------------------------------------------------------


class TaskStore(Protocol):
    """Tasks and the daily spend, as the issue sync, the views and the steward use them."""

    def get_task(self, ref: IssueRef) -> Task | None: ...

    def list_tasks(
        self, *, repo: str | None = None, states: Iterable[TaskState] | None = None
    ) -> list[Task]: ...

    def create_task(self, task: Task) -> bool: ...

    def update_task(self, ref: IssueRef, **fields: Any) -> Task: ...

    def cost(self, repo: str, day: str) -> float: ...

    def working_set(self, merged_since: float) -> WorkingSet: ...


class TranscriptReader(Protocol):
    """The transcripts a task's runs uploaded (``bot.transcripts`` reads them)."""

    def transcript(self, transcript_id: str) -> tuple[TranscriptRecord, bytes] | None: ...

    def transcripts_for(self, ref: IssueRef) -> list[TranscriptRecord]: ...


class ResultStore(TaskStore, TranscriptReader, Protocol):
    """What a job's result writes besides its task: the day's spend."""

    def add_cost(self, repo: str, day: str, usd: float) -> None: ...


class JobStore(TaskStore, Protocol):
    """What the dispatcher and the job reports use: atomic claims, the job's owner, leases."""

    def claim_job(
        self,
        candidates: Sequence[IssueRef],
        *,
        worker: str,
        now: float,
        lease_s: float,
        owner: str | None = None,
        secret_hash: str | None = None,
    ) -> ClaimedJob | None: ...

    def answer_review(self, ref: IssueRef, review_id: int) -> None: ...

    def job_owner(self, ref: IssueRef) -> JobOwner | None: ...

    def expired_leases(self, now: float) -> list[Task]: ...

    def paused_repos(self) -> frozenset[str]: ...


class CommandStore(TaskStore, Protocol):
    """What comment commands keep (``bot.store.commands.CommandRows``): each comment taken
    once, what came of it, and the repositories paused from their control issue."""

    def take_command(
        self, comment_id: int, repo: str, issue: int, verb: str, sender: str, now: float
    ) -> bool: ...

    def command_outcome(self, comment_id: int, outcome: str) -> None: ...

    def set_repo_paused(self, repo: str, paused: bool) -> bool: ...


class DeliveryLog(Protocol):
    """The durable log of webhook deliveries intake writes and works through."""

    def record_deliveries(self, rows: Sequence[NewDelivery]) -> list[bool]: ...

    def unprocessed_deliveries(self, limit: int = 100) -> list[Delivery]: ...

    def mark_processed(self, guid: str, now: float, error: str | None = None) -> None: ...

    def get_delivery(self, guid: str) -> Delivery | None: ...

    def prune_deliveries(self, before: float, batch: int = 5000) -> int: ...


class StewardStore(TaskStore, Protocol):
    """What the steward adds: the deliveries other replicas processed, and its lock."""

    def processed_since(
        self, after: float, events: Sequence[str], limit: int = 1000
    ) -> list[tuple[str, str, float]]: ...

    def delivery_payloads(self, guids: Sequence[str]) -> dict[str, bytes]: ...

    def steward_lock(self, repo: str, base: str) -> AbstractContextManager[bool]: ...

    def take_rerun(
        self, repo: str, head_sha: str, name: str, check_run_id: int, now: float
    ) -> bool: ...

    def reruns(self, repo: str, head_shas: Collection[str]) -> dict[tuple[str, str, str], int]: ...

    def take_flake(self, repo: str, head_sha: str, name: str) -> bool: ...

    def waits(self, repo: str) -> dict[int, Waiting]: ...

    def put_waits(self, repo: str, waits: Mapping[int, Waiting]) -> None: ...


# --- the task views --------------------------------------------------------------------------


class Transitions(Protocol):
    """State changes through the lifecycle (``bot.views.TaskViews``), and the task graph."""

    async def transition(
        self, task: Task, to: TaskState, reason: Reason | None, **fields: Any
    ) -> Task: ...

    async def graph(self) -> tuple[list[Task], GraphReport]: ...

    async def refresh_views(self) -> None: ...


class Configs(Protocol):
    """Each repository's configuration in force (``bot.repos.Repos``)."""

    def config(self, repo: str) -> RepoConfig: ...


# --- the clock -------------------------------------------------------------------------------


class Clock(Protocol):
    """Wall-clock time in epoch seconds (``time.time``); tests pass a fixed or stepped one."""

    def __call__(self) -> float: ...


# --- the director and comment commands (issue 12) -------------------------------------------
# (``CommandPort`` is above ``GitHubPort``, one of its bases.)


class DirectorPort(Protocol):
    """What comment commands ask of the director (``bot.director``). Each returns the reply to
    post under the command (None: nothing to say beyond the eyes reaction)."""

    async def plan(
        self, installation_id: int, epic: IssueRef, *, guidance: str, by: str, comment_id: int
    ) -> str | None: ...

    async def approve(self, installation_id: int, epic: IssueRef, *, by: str) -> str | None: ...

    async def replan(
        self, installation_id: int, epic: IssueRef, *, guidance: str, by: str, comment_id: int
    ) -> str | None: ...

    async def status(self, installation_id: int, ref: IssueRef) -> str | None:
        """The plan's table and graph when ``ref`` is an epic (None when it is not)."""
        ...

    async def plan_tasks(self, epic: IssueRef) -> list[IssueRef] | None:
        """The tasks of the epic's current plan (None when ``epic`` has no plan): ``retry``,
        ``cancel``, ``pause`` and ``resume`` on an epic act on each."""
        ...

    async def set_paused(self, epic: IssueRef, paused: bool) -> bool:
        """Pause or resume the epic's plan (False when it has none)."""
        ...
