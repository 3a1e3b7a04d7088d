"""What a job's result does to its task: a pull request, a handoff, a pause, or a person asked.

``apply`` is called once per finished job with its typed ``JobResult`` (the dispatcher has
checked that the job is the task's running job, that the caller claimed it, and that the result
names the task's branch, and has revoked its token). One case per outcome:

- ``rate_limited``: back to the queue until the provider's reset; the attempt is given back.
- ``handoff``: the note is posted on the issue; the task is queued for a fresh agent, or, after
  ``max_attempts``, handed to a person.
- ``completed`` (always with a pushed head): the pull request is opened, or the open one for
  the branch has its body rewritten (one pull request per task), and the steward is woken.
- ``failed``: the task fails with the reason, labeled for a person who is mentioned.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping
from typing import Any, assert_never

from bot import transcripts
from bot.adapters.github import GitHubError
from bot.core.model import Task, TaskState, budget_left
from bot.core.protocol import (
    CompletedResult,
    FailedResult,
    HandoffResult,
    JobResult,
    RateLimitedResult,
)
from bot.core.render import format_cost, format_utc
from bot.service import Bot, today

HANDOFF_MARKER = "<!-- stoneforge:handoff -->"
DETAIL_LIMIT = 2000  # characters of a failure's detail kept with the task


async def apply(bot: Bot, task: Task, result: JobResult) -> None:
    cost = result.usage.cost_usd
    if cost:
        await asyncio.to_thread(bot.store.add_cost, task.repo, today(time.time()), cost)
    totals: dict[str, Any] = {
        "agent_seconds": (task.agent_seconds or 0.0) + result.agent_seconds,
        "cost_usd": (task.cost_usd or 0.0) + (cost or 0.0) if (cost or task.cost_usd) else None,
    }
    match result:
        case RateLimitedResult():
            await _rate_limited(bot, task, result, totals)
        case HandoffResult():
            await _handoff(bot, task, result, totals)
        case FailedResult():
            detail = (result.detail or "")[:DETAIL_LIMIT]
            await needs_human(bot, task, f"{result.reason.value}: {detail}".strip(": "), totals)
        case CompletedResult():
            await _completed(bot, task, result, totals)
        case _:
            assert_never(result)


async def _rate_limited(
    bot: Bot, task: Task, result: RateLimitedResult, totals: Mapping[str, Any]
) -> None:
    now = time.time()
    retry_at = result.retry_at or now + 900
    agent = result.agent
    limits = {a: until for a, until in task.rate_limits if until > now} | {agent: retry_at}
    await bot.set_state(
        task,
        TaskState.QUEUED,
        worker=None,
        rate_limits=tuple(sorted(limits.items())),  # another agent may take it meanwhile
        detail=f"{agent} is rate limited until {format_utc(retry_at)}",
        attempt=max(0, task.attempt - 1),  # not the agent's fault: the attempt is refunded
        **totals,
    )


async def _handoff(bot: Bot, task: Task, result: HandoffResult, totals: Mapping[str, Any]) -> None:
    reason = result.reason.value
    note = result.note.strip() or f"The agent stopped ({reason})."
    await bot.github.upsert_comment(
        task.installation_id or 0,
        task.ref,
        f"<!-- stoneforge:handoff-{task.attempt} -->",
        f"**Handoff after attempt {task.attempt}** ({reason})\n\n{HANDOFF_MARKER}\n{note}",
    )
    config = bot.repos.config(task.repo)
    per_task = config.budget.per_task_usd
    if budget_left(per_task, totals["cost_usd"], task.cost_at_restart_usd) == 0.0:
        since = (totals["cost_usd"] or 0.0) - (task.cost_at_restart_usd or 0.0)
        spent = f"{format_cost(since)} of {format_cost(per_task or 0.0)}"
        await needs_human(bot, task, f"the task's budget is spent ({spent})", totals)
        return
    if task.attempt < config.max_attempts:
        await bot.set_state(
            task, TaskState.QUEUED, worker=None, detail=f"handoff: {reason}", **totals
        )
        return
    await needs_human(
        bot, task, f"{config.max_attempts} attempts used; last one ended with {reason}", totals
    )


async def _completed(
    bot: Bot, task: Task, result: CompletedResult, totals: Mapping[str, Any]
) -> None:
    config = bot.repos.config(task.repo)
    # Every run of this task so far (from its transcripts), this one, and the totals.
    body = await asyncio.to_thread(
        functools.partial(
            transcripts.pull_body,
            bot.store,
            bot.settings.public_url,
            task,
            result,
            agent=task.agent or config.agent.name,
            total_seconds=totals["agent_seconds"],
            total_cost_usd=totals["cost_usd"],
        )
    )
    number = await _open_or_update_pull(bot, task, result.branch, body)
    await bot.set_state(
        task,
        TaskState.IN_REVIEW,
        pr_number=number,
        head_sha=result.head_sha,
        detail=None,
        **totals,
    )
    bot.steward_wake.set()


async def _open_or_update_pull(bot: Bot, task: Task, head: str, body: str) -> int:
    """A later attempt on the same branch rewrites the open pull request's body: one PR."""
    inst = task.installation_id or 0
    existing = await bot.github.pull_for_head(inst, task.repo, head)
    if existing is None:
        repo = await bot.github.repo(inst, task.repo)
        try:
            return await bot.github.open_pull(
                inst, task.repo, head=head, base=repo.default_branch, title=task.title, body=body
            )
        except GitHubError as exc:  # 422 "already exists": another replica just opened it
            existing = await bot.github.pull_for_head(inst, task.repo, head)
            if exc.status != 422 or existing is None:
                raise
    number, current = existing
    if current != body:
        await bot.github.update_pull(inst, task.repo, number, body=body)
    return number


async def needs_human(bot: Bot, task: Task, why: str, totals: Mapping[str, Any]) -> None:
    """Give up on a task: label it for a person and mention who handed it to us."""
    await bot.set_state(task, TaskState.FAILED, detail=why, **totals)
    if task.labeled_by and task.installation_id:
        await bot.github.upsert_comment(
            task.installation_id,
            task.ref,
            f"<!-- stoneforge:needs-human-{task.attempt} -->",
            f"@{task.labeled_by} Stoneforge could not finish this task: {why}\n\n"
            f"Re-add `{bot.repos.config(task.repo).trigger_label}` to try again.",
        )
