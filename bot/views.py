"""The task graph as people see it: state changes, the status each task shows, and wake-ups.

``set_state`` is the one way the shell changes a task's state: it stores the change, wakes
waiting claims when a task may have become ready, and redraws what changed. Redraws are
coalesced (``refresh_views``); a task held back until a known time (a provider's reset,
midnight UTC for a daily budget) is looked at again then.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.core import lifecycle
from bot.core.graph import GraphReport, analyse
from bot.core.model import PENDING_STATES, IssueRef, Task, TaskState, limited_agents
from bot.core.render import StatusView, describe_reason
from bot.ports import Clock, TaskStore
from bot.reporting import Reporter
from bot.repos import Repos
from bot.signals import Signals
from bot.store import WorkingSet


def today(now: float) -> str:
    """The UTC day ``now`` falls on, as daily spend is kept."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def next_utc_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp() + 86400


class TaskViews:
    """Task states and how they are shown (labels, status comments, ready times)."""

    def __init__(
        self,
        store: TaskStore,
        repos: Repos,
        reporter: Reporter,
        signals: Signals,
        *,
        html_url: str,
        retention_s: Callable[[], float],
        clock: Clock = time.time,
    ) -> None:
        self.store = store
        self.repos = repos
        self.reporter = reporter
        self.signals = signals
        self.html_url = html_url
        self.retention_s = retention_s  # how long merged tasks stay in the working set
        self.clock = clock
        self.merging: set[IssueRef] = set()  # tasks the steward is bringing in
        self.external: dict[IssueRef, bool] = {}  # blockers that are not tasks -> done?
        self._views: dict[IssueRef, tuple[object, ...]] = {}
        self._refresh_dirty = False
        self._refresh_task: asyncio.Task[None] | None = None
        # When a held-back task may go (a provider's reset, midnight UTC): claims and views
        # are woken then, not at the next unrelated change.
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = 0.0
        #: called with each task after its state changed (the director's plan comments)
        self.observers: list[Callable[[Task], None]] = []

    async def graph(self) -> tuple[list[Task], GraphReport]:
        working = await self.working_set()
        return working.tasks, analyse(working.tasks, self.external, working.done)

    async def working_set(self) -> WorkingSet:
        """Tasks not merged, and those merged within the retention (not the history)."""
        since = self.clock() - self.retention_s()
        return await asyncio.to_thread(self.store.working_set, since)

    async def day_budget_spent(self, repo: str, now: float) -> tuple[float, float] | None:
        """``(spent, budget)`` today when ``repo``'s daily budget is spent, else None."""
        limit = self.repos.config(repo).budget.per_day_usd
        if limit is None:
            return None
        spent = await asyncio.to_thread(self.store.cost, repo, today(now))
        return (spent, limit) if spent >= limit else None

    def view(
        self,
        task: Task,
        report: GraphReport | None,
        held_budget: tuple[float, float] | None = None,
        held_limits: tuple[tuple[str, float], ...] = (),
    ) -> StatusView:
        """How ``task`` is shown; ``report`` None for a running task (it waits on nothing)."""
        cycle = next((c for c in report.cycles if task.ref in c), ()) if report else ()
        return StatusView(
            task=task,
            html_base=self.html_url,
            waiting_on=tuple(report.waiting.get(task.ref, ())) if report else (),
            cycle=tuple(cycle),
            missing=tuple(report.missing.get(task.ref, ())) if report else (),
            cost_usd=task.cost_usd,
            merging=task.ref in self.merging,
            trigger_label=self.repos.config(task.repo).trigger_label,
            held_budget=held_budget,
            held_limits=held_limits,
        )

    def transcript_added(self, task: Task) -> None:
        """A run of the running ``task`` uploaded its transcript: redraw its status comment,
        which links every transcript, while the job goes on (not only at its next state)."""
        self.reporter.show(self.view(task, None), merging=task.ref in self.merging)

    async def transition(
        self, task: Task, to: TaskState, reason: lifecycle.Reason | None, **fields: Any
    ) -> Task:
        """Move ``task`` to ``to`` for ``reason``, as the lifecycle allows (``IllegalTransition``
        otherwise); its ``detail`` becomes the reason in words."""
        detail = describe_reason(reason) if reason is not None else None
        change = lifecycle.transition(task.state, to, reason, detail)
        return await self.set_state(task, change.pop("state"), **change, **fields)

    async def set_state(self, task: Task, state: TaskState, **fields: Any) -> Task:
        """Store a state change. Without a ``reason`` the task's typed reason is cleared: the
        one it had was for an earlier change."""
        fields.setdefault("reason", None)
        new = await asyncio.to_thread(
            functools.partial(self.store.update_task, task.ref, state=state, **fields)
        )
        if state in (TaskState.QUEUED, TaskState.MERGED):
            self.signals.ready_changed.set()
        for observe in self.observers:
            observe(new)
        await self.refresh_views()
        return new

    async def refresh_views(self) -> None:
        """Show every task whose visible state changed: labels, status comment, ready time.

        Concurrent calls share the work: a call made while a refresh is running waits for one
        more pass that starts after it, so it returns having seen its change, and a burst of
        state changes costs two reads of the task table, not one each.
        """
        await asyncio.shield(self._schedule_refresh())

    def background_tasks(self) -> set[asyncio.Task[None]]:
        """Work started on its own that may still be running (stopped at shutdown)."""
        task = self._refresh_task
        return {task} if task is not None and not task.done() else set()

    def _schedule_refresh(self) -> asyncio.Task[None]:
        """One more refresh pass is due: start the loop, or let the running one go again."""
        self._refresh_dirty = True
        if self._refresh_task is None or self._refresh_task.done():
            self._refresh_task = asyncio.get_running_loop().create_task(self._refresh_loop())
        return self._refresh_task

    def _no_agent_free(self, task: Task, now: float) -> bool:
        """Whether rate limits hold the task from its agent and from the fallback."""
        config = self.repos.config(task.repo)
        chosen = task.agent or config.agent.name
        return config.agent_to_run(chosen, limited_agents(task, now)) is None

    def _wake_up_at(self, when: float) -> None:
        """Wake waiting claims and redraw the views at ``when`` (the soonest one asked for)."""
        now = self.clock()
        if self._wake is not None and now < self._wake_at <= when:
            return  # an earlier wake-up is already set; it looks again then
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = when
        delay = max(0.0, when - now) + 0.05
        self._wake = asyncio.get_running_loop().call_later(delay, self._woken)

    def _woken(self) -> None:
        self._wake = None
        self.signals.ready_changed.set()
        self._schedule_refresh()  # what was held back is shown afresh (its view changed)

    async def _refresh_loop(self) -> None:
        while self._refresh_dirty:
            self._refresh_dirty = False
            await self._refresh_once()

    async def _refresh_once(self) -> None:
        tasks, report = await self.graph()
        now = self.clock()
        ready = set(report.ready)
        held = {
            repo: await self.day_budget_spent(repo, now)
            for repo in {t.repo for t in tasks if t.ref in ready}
        }
        for task in tasks:
            if task.state in PENDING_STATES and task.ref in ready and task.ready_at is None:
                task = await asyncio.to_thread(
                    functools.partial(self.store.update_task, task.ref, ready_at=now)
                )
            budget = held.get(task.repo) if task.ref in ready else None
            if budget:
                self._wake_up_at(next_utc_midnight(now))
            limits = tuple((a, until) for a, until in task.rate_limits if until > now)
            if task.ref in ready and limits:
                self._wake_up_at(min(until for _, until in limits))  # an agent may go then
            if task.ref not in ready or not self._no_agent_free(task, now):
                limits = ()  # shown only while they hold the task from every agent
            view = self.view(task, report, budget, limits)
            merging = task.ref in self.merging
            key = (
                task.state,
                task.attempt,
                task.pr_number,
                view.waiting_on,
                view.cycle,
                view.missing,
                merging,
                task.detail,
                view.held_budget,
                view.held_limits,
            )
            if self._views.get(task.ref) == key:
                continue
            self._views[task.ref] = key
            self.reporter.show(view, merging=merging)

    def snapshot(self, tasks: list[Task]) -> list[dict[str, Any]]:
        report = analyse(tasks, self.external)
        return [
            {
                "repo": task.repo,
                "issue": task.number,
                "title": task.title,
                "state": task.state.value,
                "ready": task.ref in report.ready,
                "blocked_by": [str(r) for r in task.blocked_by],
                "priority": task.priority,
                "worker": task.worker,
                "attempt": task.attempt,
                "branch": task.branch,
                "pr": task.pr_number,
                "head_sha": task.head_sha,
                "dispatched_at": task.dispatched_at,
                "agent_seconds": task.agent_seconds,
                "cost_usd": task.cost_usd,
                "merged_at": task.merged_at,
                "merge_sha": task.merge_sha,
                "detail": task.detail,
                "agent": task.agent,
                "runs_on": list(task.runs_on),
                "plan_id": task.plan_id,
                "planned_index": task.planned_index,
                "paused": task.paused,
                "stacked_on": task.stacked_on,
            }
            for task in tasks
        ]
