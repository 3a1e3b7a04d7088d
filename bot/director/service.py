"""The director: plan requests, their plan jobs and results, approval, replans, status.

``Director`` implements ``bot.ports.DirectorPort`` (what comment commands ask of it) and the
plan job's side of the runner API. A plan goes (``bot.store.plans.PlanState``):

1. ``plan``: a plan request (``requested``), unless the epic has a plan being made; waiting
   claims are woken.
2. ``claim_plan`` (``bot.dispatch.Dispatcher.claim`` asks it before any task): the oldest
   requested plan is claimed atomically (``planning``; a dispatch count, the claimer, the hash
   of a secret only it gets) and becomes a ``PlanJob`` with a read-only token, the epic read
   afresh and its writers' comments. A lease that expires puts it back to ``requested``.
3. ``job_result``: a plan is validated again (``bot.core.plan.validate_plan``: never trust the
   runner's check). Invalid: ``invalid``, the errors on the epic. Valid: ``filing``, filed
   (``PlanFiler``), ``drafted``, and the plan comment lists the draft. A plan left in
   ``filing`` (the bot stopped) is filed again at start-up: filing is idempotent.
4. ``approve``: each filed issue loses ``stoneforge:draft``, gets the trigger label and
   becomes a task (``IssueSync.sync_issue``, as the App's own label events are ignored) with
   the plan's files and priority; ``approved``. ``bot.director.progress`` follows it from
   there (plan comment, budget, completion).
5. ``replan``: the tasks that have not started are closed as not planned; the merged and
   running ones stay and the new plan job is told of them (``kept``); the old plan is
   ``replaced``.

The GitHub Actions backend does not take plan jobs: only runners claim them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Awaitable
from typing import Any, Literal, Protocol

from bot.adapters.github import GitHubError, IssueInfo
from bot.adapters.github.records import Comment, RepoInfo
from bot.core.lifecycle import CancelCause, Cancelled
from bot.core.model import IssueRef, Task, TaskState
from bot.core.plan import DRAFT_LABEL, Plan, plan_comment_marker, validate_plan
from bot.core.plan_comment import render_invalid_plan, render_plan_failed
from bot.core.protocol import (
    AgentChoice,
    FailedResult,
    IssueComment,
    JobResult,
    LandedWork,
    PlanContext,
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
from bot.ports import Clock, Configs, Transitions
from bot.signals import Identity, Signals
from bot.signature import token_hash
from bot.store.plans import IN_THE_MAKING, PlanRecord, PlanState

log = logging.getLogger(__name__)

RATE_LIMIT_WAIT_S = 900.0


class DirectorGitHub(Protocol):
    """The GitHub verbs the director uses."""

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

    async def add_labels(self, installation_id: int, ref: IssueRef, labels: list[str]) -> None: ...

    async def remove_label(self, installation_id: int, ref: IssueRef, label: str) -> None: ...

    async def close_issue(
        self, installation_id: int, ref: IssueRef, reason: Literal["completed", "not_planned"]
    ) -> None: ...

    async def pull_files(
        self, installation_id: int, repo: str, number: int, limit: int = 50
    ) -> tuple[str, list[str]]: ...


class DirectorStore(ProgressStore, Protocol):
    """The plans and the tasks made of them."""

    def close_plan_task(self, plan_id: str, idx: int) -> None: ...

    def request_plan(self, record: PlanRecord) -> PlanRecord | None: ...

    def current_plan(self, repo: str, epic: int) -> PlanRecord | None: ...

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


class Syncer(Protocol):
    """``bot.issue_sync.IssueSync``: an issue becomes a task."""

    async def sync_issue(
        self, inst: int, ref: IssueRef, *, relabeled: bool = False, labeled_by: str | None = None
    ) -> None: ...


class Director:
    """Plans: requested, claimed as jobs, validated, filed, approved, replanned."""

    def __init__(
        self,
        github: DirectorGitHub,
        store: DirectorStore,
        repos: Configs,
        views: Transitions,
        sync: Syncer,
        filer: Filer,
        signals: Signals,
        identity: Identity,
        *,
        lease_s: float,
        public_url: str = "",
        redraw_delay_s: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        self.github = github
        self.store = store
        self.repos = repos
        self.views = views
        self.sync = sync
        self.filer = filer
        self.signals = signals
        self.identity = identity
        self.lease_s = lease_s
        self.clock = clock
        self.progress = PlanProgress(
            github, store, repos, public_url=public_url, delay_s=redraw_delay_s, clock=clock
        )
        self._tokens: dict[str, str] = {}  # plan -> the read-only token of its running job
        self._filing: set[str] = set()  # plans this process is filing now
        self._tasks: set[asyncio.Task[None]] = set()

    # --- comment commands (bot.ports.DirectorPort) ---------------------------------------

    async def plan(
        self, installation_id: int, epic: IssueRef, *, guidance: str, by: str, comment_id: int
    ) -> str | None:
        busy = await self._request(installation_id, epic, guidance, by, comment_id, None)
        if busy is not None:
            return f"A plan for this issue is already being made (`{busy.plan_id}`, {busy.state})."
        return None

    async def _request(
        self,
        inst: int,
        epic: IssueRef,
        guidance: str,
        by: str,
        comment_id: int | None,
        replaces: str | None,
    ) -> PlanRecord | None:
        """Store a plan request and wake the claims; the plan being made, if there is one."""
        now = self.clock()
        record = PlanRecord(
            plan_id=uuid.uuid4().hex[:16],
            repo=epic.repo,
            epic=epic.number,
            installation_id=inst,
            state=PlanState.REQUESTED,
            requested_by=by,
            created_at=now,
            updated_at=now,
            guidance=guidance,
            request_comment_id=comment_id,
            replaces=replaces,
        )
        busy = await asyncio.to_thread(self.store.request_plan, record)
        if busy is None:
            log.info("plan_requested", extra={"repo": epic.repo, "issue": epic.number})
            self.signals.ready_changed.set()
        return busy

    async def approve(self, installation_id: int, epic: IssueRef, *, by: str) -> str | None:
        plan = await asyncio.to_thread(self.store.current_plan, epic.repo, epic.number)
        if plan is None:
            return "This issue has no plan to approve: comment `/stoneforge plan` first."
        if plan.state != PlanState.DRAFTED:
            return f"The plan `{plan.plan_id}` is {plan.state}: only a drafted plan is approved."
        approved = await self._set(
            plan, PlanState.DRAFTED, state=PlanState.APPROVED, approved_by=by
        )
        if approved is None:
            return "The plan changed meanwhile; look at its comment and try again."
        model = _model(plan)
        trigger = self.repos.config(epic.repo).trigger_label
        filed = await self.progress.filed(plan)
        for index, row in sorted(filed.items()):
            if row.closed or row.number is None or index >= len(model.tasks):
                continue
            planned, ref = model.tasks[index], IssueRef(epic.repo, row.number)
            await self.github.remove_label(installation_id, ref, DRAFT_LABEL)
            await self.github.add_labels(installation_id, ref, [trigger])
            await self.sync.sync_issue(installation_id, ref, relabeled=True, labeled_by=by)
            if await asyncio.to_thread(self.store.get_task, ref) is not None:
                await asyncio.to_thread(
                    functools.partial(
                        self.store.update_task,
                        ref,
                        plan_id=plan.plan_id,
                        planned_index=index,
                        files=planned.files,
                        priority=planned.priority,
                    )
                )
        self.signals.ready_changed.set()
        await self.progress.redraw(plan.plan_id)
        return None

    async def replan(
        self, installation_id: int, epic: IssueRef, *, guidance: str, by: str, comment_id: int
    ) -> str | None:
        plan = await asyncio.to_thread(self.store.current_plan, epic.repo, epic.number)
        if plan is None:
            return await self.plan(
                installation_id, epic, guidance=guidance, by=by, comment_id=comment_id
            )
        if plan.state in IN_THE_MAKING:
            return f"A plan for this issue is already being made (`{plan.plan_id}`)."
        if plan.state == PlanState.COMPLETED:
            return "This plan is completed: every task merged."
        if await self._set(plan, plan.state, state=PlanState.REPLACED) is None:
            return "The plan changed meanwhile; look at its comment and try again."
        closed = await self._drop_unstarted(installation_id, plan)
        busy = await self._request(installation_id, epic, guidance, by, comment_id, plan.plan_id)
        if busy is not None:  # another request got in between
            return f"A plan for this issue is already being made (`{busy.plan_id}`)."
        return f"Closed {closed} task(s) that had not started; planning the rest again."

    async def _drop_unstarted(self, inst: int, plan: PlanRecord) -> int:
        """Close the plan's issues whose tasks never ran (drafts, queued and never
        dispatched) as not planned, and cancel their tasks. Returns how many."""
        tasks = {
            t.number: t for t in await asyncio.to_thread(self.store.tasks_of_plan, plan.plan_id)
        }
        closed = 0
        for row in (await self.progress.filed(plan)).values():
            task = tasks.get(row.number or 0)
            unstarted = task is None or (
                task.state == TaskState.QUEUED and task.dispatched_at is None
            )
            if row.closed or row.number is None or not unstarted:
                continue
            if task is not None:
                await self.views.transition(
                    task, TaskState.CANCELLED, Cancelled(CancelCause.UNTRIGGERED)
                )
            await self.github.close_issue(inst, IssueRef(plan.repo, row.number), "not_planned")
            await asyncio.to_thread(self.store.close_plan_task, plan.plan_id, row.idx)
            closed += 1
        return closed

    async def status(self, installation_id: int, ref: IssueRef) -> str | None:
        plan = await asyncio.to_thread(self.store.current_plan, ref.repo, ref.number)
        if plan is None:
            return None
        table = await self.progress.status(plan)
        if table is None:
            return f"The plan `{plan.plan_id}` is {plan.state}; it has no tasks yet."
        return f"**Plan `{plan.plan_id}`** ({plan.state})\n\n{table}"

    async def plan_tasks(self, epic: IssueRef) -> list[IssueRef] | None:
        plan = await asyncio.to_thread(self.store.current_plan, epic.repo, epic.number)
        if plan is None:
            return None
        tasks = await asyncio.to_thread(self.store.tasks_of_plan, plan.plan_id)
        return [t.ref for t in tasks]

    async def set_paused(self, epic: IssueRef, paused: bool) -> bool:
        plan = await asyncio.to_thread(self.store.current_plan, epic.repo, epic.number)
        if plan is None:
            return False
        detail = "paused with `/stoneforge pause`" if paused else None
        await self._set(plan, None, paused=paused, detail=detail)
        for task in await asyncio.to_thread(self.store.tasks_of_plan, plan.plan_id):
            if task.paused != paused:
                await asyncio.to_thread(
                    functools.partial(self.store.update_task, task.ref, paused=paused)
                )
        if not paused:
            self.signals.ready_changed.set()
        self.progress.redraw_soon(plan.plan_id)
        return True

    # --- the plan job ----------------------------------------------------------------------

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
            await self._set(plan, PlanState.PLANNING, state=PlanState.REQUESTED, worker=None)
            self._revoke(plan.plan_id)
            raise
        if job is None:  # the epic was closed or deleted meanwhile
            await self._set(plan, PlanState.PLANNING, state=PlanState.CANCELLED, worker=None)
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
        await self._set(plan, PlanState.PLANNING, lease_until=self.clock() + self.lease_s)

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
        moved = await self._set(
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
                plan.installation_id, epic, plan.plan_id, _model(plan), draft_label=DRAFT_LABEL
            )
            await self._set(plan, PlanState.FILING, state=PlanState.DRAFTED)
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
            if await self._set(plan, PlanState.PLANNING, state=PlanState.REQUESTED, worker=None):
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

    def task_moved(self, task: Task) -> None:
        """The observer ``bot.views.TaskViews`` calls after each state change."""
        self.progress.task_moved(task)

    async def plan_context(self, inst: int, task: Task) -> PlanContext | None:
        return await context.plan_context(self.github, self.store, inst, task)

    def background_tasks(self) -> set[asyncio.Task[None]]:
        return {t for t in self._tasks if not t.done()} | self.progress.background_tasks()

    # --- helpers ---------------------------------------------------------------------------

    async def _set(
        self, plan: PlanRecord, expect: PlanState | None, **fields: Any
    ) -> PlanRecord | None:
        fields.setdefault("updated_at", self.clock())
        return await asyncio.to_thread(
            functools.partial(self.store.update_plan, plan.plan_id, expect=expect, **fields)
        )

    def _revoke(self, plan_id: str) -> None:
        token = self._tokens.pop(plan_id, None)
        if token:
            self._background(self.github.revoke_token(token))

    def _background(self, coro: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await coro
            except GitHubError as exc:
                log.warning("director_call_failed: %s", exc)
            except Exception:  # noqa: BLE001 - background work must not vanish silently
                log.exception("director_call_crashed")

        task = asyncio.get_running_loop().create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


def _model(plan: PlanRecord) -> Plan:
    assert plan.plan_json is not None
    return Plan.model_validate_json(plan.plan_json)
