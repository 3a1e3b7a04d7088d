"""The body of a filed plan task: marker, epic, blockers, checklist."""

from __future__ import annotations

from bot.core.plan import PlannedTask, parse_task_marker
from bot.core.plan_issue import blocked_by_line, render_task_body


def test_body_carries_marker_epic_blockers_and_checklist() -> None:
    task = PlannedTask(
        title="Add the parser",
        body="Write the parser.\n",
        acceptance_criteria=("parses `a`", "rejects\nempty input"),
        blockers=(0, 2),
        files=("src/parse.py",),
    )
    body = render_task_body("p1", 3, task, [12, 10], 7)
    assert body.startswith("Write the parser.\n\nPart of #7\nBlocked by #10, #12\n")
    assert "### Acceptance criteria\n\n- [ ] parses `a`\n- [ ] rejects empty input" in body
    assert "- `src/parse.py`" in body
    assert parse_task_marker(body) == ("p1", 3)


def test_a_task_nothing_blocks_has_no_blocked_by_line() -> None:
    body = render_task_body("p1", 0, PlannedTask(title="First"), [], 7)
    assert "Blocked by" not in body
    assert "Acceptance criteria" not in body
    assert body.startswith("Part of #7\n")
    assert parse_task_marker(body) == ("p1", 0)


def test_blocked_by_line_lists_each_blocker_once_in_order() -> None:
    assert blocked_by_line([5, 3, 5]) == "Blocked by #3, #5"
    assert blocked_by_line([]) == ""
