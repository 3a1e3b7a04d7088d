"""The bot's service layer: stored deliveries become tasks; the task graph is kept and shown.

Webhooks are triggers only: each handler re-reads the issue from GitHub (a fresh snapshot)
before deciding, so duplicated, reordered or lost deliveries converge to the same state, and a
periodic reconciliation rebuilds everything from GitHub itself. Decisions come from
``bot.core``; this module does the I/O around them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from bot.adapters.github import GitHubAdapter, GitHubError
from bot.core.graph import GraphReport, analyse
from bot.core.model import (
    PENDING_STATES,
    IssueRef,
    Task,
    TaskState,
    limited_agents,
)
from bot.core.render import StatusView
from bot.events import parse_event
from bot.intake import HANDLED_EVENTS, Intake
from bot.issue_sync import WRITE_PERMISSIONS, IssueSync
from bot.logs import bind
from bot.metrics import BotMetrics
from bot.pull_cache import PullCache
from bot.reporting import Reporter
from bot.repos import Repos
from bot.settings import BotSettings
from bot.store import NewDelivery, Store, WorkingSet

log = logging.getLogger(__name__)

__all__ = ["HANDLED_EVENTS", "WRITE_PERMISSIONS", "Bot"]
REDELIVERY_WINDOW_S = 3 * 24 * 3600  # GitHub keeps failed deliveries for three days


class Bot(Intake, IssueSync):
    """Owns the store, the GitHub adapter and the wake-ups shared by intake, runners, steward."""

    def __init__(
        self,
        settings: BotSettings,
        store: Store,
        github: GitHubAdapter,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.github = github
        self.metrics = metrics
        self.repos = Repos(settings, store, github)
        self.reporter = Reporter(github, store, settings.public_url)
        self.queue: asyncio.Queue[tuple[str, str, bytes]] = asyncio.Queue()
        self.ready_changed = asyncio.Event()
        self.steward_wake = asyncio.Event()
        # The steward's pull request snapshots; intake forgets those a webhook says changed.
        self.pulls = PullCache(ttl_s=settings.steward_refresh_s)
        # repo -> (installation, sha): its default branch's tip, as last seen moving
        self.bases: dict[str, tuple[int, str]] = {}
        self.bot_login: str | None = None
        self.merging: set[IssueRef] = set()  # tasks the steward is bringing in
        self._external: dict[IssueRef, bool] = {}  # blockers that are not tasks -> done?
        self._views: dict[IssueRef, tuple[object, ...]] = {}
        self._refresh_dirty = False
        self._refresh_task: asyncio.Task[None] | None = None
        # When a held-back task may go (a provider's reset, midnight UTC): claims and views
        # are woken then, not at the next unrelated change.
        self._wake: asyncio.TimerHandle | None = None
        self._wake_at = 0.0
        self._sync_locks: dict[IssueRef, tuple[asyncio.Lock, int]] = {}
        self._pending_writes: list[tuple[NewDelivery, asyncio.Future[bool]]] = []
        self._writer: asyncio.Task[None] | None = None

    async def handle(self, event: str, payload: Mapping[str, Any]) -> None:
        """Route one event by (event, action). Unknown events are ignored."""
        info = parse_event(event, payload)
        if self.bot_login and info.sender_login == self.bot_login:
            return  # our own writes: acting on them would loop
        inst, repo = info.installation_id, info.repo
        with bind(repo=repo, issue=info.issue_number):
            if inst and repo and not event.startswith("installation"):
                await self.repos.ensure(inst, repo)
            if event == "issues" and inst and repo and info.issue_number:
                ref = IssueRef(repo, info.issue_number)
                trigger = self.repos.config(repo).trigger_label
                labeled_by = None
                if info.action == "labeled" and info.label == trigger:
                    if not await self._may_trigger(inst, ref, info):
                        return
                    labeled_by = info.sender_login
                await self.sync_issue(
                    inst, ref, relabeled=info.action == "labeled", labeled_by=labeled_by
                )
                await self._sync_dependents(inst, ref)
            elif event in ("issue_dependencies", "sub_issues") and inst and repo:
                for other_repo, number in info.related_issues:
                    await self.sync_issue(inst, IssueRef(other_repo, number))
                    await self._sync_dependents(inst, IssueRef(other_repo, number))
            elif event == "push" and inst and repo:
                await self._on_push(inst, repo, payload)
            elif event in ("pull_request", "check_run", "check_suite", "status"):
                self.steward_wake.set()
            elif event == "pull_request_review":
                # A trigger only: the steward re-reads the reviews and the reviewers' access, and
                # sends a task whose pull request got "changes requested" back to its agent.
                log.info(
                    "review_%s", info.action, extra={"pr": info.pull_number, "by": info.review_by}
                )
                self.steward_wake.set()
            elif event == "installation" and inst:
                if info.action == "deleted":
                    for name in info.repos_removed:
                        await self._forget_repo(name)
                else:
                    await self.reconcile_installation(inst)
            elif event == "installation_repositories" and inst:
                for name in info.repos_removed:
                    await self._forget_repo(name)
                if info.repos_added:
                    await self.reconcile_installation(inst)

    async def _on_push(self, inst: int, repo: str, payload: Mapping[str, Any]) -> None:
        """A push to the default branch may change the configuration; any push may unblock PRs."""
        self.steward_wake.set()
        ref = str(payload.get("ref") or "")
        default = str((payload.get("repository") or {}).get("default_branch") or "main")
        if ref == f"refs/heads/{default}":
            after = str(payload.get("after") or "")
            if after.strip("0"):  # not a deletion
                self.note_base(repo, inst, after)
            await self.repos.load_config(inst, await self.github.repo(inst, repo))

    def note_base(self, repo: str, inst: int, sha: str) -> None:
        """The default branch of ``repo`` moved to ``sha`` (a push, or our own merge)."""
        self.bases[repo] = (inst, sha)
        self.ready_changed.set()  # idle claims look again: a runner may fetch it ahead

    async def base_sha(self, inst: int, repo: str, branch: str) -> str:
        """The default branch's tip, read from GitHub at dispatch.

        Runners whose mirror already has it skip their fetch. It is never served from a cache:
        a replica that missed a push would hand out an old base, and an agent working on an
        old base produces a red pull request.
        """
        return await self.github.branch_sha(inst, repo, branch)

    async def _forget_repo(self, repo: str) -> None:
        await self.repos.remove(repo)
        self.pulls.forget_repo(repo)
        self.bases.pop(repo, None)
        active = (TaskState.QUEUED, TaskState.RUNNING)  # not the merged history
        for task in await asyncio.to_thread(self.store.list_tasks, repo=repo, states=active):
            if task.state in (TaskState.QUEUED, TaskState.RUNNING):
                await self.set_state(task, TaskState.CANCELLED, detail="App uninstalled")

    # --- reconciliation ---------------------------------------------------------------------
    async def reconcile_installation(self, inst: int) -> None:
        """Rebuild tasks from GitHub itself: a lost webhook delays work but never loses it."""
        for repo in await self.github.installation_repos(inst):
            await self.repos.setup(inst, repo)
            trigger = self.repos.config(repo.full_name).trigger_label
            labeled = await self.github.labeled_issues(inst, repo.full_name, trigger)
            seen = {issue.ref for issue in labeled}
            active = (TaskState.QUEUED, TaskState.RUNNING)  # not the merged history
            for issue in labeled:
                await self.sync_issue(inst, issue.ref)
            for task in await asyncio.to_thread(
                functools.partial(self.store.list_tasks, repo=repo.full_name, states=active)
            ):
                if task.ref not in seen and task.state in (TaskState.QUEUED, TaskState.RUNNING):
                    await self.sync_issue(inst, task.ref)  # unlabeled or closed while we were away
        self.steward_wake.set()

    async def reconcile(self) -> None:
        try:
            for inst in await self.github.installations():
                await self.reconcile_installation(inst)
        except GitHubError as exc:
            log.warning("reconcile_failed: %s", exc)

    async def reconcile_forever(self) -> None:
        while True:
            await self.reconcile()
            await self.prune_deliveries()
            await asyncio.sleep(self.settings.reconcile_interval_s)

    async def prune_deliveries(self) -> int:
        """Forget handled deliveries past ``delivery_retention_s`` (the table would grow
        without end: every webhook's whole payload is kept until then)."""
        before = time.time() - self.settings.delivery_retention_s
        removed = await asyncio.to_thread(self.store.prune_deliveries, before)
        if removed:
            log.info("deliveries_pruned", extra={"count": removed})
        return removed

    async def redeliver_failed(self) -> int:
        """After downtime: ask GitHub to redeliver what failed and we never stored."""
        try:
            failed = await self.github.failed_deliveries(time.time() - REDELIVERY_WINDOW_S)
        except GitHubError as exc:
            log.warning("redelivery_list_failed: %s", exc)
            return 0
        count = 0
        for delivery_id, guid in failed:
            if await asyncio.to_thread(self.store.get_delivery, guid) is not None:
                continue
            try:
                await self.github.redeliver(delivery_id)
                count += 1
            except GitHubError as exc:
                log.warning("redelivery_failed %s: %s", guid, exc)
        if count:
            log.info("redelivery_requested", extra={"count": count})
        return count

    # --- the graph, as people see it -------------------------------------------------------
    async def graph(self) -> tuple[list[Task], GraphReport]:
        working = await self.working_set()
        return working.tasks, analyse(working.tasks, self._external, working.done)

    async def working_set(self) -> WorkingSet:
        """Tasks not merged, and those merged within ``merged_retention_s`` (not the history)."""
        since = time.time() - self.settings.merged_retention_s
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
            html_base=self.settings.html_url,
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

    async def refresh_views(self) -> None:
        """Show every task whose visible state changed: labels, status comment, ready time.

        Concurrent calls share the work: a call made while a refresh is running waits for one
        more pass that starts after it, so it returns having seen its change, and a burst of
        state changes costs two reads of the task table, not one each.
        """
        await asyncio.shield(self._schedule_refresh())

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
        if self._wake is not None and time.time() < self._wake_at <= when:
            return  # an earlier wake-up is already set; it looks again then
        if self._wake is not None:
            self._wake.cancel()
        self._wake_at = when
        delay = max(0.0, when - time.time()) + 0.05
        self._wake = asyncio.get_running_loop().call_later(delay, self._woken)

    def _woken(self) -> None:
        self._wake = None
        self.ready_changed.set()
        self._schedule_refresh()  # what was held back is shown afresh (its view changed)

    def background_tasks(self) -> set[asyncio.Task[None]]:
        """Work the bot started on its own that may still be running (stopped at shutdown)."""
        task = self._refresh_task
        return {task} if task is not None and not task.done() else set()

    async def _refresh_loop(self) -> None:
        while self._refresh_dirty:
            self._refresh_dirty = False
            await self._refresh_once()

    async def _refresh_once(self) -> None:
        tasks, report = await self.graph()
        now = time.time()
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
                self._wake_up_at(_next_utc_midnight(now))
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

    async def set_state(self, task: Task, state: TaskState, **fields: Any) -> Task:
        new = await asyncio.to_thread(
            functools.partial(self.store.update_task, task.ref, state=state, **fields)
        )
        if state in (TaskState.QUEUED, TaskState.MERGED):
            self.ready_changed.set()
        await self.refresh_views()
        return new

    def snapshot(self, tasks: list[Task]) -> list[dict[str, Any]]:
        report = analyse(tasks, self._external)
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
            }
            for task in tasks
        ]


def today(now: float) -> str:
    """The UTC day ``now`` falls on, as daily spend is kept."""
    return datetime.fromtimestamp(now, UTC).strftime("%Y-%m-%d")


def _next_utc_midnight(now: float) -> float:
    day = datetime.fromtimestamp(now, UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day.timestamp() + 86400
