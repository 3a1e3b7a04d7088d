"""Nothing waits silently (``bot.core.liveness``): for the steward (``bot.steward``), a pull
request waiting for the same thing past ``steward.wait_timeout_minutes`` is told once what it
waits for. Each task's wait is kept in the store (``steward_waits``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

from bot.adapters.github import GitHubError
from bot.core.liveness import Waiting, follow_wait, wait_notice
from bot.core.model import IssueRef, Task
from bot.core.steward import StewardAction
from bot.ports import PullPort, StewardStore
from bot.repos import Repos

log = logging.getLogger(__name__)


class WaitNotices:
    def __init__(self, github: PullPort, store: StewardStore, repos: Repos) -> None:
        self.github = github
        self.store = store
        self.repos = repos

    async def tell(
        self,
        repo: str,
        in_review: Mapping[IssueRef, Task],
        actions: tuple[StewardAction, ...],
        now: float,
    ) -> None:
        """Nothing waits silently: a pull request waiting for the same thing past
        ``steward.wait_timeout_minutes`` gets one comment saying what for
        (``bot.core.liveness``). Each task's wait is kept in the store, and written as told
        before the comment is posted, so a restart or another replica never tells it twice."""
        timeout_s = self.repos.config(repo).steward.wait_timeout_minutes * 60
        held = await asyncio.to_thread(self.store.waits, repo)
        kept: dict[int, Waiting] = {}
        tell: list[tuple[Task, StewardAction, Waiting]] = []
        for action in actions:
            task = in_review.get(action.task)
            if task is None:
                continue
            waiting, now_tell = follow_wait(
                action, held.get(task.number), now=now, timeout_s=timeout_s
            )
            if waiting is not None:
                kept[task.number] = waiting
                if now_tell and task.pr_number:
                    tell.append((task, action, waiting))
        if kept != held:
            await asyncio.to_thread(self.store.put_waits, repo, kept)
        for task, action, waiting in tell:
            body = wait_notice(
                action, now - waiting.since, key=waiting.key, labeler=task.labeled_by
            )
            log.info("wait_told %s wait=%s", task.ref, waiting.key)
            try:
                await self.github.reply(
                    task.installation_id or 0, IssueRef(repo, task.pr_number or 0), body
                )
            except GitHubError as exc:
                log.warning("wait_comment_failed %s: %s", task.ref, exc)
