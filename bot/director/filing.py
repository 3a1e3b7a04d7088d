"""Filing a validated plan on GitHub: one issue per task, each a sub-issue of the epic, with
native "blocked by" links, idempotently.

Rules, in order:

1. Each task has a row in ``plan_tasks`` (made once, by index); a row with an issue number is
   filed, a row marked ``linked`` has all its links on GitHub, a ``closed`` row (a replan
   closed it) is left alone.
2. An issue that was created but whose number never reached the store (the bot was killed in
   between) is found by the hidden marker in its body (``bot.core.plan.task_marker``): the
   repository's issues with the draft label are listed once, and a marker of this plan claims
   the row. Nothing is created twice.
3. The missing issues are created blockers first (by depth, then index), so each body can name
   its blockers' numbers ("Blocked by #N, #M").
4. Then each unlinked task is attached under the epic (unless it already is) and gets the
   "blocked by" links it lacks; links are read first for issues made before this call, so a
   link is never added twice. Only then is the row marked ``linked``.

Every write is a content-creating request; the GitHub adapter paces them under GitHub's
secondary rate limits (``bot/adapters/github/pacing.py``), so this module just writes in order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from bot.adapters.github.records import IssueInfo
from bot.core.model import IssueRef
from bot.core.plan import Plan, levels, parse_task_marker
from bot.core.plan_issue import render_task_body
from bot.ports import FilingPort
from bot.store.records import PlanTaskRecord

log = logging.getLogger(__name__)

DRAFT_LABEL = "stoneforge:draft"
DRAFT_LABEL_STYLE = ("ededed", "Stoneforge: planned, waiting for a maintainer's approval")


class PlanTaskStore(Protocol):
    """The ``plan_tasks`` rows the filer reads and writes (``bot.store.plans.PlanTaskRows``)."""

    def record_plan_tasks(self, plan_id: str, titles: Sequence[str]) -> None: ...

    def plan_task_rows(self, plan_id: str) -> list[PlanTaskRecord]: ...

    def set_plan_task_issue(self, plan_id: str, idx: int, number: int, issue_id: int) -> None: ...

    def set_plan_task_linked(self, plan_id: str, idx: int) -> None: ...


class PlanFiler:
    """Files plans through a :class:`~bot.ports.FilingPort`, recording progress in the store."""

    def __init__(
        self,
        github: FilingPort,
        store: PlanTaskStore,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.github = github
        self.store = store
        self.clock = clock

    async def file(
        self,
        installation_id: int,
        epic: IssueRef,
        plan_id: str,
        plan: Plan,
        *,
        draft_label: str = DRAFT_LABEL,
    ) -> list[IssueInfo]:
        """Files each task of ``plan`` as an issue labeled ``draft_label`` (marker, "Blocked
        by" line, acceptance checklist), a sub-issue of ``epic`` with native "blocked by"
        links. Returns the filed issues in plan order. Idempotent (see the module's rules): a
        second call, or a call after a crash half-way, files only what is missing."""
        started = self.clock()
        titles = [task.title for task in plan.tasks]
        await asyncio.to_thread(self.store.record_plan_tasks, plan_id, titles)
        rows = {r.idx: r for r in await asyncio.to_thread(self.store.plan_task_rows, plan_id)}
        listed = await self.github.labeled_issues(installation_id, epic.repo, draft_label)
        issues: dict[int, IssueInfo] = {}
        for info in listed:
            found = parse_task_marker(info.body)
            if found is None or found[0] != plan_id or found[1] not in rows:
                continue
            row = rows[found[1]]
            if row.number is None:  # rule 2: created, never recorded
                await asyncio.to_thread(
                    self.store.set_plan_task_issue, plan_id, row.idx, info.number, info.id
                )
                issues[row.idx] = info
            elif row.number == info.number:
                issues[row.idx] = info
        for idx, row in rows.items():
            if idx not in issues and row.number is not None and row.issue_id is not None:
                issues[idx] = _recorded(epic.repo, row)
        order = _blockers_first(plan)
        created: set[int] = set()
        for idx in order:  # rule 3
            if idx in issues or rows[idx].closed:
                continue
            task = plan.tasks[idx]
            body = render_task_body(
                plan_id, idx, task, [issues[b].number for b in task.blockers], epic.number
            )
            info = await self.github.create_issue(
                installation_id, epic.repo, title=task.title, body=body, labels=[draft_label]
            )
            await asyncio.to_thread(
                self.store.set_plan_task_issue, plan_id, idx, info.number, info.id
            )
            issues[idx], created = info, created | {idx}
        await self._link(installation_id, epic, plan_id, plan, rows, issues, order, created)
        log.info(
            "plan_filed",
            extra={
                "repo": epic.repo,
                "issue": epic.number,
                "plan_id": plan_id,
                "filed": len(created),
                "seconds": round(self.clock() - started, 3),
            },
        )
        return [issues[i] for i in range(len(plan.tasks)) if i in issues]

    async def _link(
        self,
        installation_id: int,
        epic: IssueRef,
        plan_id: str,
        plan: Plan,
        rows: dict[int, PlanTaskRecord],
        issues: dict[int, IssueInfo],
        order: list[int],
        created: set[int],
    ) -> None:
        """Rule 4: sub-issue and "blocked by" links each unlinked task lacks."""
        todo = [i for i in order if not rows[i].linked and not rows[i].closed and i in issues]
        if not todo:
            return
        children = {c.id for c in await self.github.sub_issues(installation_id, epic)}
        for idx in todo:
            info = issues[idx]
            if info.id not in children:
                await self.github.add_sub_issue(installation_id, epic, info.id)
            have: set[IssueRef] = set()
            if idx not in created:  # an issue made in this call has no links yet
                have = set(await self.github.blocked_by(installation_id, info.ref))
            for blocker in dict.fromkeys(plan.tasks[idx].blockers):
                if issues[blocker].ref not in have:
                    await self.github.add_blocked_by(installation_id, info.ref, issues[blocker].id)
            await asyncio.to_thread(self.store.set_plan_task_linked, plan_id, idx)


def _blockers_first(plan: Plan) -> list[int]:
    depth = levels(plan)
    return sorted(range(len(plan.tasks)), key=lambda i: (depth[i], i))


def _recorded(repo: str, row: PlanTaskRecord) -> IssueInfo:
    """A filed task the draft listing did not show (approved, or closed by a replan): what the
    store knows of it."""
    assert row.number is not None
    assert row.issue_id is not None
    return IssueInfo(
        repo=repo,
        number=row.number,
        id=row.issue_id,
        title=row.title,
        body="",
        state="closed" if row.closed else "open",
        state_reason="not_planned" if row.closed else None,
        labels=(),
        is_pull=False,
        author="",
    )
