"""How a filed plan task reads on GitHub: the body of its issue. Pure.

The body is the task's own text, a ``Part of #E`` line naming the epic, a readable
``Blocked by #N, #M`` line (GitHub also holds these as native "blocked by" links, but the line
shows in every client and in notifications), the acceptance criteria as a checklist, and the
hidden marker (:func:`bot.core.plan.task_marker`) that makes filing idempotent.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.plan import PlannedTask, task_marker


def blocked_by_line(blocker_numbers: Sequence[int]) -> str:
    """``"Blocked by #3, #5"`` (sorted, each once), or ``""`` for a task nothing blocks."""
    numbers = sorted(set(blocker_numbers))
    return "Blocked by " + ", ".join(f"#{n}" for n in numbers) if numbers else ""


def render_task_body(
    plan_id: str,
    index: int,
    task: PlannedTask,
    blocker_numbers: Sequence[int],
    epic_number: int,
) -> str:
    """The issue body for task ``index`` of plan ``plan_id``; ``blocker_numbers`` are the
    issue numbers of its blockers, ``epic_number`` the issue the plan was made for."""
    parts = [task.body.strip()] if task.body.strip() else []
    links = [f"Part of #{epic_number}"]
    if line := blocked_by_line(blocker_numbers):
        links.append(line)
    parts.append("\n".join(links))
    if task.acceptance_criteria:
        checklist = "\n".join(f"- [ ] {_one_line(c)}" for c in task.acceptance_criteria)
        parts.append(f"### Acceptance criteria\n\n{checklist}")
    if task.files:
        files = "\n".join(f"- `{_one_line(f)}`" for f in task.files)
        parts.append(
            f"<details><summary>Files it expects to touch</summary>\n\n{files}\n\n</details>"
        )
    parts.append(task_marker(plan_id, index))
    return "\n\n".join(parts) + "\n"


def _one_line(text: str) -> str:
    """A checklist item or list entry is one line: inner line breaks become spaces."""
    return " ".join(text.split())
