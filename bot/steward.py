"""The steward: merges agent pull requests in dependency order, never red, never out of order.

One pass per repository: read a fresh snapshot of every pull request in review, ask the pure
``bot.core.steward.plan_merges`` what to do, and do it. The pass runs when a pull request,
check or status event arrives and on a timer, so a lost webhook only delays a merge.
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
from bot.core.model import IssueRef, TaskState
from bot.core.steward import PullSnapshot, StewardAction, plan_merges
from bot.service import STATUS_MARKER, Bot

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
            tasks = await asyncio.to_thread(
                self.bot.store.list_tasks
            )  # blockers may live in other repositories
            pulls: dict[IssueRef, PullSnapshot] = {}
            for task in tasks:
                if (
                    task.repo == repo
                    and task.state == TaskState.IN_REVIEW
                    and task.pr_number
                    and task.installation_id
                ):
                    try:
                        pulls[task.ref] = await self.bot.github.pull(
                            task.installation_id, repo, task.pr_number
                        )
                    except GitHubError as exc:
                        log.warning("pull_snapshot_failed %s: %s", task.ref, exc)
            for task in tasks:
                pull = pulls.get(task.ref)
                if pull and pull.head_sha != task.head_sha:  # e.g. after "update branch"
                    await asyncio.to_thread(
                        functools.partial(
                            self.bot.store.update_task, task.ref, head_sha=pull.head_sha
                        )
                    )
            actions = plan_merges(tasks, pulls, now=time.time())
            for action in actions:
                await self._execute(action, pulls.get(action.task))

    async def _execute(self, action: StewardAction, pull: PullSnapshot | None) -> None:
        bot = self.bot
        task = await asyncio.to_thread(bot.store.get_task, action.task)
        if task is None or task.installation_id is None:
            return
        inst = task.installation_id
        if action.kind == "merge" and action.pr and action.sha:
            outcome = await bot.github.merge(
                inst,
                task.repo,
                action.pr,
                sha=action.sha,
                method=bot.settings.merge_method,
                title=f"{task.title} (#{action.pr})",
            )
            if outcome.merged:
                log.info("merged", extra={"repo": task.repo, "issue": task.number, "pr": action.pr})
                await bot.set_state(
                    task, TaskState.MERGED, merged_at=time.time(), merge_sha=outcome.sha
                )
                if pull:
                    await bot.github.delete_branch(inst, task.repo, pull.head_ref)
                bot.steward_wake.set()  # the base moved: the others need a fresh look
            else:
                log.info("merge_refused %s: %s %s", task.ref, outcome.status, outcome.message)
        elif action.kind == "update_branch" and action.pr and action.sha:
            key = (task.repo, action.pr)
            if self._updated.get(key) == action.sha:
                return  # already asked for this head; waiting for the new commit
            if await bot.github.update_branch(inst, task.repo, action.pr, action.sha):
                self._updated[key] = action.sha
                log.info("branch_updated %s", task.ref)
        elif action.kind == "redispatch":
            await bot.set_state(
                task, TaskState.QUEUED, worker=None, detail=f"restart: {action.reason}"
            )
        elif action.kind == "mark_merged":
            merge_sha = pull.merge_sha if pull else None
            await bot.set_state(task, TaskState.MERGED, merged_at=time.time(), merge_sha=merge_sha)
        elif action.kind == "fail":
            await bot.set_state(task, TaskState.FAILED, detail=action.reason)
            await bot.github.upsert_comment(
                inst,
                task.ref,
                STATUS_MARKER,
                f"**Stoneforge:** pull request #{action.pr} cannot be merged: {action.reason}.\n\n"
                "A human needs to look at it.",
            )
