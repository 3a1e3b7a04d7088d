"""What a job's result does to its task: a pull request, a handoff, a pause, or a person asked.

``Results.apply`` is called once per finished job with its typed ``JobResult`` (the dispatcher has
checked that the job is the task's running job, that the caller claimed it, and that the result
names the task's branch, and has revoked its token). One case per outcome:

- ``rate_limited``: back to the queue until the provider's reset; the attempt is given back. A
  resolve_conflicts job rate limited, or stopped by its runner's shutdown (a handoff), is
  queued as the same resolution (``Resolving``).
- ``handoff``: the note is posted on the issue; the task is queued for a fresh agent, or, after
  ``max_attempts``, handed to a person.
- ``completed`` (always with a pushed head): the task goes to review with its head at once,
  and then, off the runner's path, the pull request is opened, or the open one for the branch
  has its body rewritten (one pull request per task), and the steward is woken. Opening a pull
  request creates content, which GitHub limits to about 80 a minute per installation
  (``bot/adapters/github/pacing.py`` waits its turn): a runner must not wait on that, nor a
  task be dispatched again because its lease ran out meanwhile. A task in review without a
  pull request (the bot stopped before opening it, or GitHub refused) gets it from
  ``open_pending``, which the job side runs periodically.
- ``failed``: the task fails with the reason, labeled for a person who is mentioned; but a rebase
  job's ``rebase_conflict`` (or a resolve job's ``resolve_failed``) queues a resolve_conflicts
  job (``Resolving``), or after two failed resolutions sends the task back to an agent on a
  fresh base (``Conflicted``), and after two more to a person with the files listed;
  and its ``branch_moved`` is said on the pull request, the task waiting in review
  (``BranchHeld``: the steward never rewrites that head).

A review job's result (the task's reason is ``Reviewing``) is handled apart: a verdict is posted
as the App's pull request review on the reviewed head (line comments GitHub cannot place go in
the body), and the task goes back to review, where the steward reads it; a rate limit or a
runner's shutdown queues the same review again; anything else means no review was given: said on
the pull request, and the task goes back to review too (``review.required`` then decides whether
it may merge without: ``bot.core.agent_review``).

Every state change goes through the lifecycle with its typed reason (``RateLimited``,
``HandedOff``, ``Failed``; none for a completed job): the task's ``detail`` is only that
reason in words.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping
from typing import Any, assert_never

from bot import transcripts
from bot.adapters.github import GitHubError
from bot.background import Background
from bot.core.lifecycle import (
    BranchHeld,
    Conflicted,
    Failed,
    HandedOff,
    RateLimited,
    Rebasing,
    Resolving,
    Reviewing,
)
from bot.core.model import IssueRef, Task, TaskState, budget_left
from bot.core.protocol import (
    CompletedResult,
    FailedResult,
    FailureReason,
    HandoffReason,
    HandoffResult,
    JobResult,
    PlannedResult,
    RateLimitedResult,
    ReviewedResult,
)
from bot.core.render_text import format_cost
from bot.ports import Clock, Configs, ResultPort, ResultStore, Transitions
from bot.review_results import ReviewResults
from bot.signals import Signals
from bot.views import today

HANDOFF_MARKER = "<!-- stoneforge:handoff -->"
DETAIL_LIMIT = 2000  # characters of a failure's detail kept with the task
RESOLVE_ROUNDS = 2  # failed resolutions before a fresh agent run (and twice that: a person)


def conflict_files(detail: str | None) -> tuple[str, ...]:
    """The files a ``rebase_conflict`` or ``resolve_failed`` result names: the lines of its
    detail's first paragraph, when each is one path (a detail in words names none)."""
    lines = (detail or "").strip().split("\n\n", 1)[0].splitlines()
    if not lines or any(not line or line != line.strip() or " " in line for line in lines):
        return ()
    return tuple(lines[:100])


