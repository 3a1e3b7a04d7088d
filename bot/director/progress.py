"""A plan as its tasks move: the plan comment redrawn in place, the plan's budget, completion.

``PlanProgress.task_moved`` is the observer ``bot.views.TaskViews`` calls after every state
change; a task of a plan marks its plan for a redraw, and redraws are debounced per plan (a
burst of changes is one edit of the comment). A redraw:

1. rewrites the plan comment (``bot.core.plan_comment``) from the plan's tasks and, for issues
   filed but not (yet) tasks, from what filing recorded (``plan_tasks``);
2. for an approved plan whose spend (its tasks' and its plan job's) reached
   ``budget.per_plan_usd``: pauses the plan and its tasks and says so on the epic;
3. for an approved plan whose every task merged: the completion summary on the epic, which
   is closed as completed. A failed task leaves the epic open, its reason in the comment.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Sequence
from typing import Any, Literal, Protocol

from bot import transcripts
from bot.adapters.github import GitHubError
from bot.core.model import TERMINAL_STATES, IssueRef, Task, TaskState
from bot.core.plan import NodeState, Plan, plan_comment_marker
from bot.core.plan_comment import (
    Completion,
    PlanTaskView,
    PlanView,
    node_state,
    render_completion,
    render_plan_comment,
    render_table,
)
from bot.core.render_text import format_cost
from bot.ports import Clock, Configs, TaskStore, TranscriptReader
from bot.store.plans import PlanRecord, PlanState
from bot.store.records import PlanTaskRecord

log = logging.getLogger(__name__)


class ProgressGitHub(Protocol):
    async def upsert_comment(
        self, installation_id: int, ref: IssueRef, marker: str, body: str
    ) -> None: ...

    async def close_issue(
        self, installation_id: int, ref: IssueRef, reason: Literal["completed", "not_planned"]
    ) -> None: ...


class ProgressStore(TaskStore, TranscriptReader, Protocol):
    def get_plan(self, plan_id: str) -> PlanRecord | None: ...

    def update_plan(
        self, plan_id: str, *, expect: PlanState | None = None, **fields: Any
    ) -> PlanRecord | None: ...

    def tasks_of_plan(self, plan_id: str) -> list[Task]: ...

    def plan_task_rows(self, plan_id: str) -> list[PlanTaskRecord]: ...


def budget_marker(plan_id: str) -> str:
    return f"<!-- stoneforge:plan-budget {plan_id} -->"


def completion_marker(plan_id: str) -> str:
    return f"<!-- stoneforge:plan-completed {plan_id} -->"


class PlanProgress:
    """Redraws plan comments, pauses plans over budget, completes finished plans."""

    def __init__(
        self,
        github: ProgressGitHub,
        store: ProgressStore,
        repos: Configs,
        *,
        public_url: str = "",
        delay_s: float = 1.0,
        clock: Clock = time.time,
    ) -> None:
        self.github = github
        self.store = store
        self.repos = repos
        self.public_url = public_url
        self.delay_s = delay_s
        self.clock = clock
        self._due: set[str] = set()  # plans with a redraw scheduled
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the observer --------------------------------------------------------------------

    def task_moved(self, task: Task) -> None:
        """A task changed state (``bot.views.TaskViews``): redraw its plan soon."""
        if task.plan_id is not None:
            self.redraw_soon(task.plan_id)

    def redraw_soon(self, plan_id: str) -> None:
        if plan_id in self._due:
            return
        self._due.add(plan_id)
        job = asyncio.get_running_loop().create_task(self._later(plan_id))
        self._tasks.add(job)
        job.add_done_callback(self._tasks.discard)

    async def _later(self, plan_id: str) -> None:
        await asyncio.sleep(self.delay_s)
        self._due.discard(plan_id)  # a change from now on schedules one more redraw
        try:
            await self.redraw(plan_id)
        except GitHubError as exc:
            log.warning("plan_redraw_failed: %s", exc)
        except Exception:  # noqa: BLE001 - a redraw must not vanish silently
            log.exception("plan_redraw_crashed")

    def background_tasks(self) -> set[asyncio.Task[None]]:
        return {t for t in self._tasks if not t.done()}

    # --- what a redraw does --------------------------------------------------------------

    async def filed(self, plan: PlanRecord) -> dict[int, PlanTaskRecord]:
        """The issues filed for ``plan`` (``bot.director.filing``), by index."""
        rows = await asyncio.to_thread(self.store.plan_task_rows, plan.plan_id)
        return {row.idx: row for row in rows if row.number is not None}

    async def view(self, plan: PlanRecord) -> PlanView | None:
        """The plan comment's content now (None: the plan has no valid plan yet)."""
        if plan.plan_json is None:
            return None
        model = Plan.model_validate_json(plan.plan_json)
        tasks = await asyncio.to_thread(self.store.tasks_of_plan, plan.plan_id)
        by_index = {t.planned_index: t for t in tasks if t.planned_index is not None}
        filed = await self.filed(plan)
        rows = []
        for index in range(len(model.tasks)):
            task = by_index.get(index)
            issue = filed.get(index)
            closed = issue is not None and issue.closed
            rows.append(
                PlanTaskView(
                    index=index,
                    number=task.number if task else (issue.number if issue else None),
                    state=node_state(task.state if task else None, closed=closed),
                    pull=task.pr_number if task else None,
                    why=task.detail if task and task.state == TaskState.FAILED else None,
                )
            )
        paused = plan.detail if plan.paused else None
        return PlanView(
            plan.plan_id,
            model,
            tuple(rows),
            drafted=plan.state == PlanState.DRAFTED,
            paused=paused or ("paused" if plan.paused else None),
        )

    async def status(self, plan: PlanRecord) -> str | None:
        view = await self.view(plan)
        return None if view is None else render_table(view)

    async def redraw(self, plan_id: str) -> None:
        plan = await asyncio.to_thread(self.store.get_plan, plan_id)
        if plan is None:
            return
        view = await self.view(plan)
        if view is None:
            return
        epic = IssueRef(plan.repo, plan.epic)
        marker = plan_comment_marker(plan_id)
        await self.github.upsert_comment(
            plan.installation_id, epic, marker, render_plan_comment(view)
        )
        if plan.state != PlanState.APPROVED:
            return
        tasks = await asyncio.to_thread(self.store.tasks_of_plan, plan_id)
        if await self._over_budget(plan, tasks):
            return
        if len(view.tasks) and all(t.state == NodeState.MERGED for t in view.tasks):
            await self._complete(plan, tasks)

    async def _over_budget(self, plan: PlanRecord, tasks: Sequence[Task]) -> bool:
        """Pause the plan when its spend reached ``budget.per_plan_usd`` (True: it did now)."""
        limit = self.repos.config(plan.repo).budget.per_plan_usd
        if limit is None or plan.paused:
            return False
        spent = sum(t.cost_usd or 0.0 for t in tasks) + (plan.cost_usd or 0.0)
        if spent < limit:
            return False
        why = f"the plan's budget is spent ({format_cost(spent)} of {format_cost(limit)})"
        paused = await asyncio.to_thread(
            functools.partial(
                self.store.update_plan, plan.plan_id, expect=plan.state, paused=True, detail=why
            )
        )
        if paused is None:
            return False
        for task in tasks:
            if task.state not in TERMINAL_STATES:
                await asyncio.to_thread(
                    functools.partial(self.store.update_task, task.ref, paused=True)
                )
        epic = IssueRef(plan.repo, plan.epic)
        await self.github.upsert_comment(
            plan.installation_id,
            epic,
            budget_marker(plan.plan_id),
            f"**Stoneforge paused this plan:** {why} (`budget.per_plan_usd`). Tasks already "
            "running finish; nothing else of the plan is dispatched. Raise the budget and "
            "comment `/stoneforge resume` to go on.",
        )
        self.redraw_soon(plan.plan_id)
        return True

    async def _complete(self, plan: PlanRecord, tasks: Sequence[Task]) -> None:
        now = self.clock()
        done = await asyncio.to_thread(
            functools.partial(
                self.store.update_plan,
                plan.plan_id,
                expect=PlanState.APPROVED,
                state=PlanState.COMPLETED,
                completed_at=now,
                updated_at=now,
            )
        )
        if done is None:  # another replica completed it
            return
        summary = await asyncio.to_thread(self._completion, plan, tasks)
        epic = IssueRef(plan.repo, plan.epic)
        await self.github.upsert_comment(
            plan.installation_id,
            epic,
            completion_marker(plan.plan_id),
            render_completion(plan.plan_id, summary),
        )
        await self.github.close_issue(plan.installation_id, epic, "completed")
        log.info("plan_completed", extra={"repo": plan.repo, "issue": plan.epic})

    def _completion(self, plan: PlanRecord, tasks: Sequence[Task]) -> Completion:
        """The plan's totals from its tasks and their transcripts (runs in a thread)."""
        tokens_in: list[int] = []
        tokens_out: list[int] = []
        for task in tasks:
            for row in transcripts.attempt_rows(self.store, self.public_url, task):
                if row.input_tokens is not None:
                    tokens_in.append(row.input_tokens)
                if row.output_tokens is not None:
                    tokens_out.append(row.output_tokens)
        costs = [t.cost_usd for t in tasks if t.cost_usd is not None]
        if plan.cost_usd is not None:
            costs.append(plan.cost_usd)
        last = max((t.merged_at or 0.0 for t in tasks), default=plan.created_at)
        return Completion(
            pulls=tuple((t.number, t.pr_number) for t in tasks),
            seconds=max(0.0, last - plan.created_at),
            attempts=sum(t.attempt for t in tasks),
            input_tokens=sum(tokens_in) if tokens_in else None,
            output_tokens=sum(tokens_out) if tokens_out else None,
            cost_usd=sum(costs) if costs else None,
        )
