"""The director's words on the epic: the plan comment, a refused plan, the completion."""

from __future__ import annotations

import re

from bot.core.model import TaskState
from bot.core.plan import NodeState, Plan, plan_comment_marker, validate_plan
from bot.core.plan_comment import (
    ERRORS_SHOWN,
    Completion,
    PlanTaskView,
    PlanView,
    node_state,
    render_completion,
    render_invalid_plan,
    render_plan_comment,
)
from tests.core.test_plan import parse_mermaid, plan_of

MERMAID = re.compile(r"```mermaid\n(.*?)\n```", re.S)


def a_plan() -> Plan:
    raw = plan_of([], [0], [0, 1])
    raw["summary"] = "Three steps."
    raw["notes"] = ["Use one module."]
    plan = validate_plan(raw)
    assert isinstance(plan, Plan)
    return plan


def test_the_plan_comment_lists_each_task_with_its_issue_state_and_graph() -> None:
    view = PlanView(
        "p1",
        a_plan(),
        (
            PlanTaskView(0, 11, NodeState.MERGED, pull=20),
            PlanTaskView(1, 12, NodeState.FAILED, why="tests_failed: 2 tests fail"),
            PlanTaskView(2, 13, NodeState.QUEUED),
        ),
        drafted=False,
    )
    text = render_plan_comment(view)
    assert "1/3 merged" in text
    assert "- [x] #11 task 0 · **merged (#20)**" in text
    assert "- [ ] #12 task 1 · **failed** · after #11" in text
    assert "failed: tests_failed: 2 tests fail" in text
    assert "Needs a person:** #12 failed" in text
    assert "Three steps." in text
    assert "- Use one module." in text
    assert text.endswith(plan_comment_marker("p1"))
    match = MERMAID.search(text)
    assert match is not None
    nodes, edges, _ = parse_mermaid(match.group(1))
    assert nodes["t1"] == ("#12 task 1", "failed")
    assert edges == {("t0", "t1"), ("t0", "t2"), ("t1", "t2")}


def test_a_draft_says_it_waits_for_approval() -> None:
    views = tuple(PlanTaskView(i, 10 + i) for i in range(3))
    text = render_plan_comment(PlanView("p1", a_plan(), views, drafted=True))
    assert "`/stoneforge approve`" in text
    assert "Needs a person" not in text


def test_a_refused_plan_says_what_was_wrong_capped() -> None:
    errors = [f"tasks.{i}.title: too long" for i in range(ERRORS_SHOWN + 5)]
    text = render_invalid_plan("p2", errors)
    assert "- tasks.0.title: too long" in text
    assert f"tasks.{ERRORS_SHOWN}.title" not in text
    assert "… and 5 more" in text
    assert plan_comment_marker("p2") in text


def test_the_completion_sums_the_plan() -> None:
    done = Completion(
        pulls=((11, 20), (12, 21)),
        seconds=3725,
        attempts=3,
        input_tokens=1200,
        output_tokens=300,
        cost_usd=1.5,
    )
    text = render_completion("p1", done)
    assert "2 tasks merged" in text
    assert "#20 (for #11), #21 (for #12)" in text
    assert "1 h 02 min" in text
    assert "1,200 in, 300 out" in text
    assert "$1.50" in text


def test_node_states_follow_the_task() -> None:
    assert node_state(None) == NodeState.DRAFT
    assert node_state(None, closed=True) == NodeState.CANCELLED
    assert node_state(TaskState.IN_REVIEW) == NodeState.IN_REVIEW
