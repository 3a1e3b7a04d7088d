"""The steward: merges agent pull requests in dependency order, never red, never out of order.

One pass per repository: read a fresh snapshot of every pull request in review, ask the pure
``bot.core.steward.plan_merges`` what to do, and do it. The pass runs when a pull request,
check or status event arrives and on a timer, so a lost webhook only delays a merge. Across
bot replicas one writer per repository holds the store's steward lock (an advisory lock on
PostgreSQL).

State machine per task (``docs/architecture.md``):
in_review -> (update branch -> checks)* -> merged.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections import defaultdict

from bot.adapters.github import GitHubError
from bot.core.model import IssueRef, Task, TaskState
from bot.core.steward import PullSnapshot, StewardAction, plan_merges
from bot.service import Bot

log = logging.getLogger(__name__)


class Steward:
    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self._locks: dict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._updated: dict[tuple[str, int], str] = {}  # (repo, pr) -> head sha we asked to update

    async def run_forever(self) -> None:
        while True:
            try:
                await asyncio.wait_for(
                    self.bot.steward_wake.wait(), self.bot.settings.steward_interval_s
                )
            except TimeoutError:
                pass
            self.bot.steward_wake.clear()
            try:
                await self.pass_all()
            except Exception:  # noqa: BLE001 - the steward must outlive any one failure
                log.exception("steward_pass_failed")

    async def pass_all(self) -> None:
        tasks = await asyncio.to_thread(self.bot.store.list_tasks, states=[TaskState.IN_REVIEW])
        for repo in sorted({t.repo for t in tasks}):
            await self.pass_repo(repo)

    async def pass_repo(self, repo: str) -> None:
        async with self._locks[repo]:
            info_base = "main"
            try:
                first = next(t for t in await self._in_review(repo))
                info_base = (
                    await self.bot.github.repo(first.installation_id or 0, repo)
                ).default_branch
            except (StopIteration, GitHubError):
                pass
            lock = self.bot.store.steward_lock(repo, info_base)
            held = await asyncio.to_thread(lock.__enter__)
            try:
                if held:
                    await self._pass(repo)
            finally:
                await asyncio.to_thread(lock.__exit__, None, None, None)

    async def _in_review(self, repo: str) -> list[Task]:
        tasks = await asyncio.to_thread(
            functools.partial(self.bot.store.list_tasks, repo=repo, states=[TaskState.IN_REVIEW])
        )
        return [t for t in tasks if t.pr_number and t.installation_id]

    async def _pass(self, repo: str) -> None:
        bot = self.bot
        config = bot.repos.config(repo)
        tasks = await asyncio.to_thread(bot.store.list_tasks)  # blockers may be in other repos
        pulls: dict[IssueRef, PullSnapshot] = {}
        for task in await self._in_review(repo):
            try:
                pull = await bot.github.pull(
                    task.installation_id or 0,
                    repo,
                    task.pr_number or 0,
                    tuple(config.merge.required_checks),
                )
            except GitHubError as exc:
                log.warning("pull_snapshot_failed %s: %s", task.ref, exc)
                continue
            pulls[task.ref] = pull
            if pull.head_sha != task.head_sha:  # e.g. after "update branch"
                await asyncio.to_thread(
                    functools.partial(bot.store.update_task, task.ref, head_sha=pull.head_sha)
                )
        for action in plan_merges(tasks, pulls, now=time.time()):
            await self._execute(action, pulls.get(action.task))

    async def _execute(self, action: StewardAction, pull: PullSnapshot | None) -> None:
        bot = self.bot
        task = await asyncio.to_thread(bot.store.get_task, action.task)
        if task is None or task.installation_id is None:
            return
        inst = task.installation_id
        config = bot.repos.config(task.repo)
        if action.kind == "merge" and action.pr and action.sha:
            bot.merging.add(task.ref)
            outcome = await bot.github.merge(
                inst,
                task.repo,
                action.pr,
                sha=action.sha,
                method=config.merge.method,
                title=f"{task.title} (#{action.pr})",
            )
            if outcome.merged:
                log.info("merged", extra={"repo": task.repo, "issue": task.number, "pr": action.pr})
                bot.merging.discard(task.ref)
                if bot.metrics:
                    bot.metrics.merges.inc(outcome="merged")
                await bot.set_state(
                    task, TaskState.MERGED, merged_at=time.time(), merge_sha=outcome.sha
                )
                if pull and config.merge.delete_branch:
                    await bot.github.delete_branch(inst, task.repo, pull.head_ref)
                bot.steward_wake.set()  # the base moved: the others need a fresh look
            else:
                if bot.metrics:
                    bot.metrics.merges.inc(outcome="refused")
                log.info("merge_refused %s: %s %s", task.ref, outcome.status, outcome.message)
        elif action.kind == "update_branch" and action.pr and action.sha:
            key = (task.repo, action.pr)
            if self._updated.get(key) == action.sha:
                return  # already asked for this head; waiting for the new commit
            bot.merging.add(task.ref)
            if await bot.github.update_branch(inst, task.repo, action.pr, action.sha):
                self._updated[key] = action.sha
                log.info("branch_updated %s", task.ref)
            await bot.refresh_views()
        elif action.kind == "redispatch":
            bot.merging.discard(task.ref)
            await bot.set_state(
                task, TaskState.QUEUED, worker=None, detail=f"restart: {action.reason}"
            )
        elif action.kind == "mark_merged":
            bot.merging.discard(task.ref)
            merge_sha = pull.merge_sha if pull else None
            await bot.set_state(task, TaskState.MERGED, merged_at=time.time(), merge_sha=merge_sha)
        elif action.kind == "fail":
            bot.merging.discard(task.ref)
            if bot.metrics:
                bot.metrics.merges.inc(outcome="failed")
            await bot.set_state(
                task, TaskState.FAILED, detail=f"pull request #{action.pr}: {action.reason}"
            )