class Results:
    """What finished jobs do to their tasks (one ``apply`` per result)."""

    def __init__(
        self,
        github: ResultPort,
        store: ResultStore,
        repos: Configs,
        views: Transitions,
        signals: Signals,
        *,
        public_url: str,
        clock: Clock = time.time,
    ) -> None:
        self.github = github
        self.store = store
        self.repos = repos
        self.views = views
        self.signals = signals
        self.public_url = public_url
        self.clock = clock
        #: pull requests being opened in the background, by task
        self._publishing: dict[IssueRef, asyncio.Task[None]] = {}
        self._work = Background("pull_request")
        #: what a review job's result does (``bot.review_results``)
        self.reviews = ReviewResults(github, repos, views, signals)

    async def apply(self, task: Task, result: JobResult) -> None:
        cost = result.usage.cost_usd
        if cost:
            await asyncio.to_thread(self.store.add_cost, task.repo, today(self.clock()), cost)
        totals: dict[str, Any] = {
            "agent_seconds": (task.agent_seconds or 0.0) + result.agent_seconds,
            "cost_usd": (task.cost_usd or 0.0) + (cost or 0.0) if (cost or task.cost_usd) else None,
        }
        if isinstance(task.reason, Reviewing) and not isinstance(
            result, RateLimitedResult | HandoffResult
        ):
            await self.reviews.done(task, task.reason, result, totals)
            return
        match result:
            case RateLimitedResult():
                await self._rate_limited(task, result, totals)
            case HandoffResult() if isinstance(task.reason, Resolving | Reviewing):  # stopped
                await self.views.transition(  # nothing was pushed: the same resolution again
                    task, TaskState.QUEUED, task.reason, worker=None,
                    attempt=max(0, task.attempt - 1), **totals,
                )  # fmt: skip
            case HandoffResult():
                await self._handoff(task, result, totals)
            case FailedResult(reason=FailureReason.REBASE_CONFLICT | FailureReason.RESOLVE_FAILED):
                await self._rebase_conflict(task, result, totals)
            case FailedResult(reason=FailureReason.BRANCH_MOVED):
                await self._branch_held(task, result, totals)
            case FailedResult():
                detail = (result.detail or "")[:DETAIL_LIMIT]
                why = f"{result.reason.value}: {detail}".strip(": ")
                await self.needs_human(task, why, totals)
            case CompletedResult():
                await self._completed(task, result, totals)
            case PlannedResult() | ReviewedResult():  # a plan's goes to the director
                why = f"the runner answered a task's job with a {result.outcome} result"
                await self.needs_human(task, why, totals)
            case _:
                assert_never(result)

    async def _rate_limited(
        self, task: Task, result: RateLimitedResult, totals: Mapping[str, Any]
    ) -> None:
        now = self.clock()
        retry_at = result.retry_at or now + 900
        agent = result.agent
        limits = {a: until for a, until in task.rate_limits if until > now} | {agent: retry_at}
        # A resolution waits for its agent as a resolution (the rate limit holds it back).
        resolving = task.reason if isinstance(task.reason, Resolving | Reviewing) else None
        await self.views.transition(
            task,
            TaskState.QUEUED,
            resolving or RateLimited(agent, retry_at),
            worker=None,
            rate_limits=tuple(sorted(limits.items())),  # another agent may take it meanwhile
            attempt=max(0, task.attempt - 1),  # not the agent's fault: the attempt is refunded
            **totals,
        )

    async def _handoff(self, task: Task, result: HandoffResult, totals: Mapping[str, Any]) -> None:
        reason = result.reason.value
        note = result.note.strip() or f"The agent stopped ({reason})."
        await self.github.upsert_comment(
            task.installation_id or 0,
            task.ref,
            f"<!-- stoneforge:handoff-{task.attempt} -->",
            f"**Handoff after attempt {task.attempt}** ({reason})\n\n{HANDOFF_MARKER}\n{note}",
        )
        config = self.repos.config(task.repo)
        if result.reason is HandoffReason.STALLED:
            # The runner nudged the silent agent once already; a person looks now.
            branch = f" (its work so far is on `{result.branch}`)" if result.branch else ""
            why = f"the agent went silent past the stall timeout after a nudge{branch}"
            await self.needs_human(task, why, totals)
            return
        per_task = config.budget.per_task_usd
        if budget_left(per_task, totals["cost_usd"], task.cost_at_restart_usd) == 0.0:
            since = (totals["cost_usd"] or 0.0) - (task.cost_at_restart_usd or 0.0)
            spent = f"{format_cost(since)} of {format_cost(per_task or 0.0)}"
            await self.needs_human(task, f"the task's budget is spent ({spent})", totals)
            return
        if task.attempt < config.max_attempts:
            await self.views.transition(
                task, TaskState.QUEUED, HandedOff(reason), worker=None, **totals
            )
            return
        await self.needs_human(
            task, f"{config.max_attempts} attempts used; last one ended with {reason}", totals
        )

    async def _rebase_conflict(
        self, task: Task, result: FailedResult, totals: Mapping[str, Any]
    ) -> None:
        """A rebase met conflicts, or an agent did not resolve them (the rebase or resolve job's
        attempt is given back either way). The files go to a resolve_conflicts job
        (``Resolving``) while fewer than two resolutions failed; after two, the task goes back to
        an agent on a fresh base (``Conflicted``); after two more (that fresh run's pull
        request conflicted too), to a person, with the files listed. A conflict whose files
        are not known (the tests failed after a clean rebase) goes to the fresh agent run."""
        prior = task.reason if isinstance(task.reason, Rebasing | Resolving) else None
        pr = prior.pr if prior else task.pr_number or 0
        if prior is not None:
            base = prior.base
        else:
            base = (await self.github.repo(task.installation_id or 0, task.repo)).default_branch
        failed_now = result.reason is FailureReason.RESOLVE_FAILED
        failures = task.resolve_failures + failed_now
        files = conflict_files(result.detail)
        if failed_now and isinstance(prior, Resolving):
            files = files or prior.files
        refund = {"attempt": max(0, task.attempt - 1), "resolve_failures": failures}
        if failures >= 2 * RESOLVE_ROUNDS:
            listed = ", ".join(files) or "unknown files"
            why = f"the conflicts with {base} were not resolved ({failures} tries): {listed}"
            await self.needs_human(task, why, {**totals, "resolve_failures": 0})
            return
        head = prior.head if prior else task.head_sha
        if (failed_now and failures == RESOLVE_ROUNDS) or not files or not head:
            reason: Conflicted | Resolving = Conflicted(pr, base)
        else:
            reason = Resolving(pr, base, head, files, failures % RESOLVE_ROUNDS + 1)
        await self.views.transition(task, TaskState.QUEUED, reason, worker=None, **refund, **totals)

    async def _branch_held(
        self, task: Task, result: FailedResult, totals: Mapping[str, Any]
    ) -> None:
        """A rebase job would not rewrite the branch (a commit the App did not make, or it
        moved): say so on the pull request; the task waits in review for its people."""
        rebasing = task.reason if isinstance(task.reason, Rebasing | Resolving) else None
        pr = rebasing.pr if rebasing else task.pr_number
        head = rebasing.head if rebasing else task.head_sha or ""
        why = (result.detail or "its branch moved").strip()[:DETAIL_LIMIT]
        await self.views.transition(
            task, TaskState.IN_REVIEW, BranchHeld(pr or 0, head, why.splitlines()[0]), **totals
        )
        if pr and task.installation_id:
            await self.github.upsert_comment(
                task.installation_id,
                IssueRef(task.repo, pr),
                "<!-- stoneforge:branch-held -->",
                f"This pull request conflicts with its base, and Stoneforge did not rebase it: "
                f"{why}\n\nStoneforge rewrites only branches whose every commit it made. "
                "Resolve the conflicts on the branch; the steward goes on from the new head.",
            )
        self.signals.steward_wake.set()

    async def _completed(
        self, task: Task, result: CompletedResult, totals: Mapping[str, Any]
    ) -> None:
        config = self.repos.config(task.repo)
        # Every run of this task so far (from its transcripts), this one, and the totals.
        body = await asyncio.to_thread(
            functools.partial(
                transcripts.pull_body,
                self.store,
                self.public_url,
                task,
                result,
                agent=task.agent or config.agent.name,
                total_seconds=totals["agent_seconds"],
                total_cost_usd=totals["cost_usd"],
            )
        )
        moved = await self.views.transition(
            task, TaskState.IN_REVIEW, None, head_sha=result.head_sha, **totals
        )
        self._publish_soon(moved, result.branch, body)

    def _publish_soon(self, task: Task, branch: str, body: str) -> None:
        """Open (or rewrite) ``task``'s pull request in the background, once at a time (a
        refusal is logged; ``open_pending`` tries again)."""
        if task.ref in self._publishing:
            return
        job = self._work.spawn(self._publish(task, branch, body))
        self._publishing[task.ref] = job
        job.add_done_callback(lambda _: self._publishing.pop(task.ref, None))

    async def _publish(self, task: Task, branch: str, body: str) -> None:
        number = await self._open_or_update_pull(task, branch, body)
        current = await asyncio.to_thread(self.store.get_task, task.ref)
        if current is None or current.state != TaskState.IN_REVIEW:
            return  # it moved on meanwhile (restarted, cancelled): the steward sees its PR
        if current.pr_number != number:
            await asyncio.to_thread(
                functools.partial(self.store.update_task, task.ref, pr_number=number)
            )
            await self.views.refresh_views()
        self.signals.steward_wake.set()

    async def open_pending(self) -> int:
        """Open the pull request of each task in review that has none (the bot stopped, or
        GitHub refused, before it was opened); how many it started."""
        tasks = await asyncio.to_thread(self.store.list_tasks, states=(TaskState.IN_REVIEW,))
        started = 0
        for task in tasks:
            if task.pr_number is not None or not task.branch or not task.head_sha:
                continue
            if task.ref in self._publishing:
                continue
            result = CompletedResult(head_sha=task.head_sha, branch=task.branch)
            body = await asyncio.to_thread(
                functools.partial(
                    transcripts.pull_body,
                    self.store,
                    self.public_url,
                    task,
                    result,
                    agent=task.agent or self.repos.config(task.repo).agent.name,
                    total_seconds=task.agent_seconds or 0.0,
                    total_cost_usd=task.cost_usd,
                )
            )
            self._publish_soon(task, task.branch, body)
            started += 1
        return started

    async def settled(self) -> None:
        """Wait until every pull request being opened is (tests, shutdown)."""
        while self._publishing:
            await asyncio.gather(*self._publishing.values(), return_exceptions=True)

    async def _open_or_update_pull(self, task: Task, head: str, body: str) -> int:
        """A later attempt on the same branch rewrites the open pull request's body: one PR."""
        github = self.github
        inst = task.installation_id or 0
        existing = await github.pull_for_head(inst, task.repo, head)
        if existing is None:
            repo = await github.repo(inst, task.repo)
            try:
                return await github.open_pull(
                    inst,
                    task.repo,
                    head=head,
                    base=repo.default_branch,
                    title=task.title,
                    body=body,
                )
            except GitHubError as exc:  # 422 "already exists": another replica just opened it
                existing = await github.pull_for_head(inst, task.repo, head)
                if exc.status != 422 or existing is None:
                    raise
        number, current = existing
        if current != body:
            await github.update_pull(inst, task.repo, number, body=body)
        return number

    async def needs_human(self, task: Task, why: str, totals: Mapping[str, Any]) -> None:
        """Give up on a task: label it for a person and mention who handed it to us."""
        await self.views.transition(task, TaskState.FAILED, Failed(why), **totals)
        if task.labeled_by and task.installation_id:
            await self.github.upsert_comment(
                task.installation_id,
                task.ref,
                f"<!-- stoneforge:needs-human-{task.attempt} -->",
                f"@{task.labeled_by} Stoneforge could not finish this task: {why}\n\n"
                f"Re-add `{self.repos.config(task.repo).trigger_label}` to try again.",
            )
