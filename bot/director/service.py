"""The director: plan requests, approval, replans, status and pausing of an epic's plan.

``Director`` implements ``bot.ports.DirectorPort`` (what comment commands ask of it) and is what
the dispatcher and the runner API hold for plan jobs (``bot.director.plan_jobs``). A plan goes
(``bot.store.plans.PlanState``):

1. ``plan``: a plan request (``requested``), unless the epic has a plan being made; waiting
   claims are woken. The plan job, its result and filing: ``bot.director.plan_jobs``
   (``planning`` -> ``filing`` -> ``drafted``, or ``invalid`` / ``failed``).
2. ``approve`` (a drafted plan only): each filed issue loses ``stoneforge:draft``, gets the
   trigger label and becomes a task at once (``IssueSync.sync_issue``: the App's own label
   events are ignored by the router), with the plan's id, index, files and priority;
   ``approved``. ``bot.director.progress`` follows it from there: the plan comment redrawn as
   tasks move, the plan's budget, its completion.
3. ``replan``: the plan's issues whose tasks have not started (drafts, queued and never
   dispatched) are closed as not planned and their tasks cancelled; merged and running ones
   stay, and the new plan job is told of them (``kept``); the old plan is ``replaced``.
4. ``status``, ``plan_tasks``, ``set_paused``: the plan's table and graph, its tasks, pausing.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
import uuid
from collections.abc import Mapping
from typing import Any, Literal, Protocol

from bot.core.lifecycle import CancelCause, Cancelled
from bot.core.model import IssueRef, Task, TaskState
from bot.core.plan import DRAFT_LABEL
from bot.core.protocol import JobResult, PlanContext, PlanJob
from bot.director import context
from bot.director.plan_jobs import Filer, JobGitHub, JobStore, PlanJobs, plan_of
from bot.director.progress import PlanProgress
from bot.ports import Clock, Configs, Transitions
from bot.signals import Identity, Signals
from bot.store.plans import IN_THE_MAKING, PlanRecord, PlanState

log = logging.getLogger(__name__)


class DirectorGitHub(JobGitHub, Protocol):
    """The GitHub verbs the director uses besides its plan jobs'."""

    async def add_labels(self, installation_id: int, ref: IssueRef, labels: list[str]) -> None: ...

    async def remove_label(self, installation_id: int, ref: IssueRef, label: str) -> None: ...

    async def close_issue(
        self, installation_id: int, ref: IssueRef, reason: Literal["completed", "not_planned"]
    ) -> None: ...


class DirectorStore(JobStore, Protocol):
    """The plans and the tasks made of them."""

    def request_plan(self, record: PlanRecord) -> PlanRecord | None: ...

    def current_plan(self, repo: str, epic: int) -> PlanRecord | None: ...

    def close_plan_task(self, plan_id: str, idx: int) -> None: ...


class Syncer(Protocol):
    """``bot.issue_sync.IssueSync``: an issue becomes a task."""

    async def sync_issue(
        self,
        inst: int,
        ref: IssueRef,
        *,
        relabeled: bool = False,
        labeled_by: str | None = None,
        planned: Mapping[str, Any] | None = None,
    ) -> None: ...


class Director:
    """Plans: requested, approved, replanned, shown and paused (and their jobs, delegated)."""

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
        self.signals = signals
        self.clock = clock
        self._approving: set[str] = set()
        self.progress = PlanProgress(
            github, store, repos, public_url=public_url, delay_s=redraw_delay_s, clock=clock
        )
        self.jobs = PlanJobs(
            github,
            store,
            repos,
            filer,
            self.progress,
            signals,
            identity,
            lease_s=lease_s,
            clock=clock,
        )

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
        await self._make_tasks(approved, by)
        return None

    async def _make_tasks(self, plan: PlanRecord, by: str) -> int:
        """Each filed issue of an approved plan without its task: the draft label off, the
        trigger label on, and its task made (plan id, index, files, priority). Idempotent:
        ``finish_approvals`` runs it again for a plan whose approval a stopped bot left half
        done. How many tasks it made."""
        model = plan_of(plan)
        trigger = self.repos.config(plan.repo).trigger_label
        have = {t.number for t in await asyncio.to_thread(self.store.tasks_of_plan, plan.plan_id)}
        made = 0
        # Held from claims until every task is made, each with its plan fields: a claim that
        # saw the first task alone would not know which files the others touch.
        self._approving.add(plan.plan_id)
        try:
            for index, row in sorted((await self.progress.filed(plan)).items()):
                if row.closed or row.number is None or index >= len(model.tasks):
                    continue
                if row.number in have:
                    continue
                planned, ref = model.tasks[index], IssueRef(plan.repo, row.number)
                inst = plan.installation_id
                await self.github.remove_label(inst, ref, DRAFT_LABEL)
                await self.github.add_labels(inst, ref, [trigger])
                fields = {
                    "plan_id": plan.plan_id,
                    "planned_index": index,
                    "files": planned.files,
                    "priority": planned.priority,
                }
                await self.sync.sync_issue(inst, ref, relabeled=True, labeled_by=by, planned=fields)
                made += 1
        finally:
            self._approving.discard(plan.plan_id)
        self.signals.ready_changed.set()
        await self.progress.redraw(plan.plan_id)
        return made

    @property
    def approving(self) -> frozenset[str]:
        """Plans whose tasks ``approve`` is making now (the dispatcher holds them back)."""
        return frozenset(self._approving)

    async def finish_approvals(self) -> int:
        """Approved plans whose every filed issue is not yet a task (the bot stopped in the
        middle of ``approve``) get the rest; how many tasks that made."""
        made = 0
        for plan in await asyncio.to_thread(self.store.plans_in, PlanState.APPROVED):
            made += await self._make_tasks(plan, plan.approved_by or plan.requested_by)
        return made

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

    # --- the plan job (bot.director.plan_jobs), for the dispatcher and the runner API -------

    async def claim_plan(
        self, runner: str, worker: str, owner: str, labels: frozenset[str] | None = None
    ) -> PlanJob | None:
        return await self.jobs.claim_plan(runner, worker, owner, labels)

    async def heartbeat(self, jid: str, owner: str, secret: str | None) -> None:
        await self.jobs.heartbeat(jid, owner, secret)

    async def transcript_task(self, jid: str, owner: str, secret: str | None) -> Task:
        return await self.jobs.transcript_task(jid, owner, secret)

    async def job_result(self, jid: str, owner: str, secret: str | None, result: JobResult) -> None:
        await self.jobs.job_result(jid, owner, secret, result)

    async def upkeep(self) -> None:
        await self.jobs.upkeep()
        await self.finish_approvals()

    async def run_forever(self) -> None:
        await self.finish_approvals()
        await self.jobs.run_forever()

    def task_moved(self, task: Task) -> None:
        """The observer ``bot.views.TaskViews`` calls after each state change."""
        self.progress.task_moved(task)

    async def plan_context(self, inst: int, task: Task, body: str = "") -> PlanContext | None:
        """What a job of ``task`` is told of its plan (``bot.director.context``)."""
        return await context.plan_context(self.github, self.store, inst, task, body)

    def background_tasks(self) -> set[asyncio.Task[None]]:
        return self.jobs.background_tasks() | self.progress.background_tasks()

    async def _set(
        self, plan: PlanRecord, expect: PlanState | None, **fields: Any
    ) -> PlanRecord | None:
        return await self.jobs.set(plan, expect, **fields)
