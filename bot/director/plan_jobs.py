"""The plan job: claimed like a task's job, answered over the runner API, its plan filed.

``PlanJobs.claim_plan`` (``bot.dispatch.Dispatcher.claim`` asks it before any task): the oldest
requested plan is claimed atomically (``planning``; one more dispatch, the claimer, the hash of
a secret only it gets, ``bot.director.jobs``) and becomes a ``PlanJob`` with a read-only token,
the epic read afresh and its writers' comments, and for a replan what was kept. Heartbeats keep
its lease; a lease that expires puts the plan back to ``requested`` (``upkeep``).

``job_result``: a plan is validated again (``bot.core.plan.validate_plan``: the runner's check
is never trusted). Invalid: ``invalid``, the errors on the epic. Valid: ``filing``, filed
(``bot.director.filing.PlanFiler``, idempotent), then ``drafted``, and the plan comment lists
the draft. A plan left in ``filing`` (the bot stopped, a call failed) is filed again by
``upkeep``, which runs at start-up. A rate-limited plan job is requested again after the
provider's reset; a failed one is ``failed``, said on the epic.

The GitHub Actions backend does not take plan jobs: only runners claim them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable
from typing import Any, Protocol

from bot.adapters.github import IssueInfo
from bot.adapters.github.records import Comment, RepoInfo
from bot.background import Background
from bot.core.model import IssueRef, Task, TaskState, budget_left
from bot.core.plan import DRAFT_LABEL, Plan, plan_comment_marker, validate_plan
from bot.core.plan_comment import render_invalid_plan, render_plan_failed
from bot.core.protocol import (
    AgentChoice,
    FailedResult,
    IssueComment,
    JobResult,
    LandedWork,
    PlanJob,
    PlannedResult,
    RateLimitedResult,
    Timeouts,
)
from bot.director import context
from bot.director.jobs import parse_plan_job_id, plan_job_id, plan_refusal
from bot.director.progress import PlanProgress, ProgressStore
from bot.issue_sync import WRITE_PERMISSIONS
from bot.job_claims import new_claim_secret, not_running
from bot.ports import Clock, Configs
from bot.signals import Identity, Signals
from bot.signature import token_hash
from bot.store.plans import PlanRecord, PlanState

log = logging.getLogger(__name__)

RATE_LIMIT_WAIT_S = 900.0


class JobGitHub(Protocol):
    """What a plan job reads on GitHub, and the words it leaves on the epic."""

    async def repo(self, installation_id: int, repo: str) -> RepoInfo: ...

    async def issue(self, installation_id: int, ref: IssueRef) -> IssueInfo | None: ...

    async def branch_sha(self, installation_id: int, repo: str, branch: str) -> str: ...

    async def comments(self, installation_id: int, ref: IssueRef) -> list[Comment]: ...

    async def permission(self, installation_id: int, repo: str, login: str) -> str: ...

    async def repo_token(self, installation_id: int, repo: str, *, write: bool = True) -> str: ...

    async def revoke_token(self, token: str) -> None: ...

    async def upsert_comment(
        self, installation_id: int, ref: IssueRef, marker: str, body: str
    ) -> None: ...

    async def pull_files(
        self, installation_id: int, repo: str, number: int, limit: int = 50
    ) -> tuple[str, list[str]]: ...


class JobStore(ProgressStore, Protocol):
    """The plans, as their jobs claim and end them."""

    def plans_in(self, *states: PlanState) -> list[PlanRecord]: ...

    def claim_plan(
        self, *, worker: str, now: float, lease_s: float, owner: str, secret_hash: str
    ) -> PlanRecord | None: ...

    def expired_plan_leases(self, now: float) -> list[PlanRecord]: ...


class Filer(Protocol):
    """``bot.director.filing.PlanFiler``: files a plan, idempotently; the issues by index."""

    async def file(
        self,
        installation_id: int,
        epic: IssueRef,
        plan_id: str,
        plan: Plan,
        *,
        draft_label: str = DRAFT_LABEL,
    ) -> list[IssueInfo]: ...


class PlanJobs:
    """Plan jobs: claims, their holders' heartbeats and results, filing, and upkeep."""

    def __init__(
        self,
        github: JobGitHub,
        store: JobStore,
        repos: Configs,
        filer: Filer,
        progress: PlanProgress,
        signals: Signals,
        identity: Identity,
        *,
        lease_s: float,
        clock: Clock = time.time,
    ) -> None:
        self.github = github
        self.store = store
        self.repos = repos
        self.filer = filer
        self.progress = progress
        self.signals = signals
        self.identity = identity
        self.lease_s = lease_s
        self.clock = clock
        self._tokens: dict[str, str] = {}  # plan -> the read-only token of its running job
        self._filing: set[str] = set()  # plans this process is filing now
        self._work = Background("director")

    async def claim_plan(
        self, runner: str, worker: str, owner: str, labels: frozenset[str] | None = None
    ) -> PlanJob | None:
        """Claim the oldest requested plan as a job for ``owner`` (None: there is none).
        ``labels``: the runner's; a plan job asks for none."""
        secret = new_claim_secret()  # only this claim's answer carries it
        plan = await asyncio.to_thread(
            functools.partial(
                self.store.claim_plan,
                worker=worker if "/" in worker else f"{runner}/{worker}",
                now=self.clock(),
                lease_s=self.lease_s,
                owner=owner,
                secret_hash=token_hash(secret),
            )
        )
        if plan is None:
            return None
        try:
            job = await self._plan_job(plan, secret)
        except Exception:
            await self.set(plan, PlanState.PLANNING, state=PlanState.REQUESTED, worker=None)
            self._revoke(plan.plan_id)
            raise
        if job is None:  # the epic was closed or deleted meanwhile
            await self.set(plan, PlanState.PLANNING, state=PlanState.CANCELLED, worker=None)
        else:
            log.info("plan_dispatched", extra={"repo": plan.repo, "issue": plan.epic})
        return job

    async def _plan_job(self, plan: PlanRecord, secret: str) -> PlanJob | None:
        inst, epic = plan.installation_id, IssueRef(plan.repo, plan.epic)
        config = self.repos.config(plan.repo)
        repo = await self.github.repo(inst, plan.repo)
        issue, base_sha, comments, token, kept = await asyncio.gather(
            self.github.issue(inst, epic),
            self.github.branch_sha(inst, plan.repo, repo.default_branch),
            self._writers_comments(inst, epic),
            self.github.repo_token(inst, plan.repo, write=False),
            self._kept(inst, plan),
        )
        self._revoke(plan.plan_id)
        self._tokens[plan.plan_id] = token
        if issue is None or issue.state != "open":
            self._revoke(plan.plan_id)
            return None
        agent = config.agent_for(issue.labels)
        return PlanJob(
            job_id=plan_job_id(plan.repo, plan.epic, plan.plan_id, plan.dispatches),
            claim_secret=secret,
            repo=plan.repo,
            issue=plan.epic,
            title=issue.title,
            body=issue.body,
            base=repo.default_branch,
            base_sha=base_sha,
            clone_url=repo.clone_url,
            token=token,
            lease_s=self.lease_s,
            agent=AgentChoice(name=agent.name, model=agent.model),
            timeouts=Timeouts(
                agent_s=config.timeouts.agent_minutes * 60,
                stall_s=config.timeouts.stall_minutes * 60,
            ),
            comments=tuple(comments),
            # the plan's budget, less what its earlier plan jobs spent (None: no budget)
            budget_usd=budget_left(config.budget.per_plan_usd, plan.cost_usd),
            plan_id=plan.plan_id,
            guidance=plan.guidance,
            kept=kept,
            attempt=max(1, plan.dispatches),
        )

    async def _writers_comments(self, inst: int, epic: IssueRef) -> list[IssueComment]:
        """Comments by people with write access, oldest first (an issue is public input)."""
        out = []
        for comment in await self.github.comments(inst, epic):
            if comment.author_type != "User" or self.identity.is_self(comment.author):
                continue
            if await self.github.permission(inst, epic.repo, comment.author) in WRITE_PERMISSIONS:
                out.append(IssueComment(author=comment.author, body=comment.body))
        return out

    async def _kept(self, inst: int, plan: PlanRecord) -> tuple[LandedWork, ...]:
        """For a replan: the replaced plans' tasks that merged or still run."""
        if plan.replaces is None:
            return ()
        tasks = await asyncio.to_thread(self.store.tasks_of_plan, plan.replaces)
        merged = await context.landed(self.github, inst, tasks)
        running = [
            LandedWork(issue=t.number, title=f"{t.title} (still in progress)")
            for t in tasks
            if t.state in (TaskState.RUNNING, TaskState.IN_REVIEW)
            or (t.state == TaskState.QUEUED and t.dispatched_at is not None)
        ]
        return (*merged, *running)

    async def owned(self, jid: str, owner: str, secret: str | None) -> PlanRecord:
        """The plan whose running job ``jid`` is, when ``owner`` holds it with ``secret``
        (``JobRefused`` otherwise: 409 not its running job, 403 not the caller's)."""
        parsed = parse_plan_job_id(jid)
        if parsed is None:
            raise not_running(jid)
        plan = await asyncio.to_thread(self.store.get_plan, parsed[1])
        if (refused := plan_refusal(jid, plan, owner, secret)) is not None:
            raise refused
        assert plan is not None  # plan_refusal refuses a missing plan
        return plan

    async def heartbeat(self, jid: str, owner: str, secret: str | None) -> None:
        plan = await self.owned(jid, owner, secret)
        await self.set(plan, PlanState.PLANNING, lease_until=self.clock() + self.lease_s)

    async def transcript_task(self, jid: str, owner: str, secret: str | None) -> Task:
        """Where a plan job's transcript is kept: under the epic, the job's dispatch as its
        attempt (``bot.transcripts.add`` takes a task)."""
        plan = await self.owned(jid, owner, secret)
        return Task(
            repo=plan.repo,
            number=plan.epic,
            title="plan",
            attempt=plan.dispatches,
            dispatched_at=plan.updated_at,
        )

    async def job_result(self, jid: str, owner: str, secret: str | None, result: JobResult) -> None:
        """A runner finished a plan job: file a valid plan, report anything else."""
        plan = await self.owned(jid, owner, secret)
        self._revoke(plan.plan_id)
        cost = result.usage.cost_usd
        spent = (plan.cost_usd or 0.0) + (cost or 0.0) if (cost or plan.cost_usd) else None
        epic = IssueRef(plan.repo, plan.epic)
        marker = plan_comment_marker(plan.plan_id)
        match result:
            case PlannedResult():
                checked = validate_plan(result.plan)
                if isinstance(checked, list):
                    await self._done(plan, PlanState.INVALID, cost_usd=spent, errors=checked)
                    body = render_invalid_plan(plan.plan_id, checked)
                    await self.github.upsert_comment(plan.installation_id, epic, marker, body)
                    return
                filing = await self._done(
                    plan, PlanState.FILING, cost_usd=spent, plan_json=checked.model_dump_json()
                )
                self._background(self.file(filing))
            case RateLimitedResult():
                until = result.retry_at or self.clock() + RATE_LIMIT_WAIT_S
                await self._done(plan, PlanState.REQUESTED, cost_usd=spent, lease_until=until)
                body = (
                    f"### Stoneforge plan waiting\n\nThe planning agent ({result.agent}) hit its "
                    "provider's rate limit; the plan job runs again when it resets."
                )
                await self.github.upsert_comment(plan.installation_id, epic, marker, body)
            case FailedResult():
                why = f"{result.reason.value}: {(result.detail or '')[:500]}".strip(": ")
                await self._done(plan, PlanState.FAILED, cost_usd=spent, detail=why)
                body = render_plan_failed(plan.plan_id, why)
                await self.github.upsert_comment(plan.installation_id, epic, marker, body)
            case _:  # completed or handoff: a plan job pushes nothing
                why = f"the plan job ended with {result.outcome!r}, not a plan"
                await self._done(plan, PlanState.FAILED, cost_usd=spent, detail=why)
                body = render_plan_failed(plan.plan_id, why)
                await self.github.upsert_comment(plan.installation_id, epic, marker, body)

    async def _done(self, plan: PlanRecord, state: PlanState, **fields: Any) -> PlanRecord:
        """The running plan job ended: ``plan`` moves to ``state`` (409 when it already had)."""
        moved = await self.set(
            plan,
            PlanState.PLANNING,
            state=state,
            worker=None,
            job_owner=None,
            job_secret_hash=None,
            **{"lease_until": None, **fields},
        )
        if moved is None:
            raise not_running(plan_job_id(plan.repo, plan.epic, plan.plan_id, plan.dispatches))
        return moved

    async def file(self, plan: PlanRecord) -> None:
        """File a plan in ``filing`` (idempotent), then it is ``drafted``; the plan comment
        lists the draft."""
        if plan.plan_id in self._filing or plan.plan_json is None:
            return
        self._filing.add(plan.plan_id)
        try:
            epic = IssueRef(plan.repo, plan.epic)
            await self.filer.file(
                plan.installation_id, epic, plan.plan_id, plan_of(plan), draft_label=DRAFT_LABEL
            )
            await self.set(plan, PlanState.FILING, state=PlanState.DRAFTED)
            await self.progress.redraw(plan.plan_id)
            log.info("plan_drafted", extra={"repo": plan.repo, "issue": plan.epic})
        finally:
            self._filing.discard(plan.plan_id)

    # --- upkeep ----------------------------------------------------------------------------

    async def upkeep(self) -> None:
        """Plans whose job's lease expired go back to ``requested``; plans left in
        ``filing`` (a restart, a failed call) are filed again."""
        for plan in await asyncio.to_thread(self.store.expired_plan_leases, self.clock()):
            log.warning("plan_lease_expired", extra={"repo": plan.repo, "issue": plan.epic})
            self._revoke(plan.plan_id)
            if await self.set(plan, PlanState.PLANNING, state=PlanState.REQUESTED, worker=None):
                self.signals.ready_changed.set()
        for plan in await asyncio.to_thread(self.store.plans_in, PlanState.FILING):
            if plan.plan_id not in self._filing:
                self._background(self.file(plan))

    async def run_forever(self) -> None:
        while True:
            try:
                await self.upkeep()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - upkeep must outlive any one failure
                log.exception("director_upkeep_failed")
            await asyncio.sleep(max(1.0, self.lease_s / 4))

    def background_tasks(self) -> set[asyncio.Task[None]]:
        return self._work.running()

    async def set(
        self, plan: PlanRecord, expect: PlanState | None, **fields: Any
    ) -> PlanRecord | None:
        """Change ``plan``'s fields; with ``expect``, only while it is in that state (None:
        it was not)."""
        fields.setdefault("updated_at", self.clock())
        return await asyncio.to_thread(
            functools.partial(self.store.update_plan, plan.plan_id, expect=expect, **fields)
        )

    def _revoke(self, plan_id: str) -> None:
        token = self._tokens.pop(plan_id, None)
        if token:
            self._background(self.github.revoke_token(token))

    def _background(self, coro: Awaitable[None]) -> None:
        self._work.spawn(coro)


def plan_of(plan: PlanRecord) -> Plan:
    """The validated plan a record holds (one past ``filing``)."""
    assert plan.plan_json is not None
    return Plan.model_validate_json(plan.plan_json)
