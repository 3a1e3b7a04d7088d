"""What a plan's task is told about its plan (``bot.core.protocol.PlanContext``): the epic, the
plan's notes, and what each merged blocker landed (its pull request's summary and files), read
from GitHub by the bot and capped, so agents of one plan do not re-discover what others decided.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from bot.adapters.github import IssueInfo
from bot.core.model import IssueRef, Task, TaskState
from bot.core.plan import Plan, parse_task_marker
from bot.core.protocol import LandedWork, PlanContext
from bot.core.render_pull import PULL_MARKER
from bot.ports import TaskStore
from bot.store.plans import PlanRecord

SUMMARY_CHARS = 2_000
FILES_PER_BLOCKER = 50
BLOCKERS_SHOWN = 10
EPIC_BODY_CHARS = 20_000


class ContextGitHub(Protocol):
    async def issue(self, installation_id: int, ref: IssueRef) -> IssueInfo | None: ...

    async def pull_files(
        self, installation_id: int, repo: str, number: int, limit: int = 50
    ) -> tuple[str, list[str]]: ...


class ContextStore(TaskStore, Protocol):
    def get_plan(self, plan_id: str) -> PlanRecord | None: ...


def pull_summary(body: str, limit: int = SUMMARY_CHARS) -> str:
    """The summary part of a Stoneforge pull request's body (``bot.core.render_pull``): after
    its ``Closes #N`` line, before the attempts table; capped at ``limit`` characters."""
    text = body.split(PULL_MARKER, 1)[0]
    for end in ("### Attempts", "**Total:**"):
        text = text.split(end, 1)[0]
    lines = text.strip().splitlines()
    if lines and lines[0].startswith("Closes #"):
        lines = lines[1:]
    summary = "\n".join(lines).strip()
    return summary if len(summary) <= limit else summary[: limit - 1].rstrip() + "…"


async def landed(
    github: ContextGitHub, inst: int, blockers: Iterable[Task]
) -> tuple[LandedWork, ...]:
    """What each merged task in ``blockers`` landed (its pull request read from GitHub)."""

    async def one(task: Task) -> LandedWork:
        summary, files = "", list[str]()
        if task.pr_number is not None:
            body, files = await github.pull_files(
                inst, task.repo, task.pr_number, FILES_PER_BLOCKER
            )
            summary = pull_summary(body)
        return LandedWork(
            issue=task.number,
            title=task.title,
            pull_number=task.pr_number,
            summary=summary,
            files=tuple(files[:FILES_PER_BLOCKER]),
        )

    merged = [t for t in blockers if t.state == TaskState.MERGED][:BLOCKERS_SHOWN]
    return tuple(await asyncio.gather(*(one(t) for t in merged)))


async def plan_context(
    github: ContextGitHub, store: ContextStore, inst: int, task: Task, body: str = ""
) -> PlanContext | None:
    """The ``plan`` of an implement or revise job for ``task`` (None: no plan's task). A task
    claimed before approval recorded its plan is known by its issue ``body``'s marker."""
    plan_id = task.plan_id
    if plan_id is None:
        marker = parse_task_marker(body)
        plan_id = marker[0] if marker is not None else None
    if plan_id is None:
        return None
    plan = await asyncio.to_thread(store.get_plan, plan_id)
    if plan is None or plan.plan_json is None or plan.repo != task.repo:
        return None
    model = Plan.model_validate_json(plan.plan_json)
    epic = await github.issue(inst, IssueRef(plan.repo, plan.epic))
    found = await asyncio.gather(*(asyncio.to_thread(store.get_task, b) for b in task.blocked_by))
    return PlanContext(
        plan_id=plan.plan_id,
        epic=plan.epic,
        epic_title=epic.title if epic else f"#{plan.epic}",
        epic_body=(epic.body if epic else "")[:EPIC_BODY_CHARS],
        notes=model.notes,
        landed=await landed(github, inst, (t for t in found if t is not None)),
    )
