"""Rebuilding the bot's state from GitHub itself, and keeping the delivery log in bounds.

A lost webhook delays work but never loses it: reconciliation re-reads every labeled issue of
every installation; after downtime, failed deliveries GitHub kept are asked for again.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time

from bot.adapters.github import GitHubError
from bot.core.model import TaskState
from bot.issue_sync import IssueSync
from bot.ports import AppPort, Clock, DeliveryLog, TaskStore
from bot.pull_cache import PullCache
from bot.repos import Repos
from bot.signals import Signals
from bot.views import TaskViews

log = logging.getLogger(__name__)

REDELIVERY_WINDOW_S = 3 * 24 * 3600  # GitHub keeps failed deliveries for three days


class Reconciler:
    def __init__(
        self,
        github: AppPort,
        tasks: TaskStore,
        deliveries: DeliveryLog,
        repos: Repos,
        sync: IssueSync,
        views: TaskViews,
        pulls: PullCache,
        signals: Signals,
        *,
        interval_s: float,
        retention_s: float,
        clock: Clock = time.time,
    ) -> None:
        self.github = github
        self.tasks = tasks
        self.deliveries = deliveries
        self.repos = repos
        self.sync = sync
        self.views = views
        self.pulls = pulls
        self.signals = signals
        self.interval_s = interval_s
        self.retention_s = retention_s
        self.clock = clock

    async def forget_repo(self, repo: str) -> None:
        """The App left ``repo``: forget it and stop its waiting and running tasks."""
        await self.repos.remove(repo)
        self.pulls.forget_repo(repo)
        self.signals.bases.pop(repo, None)
        active = (TaskState.QUEUED, TaskState.RUNNING)  # not the merged history
        for task in await asyncio.to_thread(
            functools.partial(self.tasks.list_tasks, repo=repo, states=active)
        ):
            if task.state in active:
                await self.views.set_state(task, TaskState.CANCELLED, detail="App uninstalled")

    async def reconcile_installation(self, inst: int) -> None:
        """Rebuild tasks from GitHub itself: a lost webhook delays work but never loses it."""
        for repo in await self.github.installation_repos(inst):
            await self.repos.setup(inst, repo)
            trigger = self.repos.config(repo.full_name).trigger_label
            labeled = await self.github.labeled_issues(inst, repo.full_name, trigger)
            seen = {issue.ref for issue in labeled}
            active = (TaskState.QUEUED, TaskState.RUNNING)  # not the merged history
            for issue in labeled:
                await self.sync.sync_issue(inst, issue.ref)
            for task in await asyncio.to_thread(
                functools.partial(self.tasks.list_tasks, repo=repo.full_name, states=active)
            ):
                if task.ref not in seen and task.state in (TaskState.QUEUED, TaskState.RUNNING):
                    await self.sync.sync_issue(inst, task.ref)  # unlabeled or closed meanwhile
        self.signals.steward_wake.set()

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
            await asyncio.sleep(self.interval_s)

    async def prune_deliveries(self) -> int:
        """Forget handled deliveries past the retention (the table would grow without end:
        every webhook's whole payload is kept until then)."""
        before = self.clock() - self.retention_s
        removed = await asyncio.to_thread(self.deliveries.prune_deliveries, before)
        if removed:
            log.info("deliveries_pruned", extra={"count": removed})
        return removed

    async def redeliver_failed(self) -> int:
        """After downtime: ask GitHub to redeliver what failed and we never stored."""
        try:
            failed = await self.github.failed_deliveries(self.clock() - REDELIVERY_WINDOW_S)
        except GitHubError as exc:
            log.warning("redelivery_list_failed: %s", exc)
            return 0
        count = 0
        for delivery_id, guid in failed:
            if await asyncio.to_thread(self.deliveries.get_delivery, guid) is not None:
                continue
            try:
                await self.github.redeliver(delivery_id)
                count += 1
            except GitHubError as exc:
                log.warning("redelivery_failed %s: %s", guid, exc)
        if count:
            log.info("redelivery_requested", extra={"count": count})
        return count
