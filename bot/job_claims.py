"""Who holds a job: job ids, claim secrets, the check every heartbeat, transcript and result
passes (``docs/architecture.md``, "A job belongs to the runner that claimed it"), and what a
job's heartbeat and result do (``JobReports``).

A job id is ``<repo>#<issue>@<dispatch>``, the task's dispatch count, which the store raises at
every claim and never resets: a job id is never reused. The claim secret goes to the claiming
runner only; the store keeps its SHA-256 and the claimer's identity, so any replica decides
alike from the store (``refusal``).
"""

from __future__ import annotations

import asyncio
import functools
import hmac
import secrets
import time
from collections.abc import Callable
from typing import Protocol

from bot.core.model import IssueRef, Task, TaskState
from bot.core.protocol import JobResult
from bot.metrics import BotMetrics
from bot.ports import Clock, JobStore
from bot.signature import token_hash
from bot.store import JobOwner


class JobRefused(Exception):
    """A heartbeat, transcript or result the bot refuses: ``status`` is the HTTP answer (403:
    not this runner's job or not its secret; 409: not the task's running job)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def job_id(ref: IssueRef, dispatch: int) -> str:
    """``owner/repo#N@D``: the task's ``D``-th dispatch. Never reused (a relabel, a review round
    or a rate limit gives the attempt back, never the dispatch count)."""
    return f"{ref}@{dispatch}"


def parse_job_id(jid: str) -> tuple[IssueRef, int] | None:
    ref_text, _, number = jid.rpartition("@")
    if not number.isdigit():
        return None
    try:
        return IssueRef.parse(ref_text), int(number)
    except ValueError:
        return None


def new_claim_secret() -> str:
    return secrets.token_urlsafe(32)


def not_running(jid: str) -> JobRefused:
    return JobRefused(409, f"job {jid} is not running: it ended, or the task moved on")


def refusal(jid: str, held: JobOwner | None, owner: str, secret: str | None) -> JobRefused | None:
    """Why ``owner``, presenting ``secret``, may not act for job ``jid`` whose task's current
    job is ``held`` (None: it may)."""
    parsed = parse_job_id(jid)
    if (
        parsed is None
        or held is None
        or held.ref != parsed[0]
        or held.state != TaskState.RUNNING
        or held.dispatch != parsed[1]
    ):
        return not_running(jid)
    return holder_refusal(jid, held.owner, held.secret_hash, owner, secret)


def holder_refusal(
    jid: str, held_by: str | None, secret_hash: str | None, owner: str, secret: str | None
) -> JobRefused | None:
    """403 when the running job ``jid`` was claimed by another than ``owner`` (``held_by``),
    or ``secret`` is not the claim secret whose SHA-256 is ``secret_hash``; else None. A task's
    jobs and the director's plan jobs are held alike."""
    if held_by is not None and held_by != owner:
        return JobRefused(403, f"job {jid} belongs to the runner that claimed it")
    if (
        secret_hash is None
        or secret is None
        or not hmac.compare_digest(secret_hash, token_hash(secret))
    ):
        return JobRefused(403, f"wrong or missing claim secret for job {jid}")
    return None


class ResultHandler(Protocol):
    """What a finished job's result does to its task (``bot.results.Results``)."""

    async def apply(self, task: Task, result: JobResult) -> None: ...

    async def open_pending(self) -> int:
        """Open the pull requests of tasks in review that have none yet (how many)."""
        ...


class JobReports:
    """A job's heartbeats and result, once ``owned`` says whose job it is. ``revoke(ref)`` ends
    the repository token handed out with the task's job."""

    def __init__(
        self,
        store: JobStore,
        results: ResultHandler,
        revoke: Callable[[IssueRef], None],
        *,
        lease_s: float,
        metrics: BotMetrics | None = None,
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.results = results
        self._revoke = revoke
        self.lease_s = lease_s
        self.metrics = metrics
        self.clock = clock

    async def owned(self, jid: str, owner: str, secret: str | None) -> Task:
        """The task whose running job ``jid`` is, when ``owner`` holds it with ``secret``.

        Read from the store, so any replica answers alike. Raises ``JobRefused``: 409 when
        ``jid`` is not the task's running job (stale, cancelled, expired, unknown), 403 when
        another runner claimed it or the secret is wrong or missing.
        """
        parsed = parse_job_id(jid)
        if parsed is None:
            raise not_running(jid)
        held = await asyncio.to_thread(self.store.job_owner, parsed[0])
        if (refused := refusal(jid, held, owner, secret)) is not None:
            raise refused
        task = await asyncio.to_thread(self.store.get_task, parsed[0])
        if task is None or task.state != TaskState.RUNNING:  # it ended in between
            raise not_running(jid)
        return task

    async def heartbeat(self, jid: str, owner: str, secret: str | None) -> None:
        """Renew a job's lease (``JobRefused`` when it is not the caller's running job)."""
        task = await self.owned(jid, owner, secret)
        until = self.clock() + self.lease_s
        await asyncio.to_thread(
            functools.partial(self.store.update_task, task.ref, lease_until=until)
        )

    async def job_result(self, jid: str, owner: str, secret: str | None, result: JobResult) -> None:
        """A runner finished a job: open the pull request, or record the failure.

        A result for a job that is no longer running changes nothing and is counted
        (``stoneforge_stale_results_total``); one naming another branch is refused.
        """
        try:
            task = await self.owned(jid, owner, secret)
        except JobRefused as refused:
            if refused.status == 409 and self.metrics is not None:
                self.metrics.stale_results.inc()
            raise
        if result.branch != task.branch:
            raise JobRefused(
                403, f"result names branch {result.branch!r}; job {jid} works on {task.branch!r}"
            )
        self._revoke(task.ref)
        await self.results.apply(task, result)
