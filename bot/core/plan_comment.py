"""The director's words on the epic: the plan comment, a refused plan, the completion. Pure.

The plan comment (one per plan, found again by ``bot.core.plan.plan_comment_marker``) is
rewritten in place as the plan's tasks move: the plan's summary, a checklist of its tasks with
their issue numbers and states (and why a task failed), the Mermaid graph of their dependencies
coloured by state (``bot.core.plan.render_mermaid``), and the plan's notes. ``/stoneforge
status`` answers with the same table and graph.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.model import TaskState
from bot.core.plan import NodeState, Plan, plan_comment_marker, render_mermaid
from bot.core.render_text import cell, format_cost, format_duration

#: how many of a refused plan's errors the epic is told (the rest are counted)
ERRORS_SHOWN = 20
ERROR_CHARS = 300

_NODE_OF_TASK = {
    TaskState.QUEUED: NodeState.QUEUED,
    TaskState.RUNNING: NodeState.RUNNING,
    TaskState.IN_REVIEW: NodeState.IN_REVIEW,
    TaskState.MERGED: NodeState.MERGED,
    TaskState.FAILED: NodeState.FAILED,
    TaskState.CANCELLED: NodeState.CANCELLED,
}

_WORDS = {
    NodeState.DRAFT: "draft",
    NodeState.QUEUED: "queued",
    NodeState.RUNNING: "running",
    NodeState.IN_REVIEW: "in review",
    NodeState.MERGED: "merged",
    NodeState.FAILED: "failed",
    NodeState.CANCELLED: "cancelled",
}


def node_state(task_state: TaskState | None, *, closed: bool = False) -> NodeState:
    """How a plan task shows: its task's state, or a draft while it has no task (cancelled
    once its issue was closed by a replan)."""
    if task_state is None:
        return NodeState.CANCELLED if closed else NodeState.DRAFT
    return _NODE_OF_TASK[TaskState(task_state)]


@dataclass(frozen=True)
class PlanTaskView:
    """One task of the plan as the comment shows it."""

    index: int
    number: int | None  # the filed issue (None until filed)
    state: NodeState = NodeState.DRAFT
    pull: int | None = None
    why: str | None = None  # why it failed, in words


@dataclass(frozen=True)
class PlanView:
    """Everything the plan comment says."""

    plan_id: str
    plan: Plan
    tasks: tuple[PlanTaskView, ...]
    drafted: bool  # filed and waiting for ``/stoneforge approve``
    paused: str | None = None  # why the plan is paused (None: it is not)


def _state_words(task: PlanTaskView) -> str:
    words = _WORDS[task.state]
    if task.pull is not None and task.state in (NodeState.IN_REVIEW, NodeState.MERGED):
        words += f" (#{task.pull})"
    return words


def render_table(view: PlanView) -> str:
    """The checklist of the plan's tasks and the Mermaid graph of their dependencies."""
    lines = []
    for task in view.tasks:
        planned = view.plan.tasks[task.index]
        box = "x" if task.state == NodeState.MERGED else " "
        issue = f"#{task.number}" if task.number is not None else "(not filed yet)"
        blockers = ", ".join(
            f"#{view.tasks[b].number}" if view.tasks[b].number else f"task {b}"
            for b in sorted(set(planned.blockers))
            if b < len(view.tasks)
        )
        after = f" · after {blockers}" if blockers else ""
        line = f"- [{box}] {issue} {cell(planned.title)} · **{_state_words(task)}**{after}"
        if task.state == NodeState.FAILED and task.why:
            line += f"\n  - failed: {cell(task.why[:ERROR_CHARS])}"
        lines.append(line)
    graph = render_mermaid(
        view.plan,
        numbers=[t.number for t in view.tasks],
        states=[t.state for t in view.tasks],
    )
    return "\n".join(lines) + "\n\n```mermaid\n" + graph + "\n```"


def render_plan_comment(view: PlanView) -> str:
    """The plan comment on the epic (with its marker)."""
    merged = sum(1 for t in view.tasks if t.state == NodeState.MERGED)
    parts = [f"### Stoneforge plan · {merged}/{len(view.tasks)} merged"]
    if view.plan.summary.strip():
        parts.append(view.plan.summary.strip())
    if view.drafted:
        parts.append(
            "This plan is a **draft**: nothing of it runs until someone with write access "
            "comments `/stoneforge approve`. `/stoneforge replan [guidance]` plans again."
        )
    if view.paused:
        parts.append(f"**Paused:** {view.paused}")
    failed = [t for t in view.tasks if t.state == NodeState.FAILED]
    if failed:
        numbers = ", ".join(f"#{t.number}" for t in failed if t.number is not None)
        parts.append(f"**Needs a person:** {numbers or 'a task'} failed; the epic stays open.")
    parts.append(render_table(view))
    if view.plan.notes:
        notes = "\n".join(f"- {cell(note)}" for note in view.plan.notes)
        parts.append(f"<details><summary>The plan's notes</summary>\n\n{notes}\n\n</details>")
    parts.append(plan_comment_marker(view.plan_id))
    return "\n\n".join(parts)


def render_invalid_plan(plan_id: str, errors: Sequence[str]) -> str:
    """What was wrong with a plan the bot refused (nothing of it was filed)."""
    shown = [f"- {cell(e[:ERROR_CHARS])}" for e in errors[:ERRORS_SHOWN]]
    more = len(errors) - len(shown)
    if more > 0:
        shown.append(f"- … and {more} more")
    return "\n\n".join(
        [
            "### Stoneforge plan refused",
            "The planning agent's plan is not valid, so nothing was filed:",
            "\n".join(shown) or "- (no error was given)",
            "Comment `/stoneforge plan [guidance]` to try again.",
            plan_comment_marker(plan_id),
        ]
    )


def render_plan_failed(plan_id: str, why: str) -> str:
    """A plan job that ended without a plan."""
    return "\n\n".join(
        [
            "### Stoneforge plan failed",
            f"The planning agent did not write a plan: {cell(why[:ERROR_CHARS])}",
            "Comment `/stoneforge plan [guidance]` to try again.",
            plan_comment_marker(plan_id),
        ]
    )


@dataclass(frozen=True)
class Completion:
    """What a finished plan did, summed over its tasks (and its plan job)."""

    pulls: tuple[tuple[int, int | None], ...]  # (issue, pull request) per task
    seconds: float  # from the plan's request to its last merge
    attempts: int
    input_tokens: int | None
    output_tokens: int | None
    cost_usd: float | None


def render_completion(plan_id: str, done: Completion) -> str:
    """The summary comment on an epic whose plan fully merged."""
    pulls = ", ".join(
        f"#{pull} (for #{issue})" if pull is not None else f"#{issue}" for issue, pull in done.pulls
    )
    if done.input_tokens is None and done.output_tokens is None:
        tokens = "not reported"
    else:
        tokens = f"{done.input_tokens or 0:,} in, {done.output_tokens or 0:,} out"
    cost = format_cost(done.cost_usd) if done.cost_usd is not None else "not reported"
    rows = [
        "| | |",
        "| --- | --- |",
        f"| pull requests | {pulls} |",
        f"| time | {format_duration(done.seconds)} |",
        f"| attempts | {done.attempts} |",
        f"| tokens | {tokens} |",
        f"| cost | {cost} |",
    ]
    return "\n\n".join(
        [
            f"### Stoneforge plan completed: {len(done.pulls)} tasks merged",
            "\n".join(rows),
            "Closing this issue as completed.",
            f"<!-- stoneforge:plan-completed {plan_id} -->",
        ]
    )
