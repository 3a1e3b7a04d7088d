"""The director's plan (``bot/core/plan.py``): validation, the golden schema, levels, markers and
the Mermaid graph (parsed back, not compared as text)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest

from bot.core.plan import (
    MAX_TASKS,
    NodeState,
    Plan,
    find_cycles,
    levels,
    parse_task_marker,
    plan_schema,
    render_mermaid,
    task_marker,
    validate_plan,
)

ROOT = Path(__file__).resolve().parents[2]
SCHEMA_FILE = ROOT / "schema" / "plan.schema.json"


def plan_of(*blockers: list[int], **extra: object) -> dict[str, object]:
    return {
        "tasks": [{"title": f"task {i}", "blockers": b} for i, b in enumerate(blockers)],
        **extra,
    }


def test_golden_schema_is_current_and_valid() -> None:
    assert json.loads(SCHEMA_FILE.read_text()) == plan_schema(), (
        'schema/plan.schema.json is stale; regenerate it with: python -c "import json; '
        'from bot.core.plan import plan_schema; print(json.dumps(plan_schema(), indent=2))" '
        "> schema/plan.schema.json"
    )
    jsonschema.Draft202012Validator.check_schema(plan_schema())
    jsonschema.validate(plan_of([], [0]), plan_schema())


def test_a_good_plan_validates() -> None:
    raw = plan_of([], [0], [0, 1], notes=["Use sqlite3"], summary="three steps")
    plan = validate_plan(raw)
    assert isinstance(plan, Plan)
    assert [t.blockers for t in plan.tasks] == [(), (0,), (0, 1)]
    assert levels(plan) == [0, 1, 2]
    assert validate_plan(json.dumps(raw)) == plan


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{not json", "not JSON"),
        ({"tasks": []}, "tasks"),
        ({"tasks": [{"title": ""}]}, "tasks.0.title"),
        ({"tasks": [{"title": "a", "colour": "red"}]}, "tasks.0.colour"),
        ({"tasks": [{"title": "a", "priority": 7}]}, "tasks.0.priority"),
        (plan_of([], [5]), "index 5 does not exist"),
        (plan_of([0]), "cannot block itself"),
        ({"tasks": [{"title": "Same"}, {"title": "same "}]}, "repeats the title of task 0"),
        (plan_of([2], [0], [1]), "dependency cycle"),
        ({"tasks": [{"title": f"t{i}"} for i in range(MAX_TASKS + 1)]}, "at most 100"),
    ],
)
def test_a_bad_plan_says_what_is_wrong(raw: object, expected: str) -> None:
    errors = validate_plan(raw)
    assert isinstance(errors, list)
    assert errors
    assert any(expected in e for e in errors), errors


def test_cycles_are_found_once_each() -> None:
    plan = Plan.model_validate(plan_of([1], [0], [3], [2], []))
    assert sorted(sorted(c) for c in find_cycles(plan)) == [[0, 1], [2, 3]]


def test_task_marker_round_trips_inside_a_body() -> None:
    body = f"Do it.\n\n{task_marker('p-1_a', 7)}\n"
    assert parse_task_marker(body) == ("p-1_a", 7)
    assert parse_task_marker("no marker") is None


MERMAID_NODE = re.compile(r'^  (t\d+)\["([^"]*)"\]:::(\w+)$')
MERMAID_EDGE = re.compile(r"^  (t\d+) --> (t\d+)$")
MERMAID_CLASS = re.compile(r"^  classDef (\w+) (\S+)$")


def parse_mermaid(text: str) -> tuple[dict[str, tuple[str, str]], set[tuple[str, str]], set[str]]:
    """A strict reader of the subset ``render_mermaid`` writes: every line must be a node, an
    edge or a class definition (anything else fails the test)."""
    lines = text.split("\n")
    assert lines[0] == "flowchart TD"
    nodes: dict[str, tuple[str, str]] = {}
    edges: set[tuple[str, str]] = set()
    classes: set[str] = set()
    for line in lines[1:]:
        if m := MERMAID_NODE.match(line):
            nodes[m.group(1)] = (m.group(2), m.group(3))
        elif m := MERMAID_EDGE.match(line):
            edges.add((m.group(1), m.group(2)))
        elif m := MERMAID_CLASS.match(line):
            classes.add(m.group(1))
        else:
            raise AssertionError(f"not a line render_mermaid writes: {line!r}")
    for a, b in edges:
        assert a in nodes
        assert b in nodes
    assert {cls for _, cls in nodes.values()} <= classes
    return nodes, edges, classes


def test_mermaid_graph_parses_back_to_the_plan() -> None:
    raw = plan_of([], [0], [0, 1])
    raw["tasks"][2]["title"] = 'Quote " and # hash; <b>'  # type: ignore[index]
    plan = validate_plan(raw)
    assert isinstance(plan, Plan)
    text = render_mermaid(plan, [11, None, 13], [NodeState.MERGED, NodeState.RUNNING])
    nodes, edges, classes = parse_mermaid(text)
    assert edges == {("t0", "t1"), ("t0", "t2"), ("t1", "t2")}
    assert nodes["t0"] == ("#11 task 0", "merged")
    assert nodes["t1"] == ("task 1", "running")
    assert nodes["t2"][1] == "draft"
    assert nodes["t2"][0].startswith("#13 Quote ' and # hash,")
    assert classes == {"merged", "running", "draft"}
