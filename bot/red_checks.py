"""Red required checks on agent pull requests, for the steward (``bot.steward``): the one
automatic re-run per head (``check_reruns`` in the store, written before GitHub is asked), the
flakes it reveals (a comment on the pull request and ``stoneforge_flaky_checks_total``), and the
fix rounds: the task back to its agent on the same branch with the red checks' output (a
fix_checks job; for a red merge group, the group's output)."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Mapping

from bot.adapters.github import GitHubError
from bot.core.lifecycle import ChecksFailed, Failed
from bot.core.model import IssueRef, Task, TaskState
from bot.core.steward import PullSnapshot, StewardAction, flaky_checks
from bot.metrics import BotMetrics
from bot.ports import PullPort, StewardStore
from bot.pull_cache import PullCache
from bot.signals import Signals
from bot.views import TaskViews

log = logging.getLogger(__name__)


class RedChecks:
    def __init__(
        self,
        github: PullPort,
        store: StewardStore,
        pulls: PullCache,
        views: TaskViews,
        signals: Signals,
        metrics: BotMetrics | None = None,
    ) -> None:
        self.github = github
        self.store = store
        self.pulls = pulls
        self.views = views
        self.signals = signals
        self.metrics = metrics

    async def failures(self, task: Task, sha: str, names: tuple[str, ...]) -> tuple[str, ...]:
        """The red checks' output on ``sha`` (empty when GitHub cannot be read)."""
        try:
            return await self.github.check_failures(
                task.installation_id or 0, task.repo, sha, names
            )
        except GitHubError as exc:
            log.warning("check_output_failed %s: %s", task.ref, exc)
            return ()

    async def fix(self, task: Task, action: StewardAction) -> None:
        """Back to the agent on the same branch and pull request, with the red checks' output
        (a fix_checks job); a fix round, not a failed attempt: the attempt is refunded. The
        round is counted on the task as it goes back, so a restart never gives one more."""
        why = action.why
        if not isinstance(why, ChecksFailed) or action.sha is None:
            return
        note = self.signals.queue.get(task.repo, why.pr)
        on = action.sha
        if note is not None and note.head_sha == action.sha and note.group_sha:
            on = note.group_sha  # a red merge group: its checks' output, not the head's
        failures = await self.failures(task, on, why.checks)
        why = dataclasses.replace(why, failures=failures or (action.reason,))
        log.info("fix_checks %s round=%s checks=%s", task.ref, why.round, ",".join(why.checks))
        self.views.merging.discard(task.ref)
        await self.views.transition(
            task,
            TaskState.QUEUED,
            why,
            worker=None,
            fix_rounds=why.round,
            attempt=max(0, task.attempt - 1),
        )

    async def rerun(self, task: Task, action: StewardAction) -> None:
        """Run a red required check again, once per head: recorded before GitHub is asked,
        so a restarted (or another) steward never asks twice. A check GitHub will not re-run
        fails the task as a red check always did."""
        if action.check is None or action.check_id is None or action.sha is None:
            return
        taken = await asyncio.to_thread(
            self.store.take_rerun, task.repo, action.sha, action.check, action.check_id, time.time()
        )
        if not taken:
            return  # asked already; the next pass reads the record
        inst = task.installation_id or 0
        log.info("check_rerun %s check=%s id=%s", task.ref, action.check, action.check_id)
        if await self.github.rerun_check(inst, task.repo, action.check_id):
            self.pulls.forget(task.repo, sha=action.sha)
            return
        why = f"required check {action.check!r} failed, and GitHub would not run it again"
        self.views.merging.discard(task.ref)
        if self.metrics:
            self.metrics.merges.inc(outcome="failed")
        await self.views.transition(task, TaskState.FAILED, Failed(why, action.pr))

    async def record_flakes(
        self,
        repo: str,
        in_review: Mapping[IssueRef, Task],
        pulls: Mapping[IssueRef, PullSnapshot],
        reruns: Mapping[tuple[str, str, str], int],
    ) -> None:
        """A re-run check now green on the same head was a flake: say so on the pull request
        and count it, once (the store's record is the once)."""
        for ref, pull in pulls.items():
            task = in_review.get(ref)
            if task is None:
                continue
            for name in flaky_checks(repo, pull, reruns):
                if not await asyncio.to_thread(self.store.take_flake, repo, pull.head_sha, name):
                    continue
                log.info("flaky_check %s check=%s sha=%s", ref, name, pull.head_sha)
                if self.metrics:
                    self.metrics.flaky_checks.inc()
                body = (
                    f"Check `{name}` failed once and passed on its re-run on "
                    f"{pull.head_sha[:12]}: recorded as flaky."
                )
                try:
                    await self.github.reply(
                        task.installation_id or 0, IssueRef(repo, pull.number), body
                    )
                except GitHubError as exc:
                    log.warning("flaky_comment_failed %s: %s", ref, exc)
