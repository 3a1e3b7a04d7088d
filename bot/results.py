"""What a job's result does to its task: a pull request, a handoff, a pause, or a person asked.

``apply`` is called once per finished job (the dispatcher has checked that the job is the
task's running attempt and revoked its token):

- ``rate_limited``: back to the queue until the provider's reset; the attempt is given back.
- ``handoff``: the note is posted on the issue; the task is queued for a fresh agent, or, after
  ``max_attempts``, handed to a person.
- ``completed`` with a pushed head: the pull request is opened, or the open one for the branch
  has its body rewritten (one pull request per task), and the steward is woken.
- anything else: the task fails with the reason, labeled for a person who is mentioned.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Mapping
from typing import Any

from bot import transcripts
from bot.adapters.github import GitHubError
from bot.core.model import Task, TaskState, budget_left
from bot.core.render import format_cost, format_utc
from bot.service import Bot, today

HANDOFF_MARKER = "<!-- stoneforge:handoff -->"


async def apply(bot: Bot, task: Task, result: Mapping[str, Any]) -> None:
    seconds = float(result.get("agent_seconds") or 0.0)
    usage = result.get("usage") if isinstance(result.get("usage"), Mapping) else {}
    cost = float(usage.get("cost_usd") or 0.0) if usage else 0.0
    if cost:
        await asyncio.to_thread(bot.store.add_cost, task.repo, today(time.time()), cost)
    totals: dict[str, Any] = {
        "agent_seconds": (task.agent_seconds or 0.0) + seconds,
        "cost_usd": (task.cost_usd or 0.0) + cost if (cost or task.cost_usd) else None,
    }
    outcome = str(result.get("outcome") or "failed")
    reason = str(result.get("reason") or outcome)
    detail = str(result.get("detail") or "")[:2000]
    if outcome == "rate_limited":
        await _rate_limited(bot, task, result, totals)
    elif outcome == "handoff":
        await _handoff(bot, task, result, reason, totals)
    elif outcome != "completed" or not result.get("head_sha"):
        await needs_human(bot, task, f"{reason}: {detail}".strip(": "), totals)
    else:
        await _completed(bot, task, result, totals)


async def _rate_limited(
    bot: Bot, task: Task, result: Mapping[str, Any], totals: Mapping[str, Any]
) -> None:
    now = time.time()
    retry_at = float(result.get("retry_at") or now + 900)
    agent = str(result.get("agent") or task.agent or bot.repos.config(task.repo).agent.name)
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


async def _handoff(
    bot: Bot, task: Task, result: Mapping[str, Any], reason: str, totals: Mapping[str, Any]
) -> None:
    note = str(result.get("note") or "").strip() or f"The agent stopped ({reason})."
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
    bot: Bot, task: Task, result: Mapping[str, Any], totals: Mapping[str, Any]
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
    number = await _open_or_update_pull(bot, task, str(result["branch"]), body)
    await bot.set_state(
        task,
        TaskState.IN_REVIEW,
        pr_number=number,
        head_sha=str(result["head_sha"]),
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
