"""Stacked pull requests in the steward (``scheduling.dispatch: stacked``; the decisions are
``bot.core.stacking``'s): retargeting a pull request to the base it wants, and sending a stacked
task back when its blocker was rejected or its blocker's branch rewritten.

Whether a blocker's branch was rewritten is GitHub's answer to "is the head the task started on
still in the blocker's branch?" (a compare), asked once per (start head, blocker head): a
blocker's revise, fix or update round adds commits on top and keeps it; a rebase or a fresh
start rewrites it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from bot.adapters.github import GitHubError
from bot.core.model import IssueRef, Task, TaskState
from bot.core.stacking import to_compare, unstack
from bot.core.steward import StewardAction
from bot.ports import PullPort
from bot.pull_cache import PullCache
from bot.views import TaskViews

log = logging.getLogger(__name__)


class Stacks:
    def __init__(self, github: PullPort, pulls: PullCache, views: TaskViews) -> None:
        self.github = github
        self.pulls = pulls
        self.views = views
        self._contains: dict[tuple[str, str, str], bool] = {}  # (repo, start, head) -> still in

    async def send_back(self, repo: str, tasks: Sequence[Task]) -> bool:
        """Send back the stacked tasks in review of ``repo`` whose blocker was rejected or
        rewritten (``bot.core.stacking.unstack``); whether any went."""
        by_ref = {t.ref: t for t in tasks}
        rewritten: set[IssueRef] = set()
        for ref, start, head in to_compare(tasks):
            if ref.repo != repo:
                continue
            key = (repo, start, head)
            if key not in self._contains:
                inst = by_ref[ref].installation_id or 0
                try:
                    self._contains[key] = await self.github.contains(inst, repo, start, head)
                except GitHubError as exc:
                    log.warning("stack_compare_failed %s: %s", ref, exc)
                    continue
            if not self._contains[key]:
                rewritten.add(ref)
        went = False
        for ref, why in unstack(tasks, rewritten):
            task = by_ref[ref]
            if ref.repo != repo or task.state is not TaskState.IN_REVIEW:
                continue
            log.info("unstacked %s blocker=%s why=%s", ref, why.blocker, why.why)
            self.views.merging.discard(ref)
            await self.views.transition(
                task,
                TaskState.QUEUED,
                why,
                worker=None,
                stacked_on=None,
                stacked_sha=None,
                attempt=max(0, task.attempt - 1),
            )
            went = True
        return went

    async def retarget(self, task: Task, action: StewardAction) -> None:
        """Give the pull request the base the steward decided (``retarget``)."""
        if action.pr is None or action.base is None:
            return
        inst = task.installation_id or 0
        log.info("retarget %s pr=%s base=%s", task.ref, action.pr, action.base)
        try:
            if not await self.github.retarget_pull(inst, task.repo, action.pr, action.base):
                log.warning("retarget_refused %s base=%s", task.ref, action.base)
        except GitHubError as exc:
            log.warning("retarget_failed %s: %s", task.ref, exc)
        self.pulls.forget(task.repo, pull=action.pr)
